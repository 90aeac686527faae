"""The database schema, one for SQLite and PostgreSQL. Changes go through a migration."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Stored as naive UTC (portable), always returned timezone-aware."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        moment: datetime = value
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


metadata = sa.MetaData()

namespaces = sa.Table(
    "namespaces", metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

# namespace NULL marks a server-wide admin key (made by `server init`).
api_keys = sa.Table(
    "api_keys", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("namespace", sa.String(64), sa.ForeignKey("namespaces.name"), nullable=True),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("permissions", sa.String(64), nullable=False),
    sa.Column("secret_hash", sa.LargeBinary(32), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("created_by", sa.String(256), nullable=False),
    sa.Column("revoked_at", UTCDateTime, nullable=True),
    sa.Index("ix_api_keys_namespace_name", "namespace", "name"),
)

policies = sa.Table(
    "policies", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("namespace", sa.String(64), sa.ForeignKey("namespaces.name"), nullable=False),
    sa.Column("issuer", sa.String(512), nullable=False),
    sa.Column("claims", sa.JSON, nullable=False),
    sa.Column("permissions", sa.String(64), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Index("ix_policies_issuer", "issuer"),
)

# Issuers an operator declared (`signer issuer add`): the kind decides how a token's claims
# become provenance (signer.issuers). server_url NULL: the kind's default for the URL.
issuers = sa.Table(
    "issuers", metadata,
    sa.Column("url", sa.String(512), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("server_url", sa.String(512), nullable=True),
    sa.Column("allow_http", sa.Boolean, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("created_by", sa.String(256), nullable=False),
)

certificates = sa.Table(
    "certificates", metadata,
    sa.Column("serial", sa.String(48), primary_key=True),
    sa.Column("namespace", sa.String(64), nullable=False),
    sa.Column("identity", sa.String(1024), nullable=False),
    sa.Column("issuer", sa.String(512), nullable=False),
    sa.Column("issued_at", UTCDateTime, nullable=False),
    sa.Column("der", sa.LargeBinary, nullable=False),
)

revocations = sa.Table(
    "revocations", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("namespace", sa.String(64), nullable=False),
    sa.Column("name", sa.String(512), nullable=False),
    sa.Column("source_repository_ref", sa.String(512), nullable=False),
    sa.Column("reason", sa.String(1024), nullable=False),
    sa.Column("revoked_by", sa.String(1024), nullable=False),
    sa.Column("revoked_at", UTCDateTime, nullable=False),
    sa.Column("count", sa.Integer, nullable=False),
    sa.Column("log_index", sa.BigInteger, nullable=True),
    sa.Index("ix_revocations_namespace_name", "namespace", "name"),
)

artifacts = sa.Table(
    "artifacts", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("namespace", sa.String(64), nullable=False),
    sa.Column("name", sa.String(512), nullable=False),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("source_repository", sa.String(1024), nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("signature_count", sa.Integer, nullable=False),
    sa.Column("revoked_count", sa.Integer, nullable=False),
    sa.UniqueConstraint("namespace", "name", "digest", name="uq_artifacts_ref"),
    sa.Index("ix_artifacts_created", "namespace", "created_at", "id"),
    sa.Index("ix_artifacts_updated", "namespace", "updated_at", "id"),
    # The web page's source-repository filter and its list of repositories (migration 0002).
    sa.Index("ix_artifacts_source_created", "namespace", "source_repository", "created_at",
             "id"),
    sa.Index("ix_artifacts_source_updated", "namespace", "source_repository", "updated_at",
             "id"),
)

signatures = sa.Table(
    "signatures", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("namespace", sa.String(64), nullable=False),
    sa.Column("artifact_id", sa.String(32), sa.ForeignKey("artifacts.id"), nullable=False),
    sa.Column("name", sa.String(512), nullable=False),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("signature_sha256", sa.String(64), nullable=False),
    sa.Column("identity", sa.String(1024), nullable=False),
    sa.Column("issuer", sa.String(512), nullable=False),
    sa.Column("source_repository_ref", sa.String(512), nullable=True),
    sa.Column("provenance", sa.JSON, nullable=False),
    sa.Column("certificate_serial", sa.String(48), nullable=False),
    sa.Column("signed_at", UTCDateTime, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("bundle", sa.Text, nullable=False),
    # The entry's log and index in it: "tlog" (Rekor v1) or "tlog2" (Rekor v2, migration
    # 0007); both NULL for a signature stored before the log existed (migration 0003).
    sa.Column("log_tree", sa.String(16), nullable=True),
    sa.Column("log_index", sa.BigInteger, nullable=True),
    sa.Column("revocation_id", sa.String(32), sa.ForeignKey("revocations.id"), nullable=True),
    # The same upload twice is the same entry, also across replicas.
    sa.UniqueConstraint("namespace", "name", "digest", "signature_sha256", name="uq_signatures"),
    # The filter and the order of Store.signatures_for: one range of this index, already in
    # order (without it, SQLite may walk ix_signatures_created over the whole namespace).
    sa.Index("ix_signatures_ref", "namespace", "name", "digest", "created_at", "id"),
    sa.Index("ix_signatures_source_ref", "namespace", "name", "source_repository_ref"),
    sa.Index("ix_signatures_digest", "namespace", "digest"),
    sa.Index("ix_signatures_artifact", "artifact_id", "created_at"),
    sa.Index("ix_signatures_created", "namespace", "created_at", "id"),
    sa.Index("ix_signatures_log_index", "log_index"),
)

# In-toto attestations (signer artifact attest): a DSSE envelope over a statement about the
# artifact, stored once, in its bundle; predicate_type is what verifiers and the page select
# by. Revocation by name + ref marks them as it marks signatures (Store.revoke).
attestations = sa.Table(
    "attestations", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("namespace", sa.String(64), nullable=False),
    sa.Column("artifact_id", sa.String(32), sa.ForeignKey("artifacts.id"), nullable=False),
    sa.Column("name", sa.String(512), nullable=False),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("predicate_type", sa.String(512), nullable=False),
    sa.Column("signature_sha256", sa.String(64), nullable=False),
    sa.Column("payload_sha256", sa.String(64), nullable=False),
    sa.Column("payload_size", sa.Integer, nullable=False),
    sa.Column("identity", sa.String(1024), nullable=False),
    sa.Column("issuer", sa.String(512), nullable=False),
    sa.Column("source_repository_ref", sa.String(512), nullable=True),
    sa.Column("provenance", sa.JSON, nullable=False),
    sa.Column("certificate_serial", sa.String(48), nullable=False),
    sa.Column("signed_at", UTCDateTime, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("bundle", sa.Text, nullable=False),
    sa.Column("log_tree", sa.String(16), nullable=True),  # as the signatures'
    sa.Column("log_index", sa.BigInteger, nullable=True),
    sa.Column("revocation_id", sa.String(32), sa.ForeignKey("revocations.id"), nullable=True),
    # The same envelope uploaded twice is the same attestation.
    sa.UniqueConstraint("namespace", "name", "digest", "signature_sha256",
                        name="uq_attestations"),
    sa.Index("ix_attestations_ref", "namespace", "name", "digest", "created_at", "id"),
    sa.Index("ix_attestations_source_ref", "namespace", "name", "source_repository_ref"),
    sa.Index("ix_attestations_artifact", "artifact_id", "created_at"),
)

# Sign-ins to the web page (signer.service.web). The cookie holds a random token; only its
# SHA-256 is stored. Each request re-checks the API key, so revoking it ends the session.
web_sessions = sa.Table(
    "web_sessions", metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("namespace", sa.String(64), nullable=False),
    sa.Column("api_key_id", sa.String(32), sa.ForeignKey("api_keys.id"), nullable=False),
    sa.Column("csrf_token", sa.String(64), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
    sa.Index("ix_web_sessions_expires", "expires_at"),
)

# -- transparency: RFC 6962 trees (the signature log "tlog" and the certificate log "ctlog") --
log_trees = sa.Table(
    "log_trees", metadata,
    sa.Column("name", sa.String(16), primary_key=True),
    sa.Column("tree_id", sa.BigInteger, nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("root_hash", sa.LargeBinary(32), nullable=False),
    sa.Column("checkpoint", sa.Text, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

# Hashes of perfect subtrees: (level, idx) covers leaves [idx·2^level, (idx+1)·2^level).
log_nodes = sa.Table(
    "log_nodes", metadata,
    sa.Column("tree", sa.String(16), primary_key=True),
    sa.Column("level", sa.Integer, primary_key=True),
    sa.Column("idx", sa.BigInteger, primary_key=True),
    sa.Column("hash", sa.LargeBinary(32), nullable=False),
)

log_entries = sa.Table(
    "log_entries", metadata,
    sa.Column("tree", sa.String(16), primary_key=True),
    sa.Column("idx", sa.BigInteger, primary_key=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("version", sa.String(16), nullable=False),
    sa.Column("namespace", sa.String(64), nullable=True),
    sa.Column("body", sa.LargeBinary, nullable=False),
    sa.Column("leaf_hash", sa.LargeBinary(32), nullable=False),
    sa.Column("integrated_time", sa.BigInteger, nullable=False),
    sa.Column("signed_entry_timestamp", sa.LargeBinary, nullable=True),
    sa.Column("extra", sa.LargeBinary, nullable=True),
    sa.Index("ix_log_entries_leaf", "tree", "leaf_hash"),
)

log_checkpoints = sa.Table(
    "log_checkpoints", metadata,
    sa.Column("tree", sa.String(16), primary_key=True),
    sa.Column("size", sa.BigInteger, primary_key=True),
    sa.Column("root_hash", sa.LargeBinary(32), nullable=False),
    sa.Column("envelope", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

"""Every database read and write of the service but the logs' (signer.service.log).

One transaction per state change. What leaves the store is a record (``records``), never a
database row; the page's reads are ``Store.page`` (``page``).

A signature's or attestation's log entry is ``(log_tree, log_index)``: ``tlog`` (Rekor v1)
or ``tlog2`` (Rekor v2), whose indexes both start at 0 (migration 0007). The index alone
would be ambiguous: the v1 read API (`Store.log_indexes_of_digest`) would serve a v2 index
as a v1 entry, and a NULL index already means "stored before the log existed" (0003), so
it could not also mean "in the v2 log". The bundle holds the index too, but reading it back
would parse a bundle per lookup (a repeated Rekor write's 409 names the existing entry).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError

from signer.errors import Conflict, NotFound
from signer.service.database import batch_state, defer, flush_deferred
from signer.service.schema import (
    api_keys,
    artifacts,
    attestations,
    certificates,
    issuers,
    namespaces,
    policies,
    revocations,
    signatures,
    web_sessions,
)
from signer.service.store import rows
from signer.service.store.page import PageReads
from signer.service.store.records import (
    ApiKey,
    ArtifactRecord,
    AttestationRecord,
    DeclaredIssuer,
    NewAttestation,
    NewSignature,
    Policy,
    RevocationRecord,
    SignatureListing,
    SignatureRecord,
    WebSessionRecord,
)

__all__ = [
    "API_KEY_PREFIX", "ApiKey", "ArtifactRecord", "AttestationRecord",
    "DeclaredIssuer", "NewAttestation", "NewSignature", "Policy",
    "RevocationRecord", "SignatureListing", "SignatureRecord", "Store", "Transaction",
    "WebSessionRecord", "hash_secret", "new_id", "now",
]

API_KEY_PREFIX = "sgk"
# The connection of a transaction the log opens; the store writes its rows through it.
Transaction = sa.Connection


def new_id() -> str:
    return secrets.token_hex(16)


def now() -> datetime:
    return datetime.now(UTC)


def hash_secret(secret: str) -> bytes:
    # API key secrets are 256 random bits: a fast hash is enough (nothing to brute-force),
    # and it keeps authentication cheap on every request.
    return hashlib.sha256(secret.encode()).digest()


# The statements of a signing, built once (building them per call costs more than running
# them on SQLite).
_SIGNATURE_FIELDS = tuple(k for k in NewSignature.__dataclass_fields__ if k in signatures.c)
_INSERT_SIGNATURE = signatures.insert()
_INSERT_CERTIFICATE = certificates.insert()
_INSERT_ATTESTATION = attestations.insert()
_SIGNATURE_KEY = (signatures.c.namespace, signatures.c.name, signatures.c.digest,
                  signatures.c.signature_sha256)


@functools.lru_cache(maxsize=256)  # one per batch size (MAX_BATCH)
def _stored_signatures(count: int) -> sa.Select[Any]:
    """Signatures matching any of ``count`` keys, as an OR of equalities: both databases
    look each one up in uq_signatures (SQLite scans the table for a row-value IN list)."""
    return rows.WITH_REVOCATION.where(sa.or_(*(
        sa.and_(*(column == sa.bindparam(f"k{i}_{c}") for c, column in enumerate(_SIGNATURE_KEY)))
        for i in range(count))))


_RESOLVED_ARTIFACTS = "artifacts"  # in the batch's state: (namespace, name, digest) -> id


def _upsert_artifact(insert: Callable[[sa.Table], Any]) -> Any:
    """The artifact's row, created or touched, in one statement (a signing's critical section
    runs it once instead of UPDATE, then INSERT when nothing was there). It returns the key
    with the id: run for many rows at once, the rows come back in no set order."""
    statement = insert(artifacts).values(
        id=sa.bindparam("id"), namespace=sa.bindparam("ns"), name=sa.bindparam("b_name"),
        digest=sa.bindparam("b_digest"), source_repository=sa.bindparam("source"),
        created_at=sa.bindparam("at"), updated_at=sa.bindparam("at"),
        signature_count=sa.bindparam("count"), revoked_count=0)
    return statement.on_conflict_do_update(
        index_elements=[artifacts.c.namespace, artifacts.c.name, artifacts.c.digest],
        set_={"updated_at": statement.excluded.updated_at,
              "signature_count": artifacts.c.signature_count
              + statement.excluded.signature_count},
    ).returning(artifacts.c.id, artifacts.c.namespace, artifacts.c.name, artifacts.c.digest)


_UPSERT_ARTIFACT = {"sqlite": _upsert_artifact(sqlite_insert),
                    "postgresql": _upsert_artifact(postgresql_insert)}


class Store:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self._writer = engine.execution_options(write=True)
        self.page = PageReads(engine)

    def _begin(self) -> AbstractContextManager[sa.Connection]:
        # A lost database surfaces as sqlalchemy's OperationalError; the API turns it into
        # a 503 with Retry-After (signer.service.problems).
        return self.engine.begin()

    def _write(self) -> AbstractContextManager[sa.Connection]:
        """A transaction that writes: on SQLite it takes the write lock up front."""
        return self._writer.begin()

    # -- namespaces -------------------------------------------------------------------------
    def create_namespace(self, name: str) -> datetime:
        created = now()
        try:
            with self._write() as tx:
                tx.execute(namespaces.insert().values(name=name, created_at=created))
        except IntegrityError as exc:
            raise Conflict(f"The namespace '{name}' already exists.") from exc
        return created

    def namespace_exists(self, name: str) -> bool:
        with self._begin() as tx:
            return tx.execute(
                sa.select(namespaces.c.name).where(namespaces.c.name == name)
            ).first() is not None

    def list_namespaces(self) -> list[tuple[str, datetime]]:
        with self._begin() as tx:
            found = tx.execute(sa.select(namespaces).order_by(namespaces.c.name)).all()
        return [(r.name, r.created_at) for r in found]

    # -- API keys -----------------------------------------------------------------------------
    def create_api_key(
        self, namespace: str | None, name: str, permissions: Iterable[str], created_by: str
    ) -> tuple[ApiKey, str]:
        """Returns the key and its token; only the token's hash is stored."""
        key_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
        created = now()
        with self._write() as tx:
            clash = tx.execute(
                sa.select(api_keys.c.id).where(
                    api_keys.c.namespace.is_(None) if namespace is None
                    else api_keys.c.namespace == namespace,
                    api_keys.c.name == name, api_keys.c.revoked_at.is_(None),
                )
            ).first()
            if clash:
                raise Conflict(
                    f"An active API key named '{name}' already exists in '{namespace}'.",
                    "Revoke it first, or choose another name.",
                )
            tx.execute(api_keys.insert().values(
                id=key_id, namespace=namespace, name=name,
                permissions=",".join(sorted(permissions)), secret_hash=hash_secret(secret),
                created_at=created, created_by=created_by,
            ))
        key = ApiKey(key_id, namespace, name, frozenset(permissions), created, None)
        return key, f"{API_KEY_PREFIX}_{key_id}_{secret}"

    def check_api_key(self, token: str) -> ApiKey | None:
        """The active key a token belongs to, compared in constant time; None otherwise."""
        parts = token.split("_", 2)
        if len(parts) != 3 or parts[0] != API_KEY_PREFIX:
            return None
        with self._begin() as tx:
            row = tx.execute(sa.select(api_keys).where(api_keys.c.id == parts[1])).first()
        if row is None or row.revoked_at is not None:
            return None
        if not hmac.compare_digest(row.secret_hash, hash_secret(parts[2])):
            return None
        return rows.api_key(row)

    def list_api_keys(self, namespace: str | None) -> list[ApiKey]:
        query = sa.select(api_keys).order_by(api_keys.c.created_at)
        query = query.where(
            api_keys.c.namespace.is_(None) if namespace is None
            else api_keys.c.namespace == namespace
        )
        with self._begin() as tx:
            return [rows.api_key(r) for r in tx.execute(query)]

    def revoke_api_key(self, namespace: str | None, key_id: str) -> ApiKey:
        with self._write() as tx:
            scope = (api_keys.c.namespace.is_(None) if namespace is None
                     else api_keys.c.namespace == namespace)
            result = tx.execute(
                api_keys.update()
                .where(api_keys.c.id == key_id, scope, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=now())
            )
            if result.rowcount != 1:
                raise NotFound(f"No active API key '{key_id}' in '{namespace}'.",
                               "List the keys with 'signer api-key list'.")
            row = tx.execute(sa.select(api_keys).where(api_keys.c.id == key_id)).one()
        return rows.api_key(row)

    # -- policies -----------------------------------------------------------------------------
    def add_policy(
        self, namespace: str, issuer: str, claims: dict[str, str], permissions: Iterable[str]
    ) -> Policy:
        policy = Policy(new_id(), namespace, issuer, claims, frozenset(permissions), now())
        with self._write() as tx:
            tx.execute(policies.insert().values(
                id=policy.id, namespace=namespace, issuer=issuer, claims=claims,
                permissions=",".join(sorted(permissions)), created_at=policy.created_at,
            ))
        return policy

    def list_policies(self, namespace: str | None = None) -> list[Policy]:
        query = sa.select(policies).order_by(policies.c.created_at)
        if namespace is not None:
            query = query.where(policies.c.namespace == namespace)
        with self._begin() as tx:
            return [rows.policy(r) for r in tx.execute(query)]

    def remove_policy(self, namespace: str, policy_id: str) -> None:
        with self._write() as tx:
            result = tx.execute(policies.delete().where(
                policies.c.id == policy_id, policies.c.namespace == namespace))
        if result.rowcount != 1:
            raise NotFound(f"No policy '{policy_id}' in '{namespace}'.",
                           "List them with 'signer policy list'.")

    # -- certificates -------------------------------------------------------------------------
    @staticmethod
    def record_certificate(
        tx: sa.Connection, serial: str, namespace: str, identity: str, issuer: str,
        issued_at: datetime, der: bytes,
    ) -> None:
        defer(tx, _INSERT_CERTIFICATE, {
            "serial": serial, "namespace": namespace, "identity": identity, "issuer": issuer,
            "issued_at": issued_at, "der": der})

    # -- signatures ---------------------------------------------------------------------------
    def find_signature(self, namespace: str, name: str, digest: str, signature_sha256: str
                       ) -> SignatureRecord | None:
        """The stored entry for this exact upload, with its revocation, or None."""
        key = (namespace, name, digest, signature_sha256)
        with self._begin() as conn:
            return self.stored_signatures(conn, [key]).get(key)

    @staticmethod
    def stored_signatures(tx: sa.Connection, keys: Sequence[tuple[str, str, str, str]]
                          ) -> dict[tuple[str, str, str, str], SignatureRecord]:
        """The stored entries among ``keys`` (namespace, name, digest, signature's SHA-256),
        in one query, inside the caller's transaction."""
        unique = list(dict.fromkeys(keys))
        if not unique:
            return {}
        params = {f"k{i}_{c}": value for i, key in enumerate(unique)
                  for c, value in enumerate(key)}
        return {(r.namespace, r.name, r.digest, r.signature_sha256): rows.signature(r)
                for r in tx.execute(_stored_signatures(len(unique)), params)}

    @staticmethod
    def insert_signature(tx: sa.Connection, new: NewSignature, log_tree: str,
                         log_index: int) -> SignatureRecord:
        """Write a signature and its artifact's counters, inside the caller's transaction;
        ``log_tree``/``log_index``: its entry (the log's name and the entry's index).

        Returns the stored entry as the reads return it (a new entry has no revocation).
        """
        created = now()
        values = {k: getattr(new, k) for k in _SIGNATURE_FIELDS}
        signature_id = new_id()
        artifact_id = Store._artifact_for(tx, new.namespace, new.name, new.digest,
                                          new.source_repository, created, signatures=1)
        values.update(id=signature_id, artifact_id=artifact_id, created_at=created,
                      log_tree=log_tree, log_index=log_index, revocation_id=None)
        defer(tx, _INSERT_SIGNATURE, values)  # no read in the batch needs it before
        return SignatureRecord(
            id=signature_id, namespace=new.namespace, artifact_id=artifact_id, name=new.name,
            digest=new.digest, signature_sha256=new.signature_sha256, identity=new.identity,
            issuer=new.issuer, source_repository_ref=new.source_repository_ref,
            provenance=new.provenance, certificate_serial=new.certificate_serial,
            signed_at=new.signed_at, created_at=created, log_tree=log_tree,
            log_index=log_index, bundle=new.bundle, revocation=None)

    def signatures_for(self, namespace: str, name: str, digest: str | None = None
                       ) -> list[SignatureRecord]:
        query = (
            rows.WITH_REVOCATION
            .where(signatures.c.namespace == namespace, signatures.c.name == name)
            .order_by(signatures.c.created_at, signatures.c.id)
        )
        if digest is not None:
            query = query.where(signatures.c.digest == digest)
        with self._begin() as tx:
            return [rows.signature(r) for r in tx.execute(query)]

    def list_signatures(self, namespace: str, name_prefix: str = "", limit: int = 100
                        ) -> list[SignatureListing]:
        query = (
            sa.select(signatures.c.id, signatures.c.name, signatures.c.digest,
                      signatures.c.identity, signatures.c.issuer, signatures.c.created_at,
                      signatures.c.source_repository_ref, signatures.c.revocation_id)
            .where(signatures.c.namespace == namespace)
            .order_by(signatures.c.created_at.desc(), signatures.c.id)
            .limit(limit)
        )
        if name_prefix:
            escaped = name_prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            query = query.where(signatures.c.name.like(escaped + "%", escape="\\"))
        with self._begin() as tx:
            return [rows.signature_listing(r) for r in tx.execute(query)]

    def signature(self, namespace: str, sig_id: str) -> SignatureRecord | None:
        query = (
            rows.WITH_REVOCATION
            .where(signatures.c.namespace == namespace, signatures.c.id == sig_id)
        )
        with self._begin() as tx:
            row = tx.execute(query).first()
        return None if row is None else rows.signature(row)

    def get_signature(self, namespace: str, sig_id: str) -> SignatureRecord:
        found = self.signature(namespace, sig_id)
        if found is None:
            raise NotFound(f"No signature '{sig_id}' in namespace '{namespace}'.",
                           "List signatures with 'signer artifact list'.")
        return found

    def log_indexes_of_digest(self, log_tree: str, digest: str) -> set[int]:
        """Log ``log_tree``'s entries for signatures of ``digest`` (any namespace)."""
        with self._begin() as tx:
            return {int(i) for (i,) in tx.execute(
                sa.select(signatures.c.log_index).where(
                    signatures.c.digest == digest, signatures.c.log_tree == log_tree,
                    signatures.c.log_index.is_not(None)))}

    # -- attestations -------------------------------------------------------------------------
    def find_attestation(self, namespace: str, name: str, digest: str, signature_sha256: str
                         ) -> AttestationRecord | None:
        """The stored attestation for this exact envelope, with its revocation, or None."""
        query = rows.ATTESTATION_WITH_REVOCATION.where(
            attestations.c.namespace == namespace, attestations.c.name == name,
            attestations.c.digest == digest,
            attestations.c.signature_sha256 == signature_sha256)
        with self._begin() as conn:
            row = conn.execute(query).first()
        return None if row is None else rows.attestation(row)

    @staticmethod
    def insert_attestation(tx: sa.Connection, new: NewAttestation, log_tree: str,
                           log_index: int) -> AttestationRecord:
        """Write an attestation inside the caller's transaction; its artifact is made if it
        has none yet (an artifact may be attested before, or without, being signed)."""
        created = now()
        artifact_id = Store._artifact_for(tx, new.namespace, new.name, new.digest,
                                          new.source_repository, created)
        attestation_id = new_id()
        values = {k: getattr(new, k) for k in NewAttestation.__dataclass_fields__
                  if k in attestations.c}
        values.update(id=attestation_id, artifact_id=artifact_id, created_at=created,
                      log_tree=log_tree, log_index=log_index, revocation_id=None)
        defer(tx, _INSERT_ATTESTATION, values)
        return AttestationRecord(
            id=attestation_id, namespace=new.namespace, artifact_id=artifact_id,
            name=new.name, digest=new.digest, predicate_type=new.predicate_type,
            signature_sha256=new.signature_sha256, payload_size=new.payload_size,
            identity=new.identity, issuer=new.issuer,
            source_repository_ref=new.source_repository_ref, provenance=new.provenance,
            certificate_serial=new.certificate_serial, signed_at=new.signed_at,
            created_at=created, log_tree=log_tree, log_index=log_index, bundle=new.bundle,
            revocation=None)

    @staticmethod
    def _artifact_for(tx: sa.Connection, namespace: str, name: str, digest: str,
                      source_repository: str | None, at: datetime, signatures: int = 0) -> str:
        """The artifact's id, its row created or its ``updated_at`` moved to ``at``;
        ``signatures``: how many signatures to add to its count. A new artifact takes
        ``source_repository``; a known one keeps its own. Inside a log batch that resolved
        its artifacts (:meth:`resolve_artifacts`), the row is there and counted already."""
        resolved = (batch_state(tx) or {}).get(_RESOLVED_ARTIFACTS, {})
        known: str | None = resolved.get((namespace, name, digest))
        if known is not None:
            return known
        return str(tx.execute(_UPSERT_ARTIFACT[tx.dialect.name], {
            "id": new_id(), "ns": namespace, "b_name": name, "b_digest": digest,
            "source": source_repository, "at": at, "count": signatures}).scalar_one())

    @staticmethod
    def resolve_artifacts(tx: sa.Connection, news: Iterable[NewSignature | NewAttestation],
                          signatures: int) -> None:
        """The artifacts of a log batch's rows (``news``), created or touched in one statement
        (instead of one round trip per row) before any row is written, each counted with
        ``signatures`` per row: every row of the batch that names an artifact is resolved
        here, so its insert does not count it again."""
        state = batch_state(tx)
        if state is None:
            return
        counts: dict[tuple[str, str, str], tuple[str | None, int]] = {}
        for new in news:  # a new artifact takes the source of its first row, as one by one
            key = (new.namespace, new.name, new.digest)
            source, count = counts.get(key, (new.source_repository, 0))
            counts[key] = (source, count + signatures)
        if not counts:
            return
        at = now()
        found = tx.execute(_UPSERT_ARTIFACT[tx.dialect.name], [
            {"id": new_id(), "ns": ns, "b_name": name, "b_digest": digest, "source": source,
             "at": at, "count": count}
            for (ns, name, digest), (source, count) in counts.items()])
        resolved = state.setdefault(_RESOLVED_ARTIFACTS, {})
        for artifact_id, ns, name, digest in found:
            resolved[(ns, name, digest)] = str(artifact_id)

    def attestations_for(self, namespace: str, name: str, digest: str | None = None,
                         predicate_type: str | None = None) -> list[AttestationRecord]:
        query = (
            rows.ATTESTATION_WITH_REVOCATION
            .where(attestations.c.namespace == namespace, attestations.c.name == name)
            .order_by(attestations.c.created_at, attestations.c.id)
        )
        if digest is not None:
            query = query.where(attestations.c.digest == digest)
        if predicate_type is not None:
            query = query.where(attestations.c.predicate_type == predicate_type)
        with self._begin() as tx:
            return [rows.attestation(r) for r in tx.execute(query)]

    def attestations_of_artifact(self, namespace: str, artifact_id: str
                                 ) -> list[AttestationRecord]:
        query = (rows.ATTESTATION_WITH_REVOCATION
                 .where(attestations.c.namespace == namespace,
                        attestations.c.artifact_id == artifact_id)
                 .order_by(attestations.c.created_at, attestations.c.id))
        with self._begin() as tx:
            return [rows.attestation(r) for r in tx.execute(query)]

    def attestation(self, namespace: str, attestation_id: str) -> AttestationRecord | None:
        query = rows.ATTESTATION_WITH_REVOCATION.where(
            attestations.c.namespace == namespace, attestations.c.id == attestation_id)
        with self._begin() as tx:
            row = tx.execute(query).first()
        return None if row is None else rows.attestation(row)

    # -- revocation ---------------------------------------------------------------------------
    @staticmethod
    def revoke(tx: sa.Connection, namespace: str, name: str, ref: str, reason: str, who: str,
               at: datetime, log_index: int | None) -> tuple[str, int]:
        """Mark every matching, not yet revoked signature and attestation; nothing is deleted."""
        flush_deferred(tx)  # signatures logged earlier in the same batch are matched too
        rev_id = new_id()
        match = (signatures.c.namespace == namespace, signatures.c.name == name,
                 signatures.c.source_repository_ref == ref,
                 signatures.c.revocation_id.is_(None))
        affected = [r.artifact_id for r in tx.execute(
            sa.select(signatures.c.artifact_id).where(*match))]
        tx.execute(revocations.insert().values(
            id=rev_id, namespace=namespace, name=name, source_repository_ref=ref,
            reason=reason, revoked_by=who, revoked_at=at, count=len(affected),
            log_index=log_index))
        tx.execute(signatures.update().where(*match).values(revocation_id=rev_id))
        # Attestations made from the bad ref are revoked with its signatures.
        attested = (attestations.c.namespace == namespace, attestations.c.name == name,
                    attestations.c.source_repository_ref == ref,
                    attestations.c.revocation_id.is_(None))
        attested_count = tx.execute(attestations.update().where(*attested).values(
            revocation_id=rev_id)).rowcount
        if attested_count:
            tx.execute(revocations.update().where(revocations.c.id == rev_id).values(
                count=len(affected) + attested_count))
        for artifact_id in set(affected):
            tx.execute(artifacts.update().where(artifacts.c.id == artifact_id).values(
                updated_at=at,
                revoked_count=artifacts.c.revoked_count + affected.count(artifact_id)))
        return rev_id, len(affected) + attested_count

    # -- issuers ------------------------------------------------------------------------------
    def add_issuer(self, url: str, kind: str, server_url: str | None, allow_http: bool,
                   created_by: str) -> DeclaredIssuer:
        row = DeclaredIssuer(url, kind, server_url, allow_http, now(), created_by)
        try:
            with self._write() as tx:
                tx.execute(issuers.insert().values(
                    url=url, kind=kind, server_url=server_url, allow_http=allow_http,
                    created_at=row.created_at, created_by=created_by))
        except IntegrityError as exc:
            raise Conflict(f"The issuer '{url}' is already declared.",
                           "Remove it first ('signer issuer remove --url …') to change it."
                           ) from exc
        return row

    def list_issuers(self) -> list[DeclaredIssuer]:
        with self._begin() as tx:
            return [rows.declared_issuer(r)
                    for r in tx.execute(sa.select(issuers).order_by(issuers.c.url))]

    def remove_issuer(self, url: str) -> None:
        with self._write() as tx:
            result = tx.execute(issuers.delete().where(issuers.c.url == url))
        if result.rowcount != 1:
            raise NotFound(f"No declared issuer '{url}'.",
                           "List them with 'signer issuer list'.")

    # -- web sessions -------------------------------------------------------------------------
    def add_web_session(self, token_hash: str, namespace: str, api_key_id: str,
                        csrf_token: str, created_at: datetime, expires_at: datetime) -> None:
        """Store a sign-in to the page, and drop the sign-ins that have expired."""
        with self._begin() as tx:
            tx.execute(web_sessions.delete().where(web_sessions.c.expires_at < created_at))
            tx.execute(web_sessions.insert().values(
                token_hash=token_hash, namespace=namespace, api_key_id=api_key_id,
                csrf_token=csrf_token, created_at=created_at, expires_at=expires_at))

    def web_session(self, token_hash: str) -> WebSessionRecord | None:
        """The sign-in with this token hash, with its API key as the key is now."""
        query = (
            sa.select(web_sessions.c.namespace, web_sessions.c.csrf_token,
                      web_sessions.c.expires_at, api_keys.c.name, api_keys.c.permissions,
                      api_keys.c.namespace.label("key_namespace"), api_keys.c.revoked_at)
            .select_from(web_sessions.join(api_keys,
                                           web_sessions.c.api_key_id == api_keys.c.id))
            .where(web_sessions.c.token_hash == token_hash)
        )
        with self._begin() as tx:
            row = tx.execute(query).first()
        return None if row is None else rows.web_session(row)

    def remove_web_session(self, token_hash: str) -> None:
        with self._begin() as tx:
            tx.execute(web_sessions.delete().where(web_sessions.c.token_hash == token_hash))

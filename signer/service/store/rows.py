"""Database rows → records, and the one select of a signature with its revocation."""

from __future__ import annotations

from dataclasses import fields
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from signer.service.schema import artifacts, attestations, revocations, signatures
from signer.service.store.records import (
    ApiKey,
    ArtifactRecord,
    AttestationRecord,
    DeclaredIssuer,
    Policy,
    RevocationRecord,
    SignatureListing,
    SignatureRecord,
    WebSessionRecord,
    permission_set,
    provenance,
)

if TYPE_CHECKING:
    from typing import TypeAlias

    Row: TypeAlias = sa.Row[*tuple[Any, ...]]  # any select's row

# A signature with its revocation (who, when, why, and the revocation's log entry), if any.
WITH_REVOCATION = sa.select(
    signatures, revocations.c.reason, revocations.c.revoked_by, revocations.c.revoked_at,
    revocations.c.log_index.label("revocation_log_index"),
).select_from(signatures.outerjoin(revocations, signatures.c.revocation_id == revocations.c.id))


def signature(row: Row) -> SignatureRecord:
    """A row of WITH_REVOCATION."""
    revocation = None if row.revocation_id is None else RevocationRecord(
        row.reason, row.revoked_by, row.revoked_at, row.revocation_log_index)
    return SignatureRecord(
        id=row.id, namespace=row.namespace, artifact_id=row.artifact_id, name=row.name,
        digest=row.digest, signature_sha256=row.signature_sha256, identity=row.identity,
        issuer=row.issuer, source_repository_ref=row.source_repository_ref,
        provenance=provenance(row.provenance), certificate_serial=row.certificate_serial,
        signed_at=row.signed_at, created_at=row.created_at,
        log_tree=row.log_tree, log_index=row.log_index,
        bundle=row.bundle, revocation=revocation)


# An attestation with its revocation, as WITH_REVOCATION is for signatures.
ATTESTATION_WITH_REVOCATION = sa.select(
    attestations, revocations.c.reason, revocations.c.revoked_by, revocations.c.revoked_at,
    revocations.c.log_index.label("revocation_log_index"),
).select_from(attestations.outerjoin(revocations,
                                     attestations.c.revocation_id == revocations.c.id))


def attestation(row: Row) -> AttestationRecord:
    """A row of ATTESTATION_WITH_REVOCATION."""
    revocation = None if row.revocation_id is None else RevocationRecord(
        row.reason, row.revoked_by, row.revoked_at, row.revocation_log_index)
    return AttestationRecord(
        id=row.id, namespace=row.namespace, artifact_id=row.artifact_id, name=row.name,
        digest=row.digest, predicate_type=row.predicate_type,
        signature_sha256=row.signature_sha256, payload_size=row.payload_size,
        identity=row.identity, issuer=row.issuer,
        source_repository_ref=row.source_repository_ref,
        provenance=provenance(row.provenance), certificate_serial=row.certificate_serial,
        signed_at=row.signed_at, created_at=row.created_at,
        log_tree=row.log_tree, log_index=row.log_index,
        bundle=row.bundle, revocation=revocation)


# The artifact columns in ArtifactRecord's order, so that a row is the record's arguments
# (the page converts 51 rows a request; access by name costs more than the query).
ARTIFACTS = sa.select(*(artifacts.c[f.name] for f in fields(ArtifactRecord)))


def artifact(row: Row) -> ArtifactRecord:
    """A row of ARTIFACTS."""
    return ArtifactRecord(*row)


def signature_listing(row: Row) -> SignatureListing:
    return SignatureListing(row.id, row.name, row.digest, row.identity, row.issuer,
                            row.source_repository_ref, row.created_at,
                            row.revocation_id is not None)


def api_key(row: Row) -> ApiKey:
    return ApiKey(row.id, row.namespace, row.name, permission_set(row.permissions),
                  row.created_at, row.revoked_at)


def policy(row: Row) -> Policy:
    return Policy(row.id, row.namespace, row.issuer, dict(row.claims),
                  permission_set(row.permissions), row.created_at)


def declared_issuer(row: Row) -> DeclaredIssuer:
    return DeclaredIssuer(row.url, row.kind, row.server_url, bool(row.allow_http),
                          row.created_at, row.created_by)


def web_session(row: Row) -> WebSessionRecord:
    """A row of web_sessions joined with its API key's name, namespace, permissions and
    revocation."""
    return WebSessionRecord(row.namespace, row.csrf_token, row.expires_at, row.name,
                            row.key_namespace, permission_set(row.permissions), row.revoked_at)

"""The stored rows other modules see: typed, immutable, built once from a database row."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    namespace: str | None
    name: str
    permissions: frozenset[str]
    created_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class Policy:
    id: str
    namespace: str
    issuer: str
    claims: dict[str, str]
    permissions: frozenset[str]
    created_at: datetime


@dataclass(frozen=True, slots=True)
class DeclaredIssuer:
    """An operator's declaration of an issuer, as stored; ``server_url`` None: the default."""

    url: str
    kind: str
    server_url: str | None
    allow_http: bool
    created_at: datetime
    created_by: str


@dataclass(frozen=True, slots=True)
class NewSignature:
    """A signature to store (its id, artifact and times are the store's to set)."""

    namespace: str
    name: str
    digest: str
    signature_sha256: str
    identity: str
    issuer: str
    source_repository: str | None
    source_repository_ref: str | None
    provenance: dict[str, str]
    certificate_serial: str
    signed_at: datetime
    bundle: str


@dataclass(frozen=True, slots=True)
class RevocationRecord:
    """Who revoked a signature, when, why, and the revocation's log entry."""

    reason: str
    revoked_by: str
    revoked_at: datetime
    log_index: int | None


@dataclass(frozen=True, slots=True)
class SignatureRecord:
    """A stored signature, with its bundle and its revocation, if any."""

    id: str
    namespace: str
    artifact_id: str
    name: str
    digest: str
    signature_sha256: str
    identity: str
    issuer: str
    source_repository_ref: str | None
    provenance: dict[str, str]
    certificate_serial: str
    signed_at: datetime
    created_at: datetime
    log_tree: str | None  # the log log_index is in: "tlog" (Rekor v1) or "tlog2" (Rekor v2)
    log_index: int | None
    bundle: str
    revocation: RevocationRecord | None

    @property
    def revoked(self) -> bool:
        return self.revocation is not None


@dataclass(frozen=True, slots=True)
class SignatureListing:
    """A signature as the API's list shows it: no bundle, no provenance."""

    id: str
    name: str
    digest: str
    identity: str
    issuer: str
    source_repository_ref: str | None
    created_at: datetime
    revoked: bool


@dataclass(frozen=True, slots=True)
class NewAttestation:
    """An attestation to store: a signature's fields plus its predicate type and payload."""

    namespace: str
    name: str
    digest: str
    predicate_type: str
    signature_sha256: str
    payload_sha256: str
    payload_size: int
    identity: str
    issuer: str
    source_repository: str | None
    source_repository_ref: str | None
    provenance: dict[str, str]
    certificate_serial: str
    signed_at: datetime
    bundle: str


@dataclass(frozen=True, slots=True)
class AttestationRecord:
    """A stored attestation, with its bundle (which holds the statement) and revocation."""

    id: str
    namespace: str
    artifact_id: str
    name: str
    digest: str
    predicate_type: str
    signature_sha256: str
    payload_size: int
    identity: str
    issuer: str
    source_repository_ref: str | None
    provenance: dict[str, str]
    certificate_serial: str
    signed_at: datetime
    created_at: datetime
    log_tree: str | None  # the log log_index is in: "tlog" (Rekor v1) or "tlog2" (Rekor v2)
    log_index: int | None
    bundle: str
    revocation: RevocationRecord | None

    @property
    def revoked(self) -> bool:
        return self.revocation is not None


@dataclass(frozen=True, slots=True)
class ArtifactRecord:
    """A name and digest of a namespace, with the counters the page sorts and filters by."""

    id: str
    namespace: str
    name: str
    digest: str
    source_repository: str | None
    created_at: datetime
    updated_at: datetime
    signature_count: int
    revoked_count: int


@dataclass(frozen=True, slots=True)
class WebSessionRecord:
    """A sign-in to the page, with the API key it was made with as the key is now."""

    namespace: str
    csrf_token: str
    expires_at: datetime
    key_name: str
    key_namespace: str | None
    key_permissions: frozenset[str]
    key_revoked_at: datetime | None


def permission_set(text: str) -> frozenset[str]:
    """The permissions column: comma-separated names."""
    return frozenset(p for p in text.split(",") if p)


def provenance(value: Any) -> dict[str, str]:
    """The provenance column: a JSON object (a text on a database without a JSON type)."""
    return dict(value if isinstance(value, dict) else json.loads(value))

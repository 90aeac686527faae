"""Typed request and response bodies of the HTTP API (OpenAPI is generated from these)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

NAME_MAX = 600
PEM_MAX = 16 * 1024


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Problem(BaseModel):
    """RFC 9457 problem document."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    request_id: str = Field(description="Also the X-Request-Id header; finds the refusal's "
                                        "line in the audit log")


class CertificateRequest(Model):
    namespace: str = Field(max_length=64)
    csr: str = Field(max_length=PEM_MAX, description="PEM PKCS#10 request, ECDSA P-256 key")
    provenance: dict[str, str] = Field(
        default_factory=dict, max_length=16,
        description="Declared provenance (API keys), or flags to check against the token",
    )


class CertificateResponse(Model):
    certificate_chain: list[str] = Field(description="PEM: leaf, intermediate, root")
    identity: str
    issuer: str
    provenance: dict[str, str]


class SignatureRequest(Model):
    namespace: str = Field(max_length=64)
    name: str = Field(max_length=NAME_MAX, description="name@sha256:<64 hex>")
    certificate: str = Field(max_length=PEM_MAX, description="PEM leaf certificate")
    signature: str = Field(max_length=512, description="base64 DER ECDSA signature")


class SignRequest(Model):
    """One request per signing: the client signed the digest with the CSR's key already."""

    namespace: str = Field(max_length=64)
    name: str = Field(max_length=NAME_MAX, description="name@sha256:<64 hex>")
    csr: str = Field(max_length=PEM_MAX, description="PEM PKCS#10 request, ECDSA P-256 key")
    signature: str = Field(max_length=512,
                           description="base64 DER ECDSA signature over the digest, by the "
                                       "CSR's key")
    provenance: dict[str, str] = Field(
        default_factory=dict, max_length=16,
        description="Declared provenance (API keys), or flags to check against the token",
    )


LOG_TREE_DOC = ("The log that log_index is in: 'tlog', Rekor v1 (GET /api/v1/log/entries"
                "?logIndex=), or 'tlog2', Rekor v2 (GET /api/v2/tile/entries/…); null with "
                "log_index when not logged")


class RevocationInfo(Model):
    reason: str
    revoked_by: str
    revoked_at: datetime
    log_index: int | None = Field(description="The revocation's entry in the transparency log")


class SignatureView(Model):
    id: str
    namespace: str
    name: str
    digest: str
    identity: str
    issuer: str
    provenance: dict[str, str]
    signed_at: datetime
    created_at: datetime
    revoked: bool
    log_tree: str | None = Field(description=LOG_TREE_DOC)
    log_index: int | None
    revocation: RevocationInfo | None
    bundle: dict[str, Any]


class SignatureSummary(Model):
    id: str
    name: str
    digest: str
    identity: str
    issuer: str
    source_repository_ref: str | None
    created_at: datetime
    revoked: bool


class SignatureList(Model):
    signatures: list[SignatureSummary]


class Entries(Model):
    entries: list[SignatureView]


class AttestationRequest(Model):
    namespace: str = Field(max_length=64)
    name: str = Field(max_length=NAME_MAX, description="name@sha256:<64 hex>")
    certificate: str = Field(max_length=PEM_MAX, description="PEM leaf certificate")
    envelope: str = Field(description="The DSSE envelope's JSON, as signed (its SHA-256 is "
                                      "the log entry's envelopeHash)")


class AttestationView(Model):
    id: str
    namespace: str
    name: str
    digest: str
    predicate_type: str
    identity: str
    issuer: str
    provenance: dict[str, str]
    signed_at: datetime
    created_at: datetime
    revoked: bool
    log_tree: str | None = Field(description=LOG_TREE_DOC)
    log_index: int | None
    revocation: RevocationInfo | None
    bundle: dict[str, Any]


class Attestations(Model):
    attestations: list[AttestationView]


class ProvenanceResponse(Model):
    predicate_type: str
    predicate: dict[str, Any]


class RevocationRequest(Model):
    namespace: str = Field(max_length=64)
    name: str = Field(max_length=NAME_MAX)
    source_repository_ref: str = Field(min_length=1, max_length=512)
    reason: str = Field(default="", max_length=1024)


class RevocationResponse(Model):
    id: str
    revoked_count: int
    revoked_at: datetime
    log_index: int


class NamespaceRequest(Model):
    name: str = Field(max_length=64)


class NamespaceView(Model):
    name: str
    created_at: datetime


class NamespaceList(Model):
    namespaces: list[NamespaceView]


class PolicyRequest(Model):
    issuer: str = Field(max_length=512)
    claims: dict[str, str] = Field(min_length=1, max_length=16,
                                   description="At least one claim: an empty policy would "
                                               "admit every token of the issuer")
    permissions: list[str] = Field(max_length=4)


class PolicyView(Model):
    id: str
    namespace: str
    issuer: str
    claims: dict[str, str]
    permissions: list[str]
    created_at: datetime


class PolicyList(Model):
    policies: list[PolicyView]


class ApiKeyRequest(Model):
    name: str = Field(max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    permissions: list[str] = Field(max_length=4)


class ApiKeyView(Model):
    id: str
    namespace: str | None
    name: str
    permissions: list[str]
    created_at: datetime
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyView):
    token: str = Field(description="Shown once; only its hash is stored")


class ApiKeyList(Model):
    api_keys: list[ApiKeyView]


class IssuerRequest(Model):
    url: str = Field(max_length=512, description="The issuer URL, as its tokens' 'iss' says")
    type: str = Field(max_length=16, description="github, gitlab, buildkite or generic")
    server_url: str | None = Field(default=None, max_length=512,
                                   description="github/gitlab: the web origin provenance URLs "
                                               "point at [default: from the issuer URL]")
    allow_http: bool = Field(default=False, description="Accept a plain-http issuer (tests)")


class IssuerView(Model):
    url: str
    type: str
    server_url: str | None = Field(description="What certificates build URLs on (None: "
                                               "generic, no URLs)")
    allow_http: bool
    created_at: datetime
    created_by: str


class IssuerList(Model):
    issuers: list[IssuerView]

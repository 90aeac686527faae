"""Rekor's write API, so that Sigstore's clients log their signatures in signer.

``POST /api/v1/log/entries`` takes a ``hashedrekord`` 0.0.1 proposed entry (rekor's
openapi) and answers 201 with the v1 LogEntry the read API renders. Every accepted entry is
a signature in signer's store, made by `SigningService.submit_signature` as an upload to
``/v1/signatures`` is: timestamped, listed, on the page, verifiable, revocable.

Who may write: Rekor takes writes without credentials, and so does this route, but only
under a leaf this service's CA issued, valid now: the leaf names the namespace and identity
the policies admitted minutes ago, and the signature over the digest proves its key
(`Authenticator.leaf_holder`). Under ``/ns/<namespace>`` the leaf must be that namespace's.

The name: a Rekor entry names no artifact, only its digest, so the signature is stored as
``sha256:<hex>@sha256:<hex>`` (the name is the digest itself); list, verify and revoke it
by that name.
"""

from __future__ import annotations

import base64
from typing import Annotated, Any

import rfc8785
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from fastapi import APIRouter, Body, Request, Response

from signer.errors import Conflict, PermissionDenied, UsageError
from signer.service import limits, log_api
from signer.service.dependencies import RuntimeDep
from signer.service.fulcio_api import url_namespace
from signer.service.runtime import Runtime
from signer.transparency import rekor_bodies
from signer.transparency.rekor_bodies import HashedRekordV001, RekorBodyError

PEM_KEY_MEDIA_TYPE = "application/x-pem-file"


def artifact_name(digest_hex: str) -> str:
    """The name a digest-only entry is stored under (see the module's notes)."""
    return f"sha256:{digest_hex}@sha256:{digest_hex}"


def _hashedrekord(proposed: dict[str, Any]) -> HashedRekordV001:
    kind, version = proposed.get("kind"), proposed.get("apiVersion")
    if (kind, version) != (rekor_bodies.HASHEDREKORD_KIND, rekor_bodies.V001):
        raise UsageError(
            f"signer logs 'hashedrekord' 0.0.1 entries here, not {str(kind)[:40]!r} "
            f"{str(version)[:20]!r}.", "Send a hashedrekord 0.0.1 proposed entry.")
    try:
        parsed = rekor_bodies.parse_body(rfc8785.dumps(proposed))
    except (RekorBodyError, TypeError, ValueError) as exc:
        raise UsageError(f"The proposed entry is malformed: {exc}.",
                         "Send the entry as rekor's openapi defines hashedrekord 0.0.1.") from exc
    assert isinstance(parsed, HashedRekordV001)
    if parsed.algorithm != "sha256":
        raise UsageError(f"The entry's digest is {parsed.algorithm}; signer logs sha256.",
                         "Hash the artifact with SHA-256.")
    return parsed


def _leaf(pem: bytes) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise UsageError(
            "spec.signature.publicKey is not a PEM certificate: signer logs signatures made "
            "under its own leaf certificates only, not bare keys.",
            "Sign keyless: get a certificate from this service's /api/v2/signingCert.") from exc


def _store(rt: Runtime, request: Request, entry: HashedRekordV001) -> dict[str, Any]:
    cert = _leaf(entry.public_key)
    holder = rt.auth.leaf_holder(cert, rt.service.ca.certificate)
    limits.check(request, holder)
    named = url_namespace(request)
    if named is not None and named != holder.leaf_namespace:
        raise PermissionDenied(
            f"The certificate was issued for namespace '{holder.leaf_namespace}', and this "
            f"URL is namespace '{named}''s.",
            "Log the signature at the URL of the namespace that issued the certificate.")
    assert holder.leaf_namespace is not None
    row, created = rt.service.submit_signature(
        holder, holder.leaf_namespace, artifact_name(entry.digest.hex()),
        cert.public_bytes(Encoding.PEM).decode(), base64.b64encode(entry.signature).decode())
    if not created:
        raise Conflict(f"An equivalent entry already exists at log index {row.log_index}.",
                       "The signature is logged; fetch it with GET "
                       f"/api/v1/log/entries?logIndex={row.log_index}.")
    assert row.log_index is not None
    return log_api.rekor_entry(rt, rt.service.tlog.entry(row.log_index))


def routes(prefix: str) -> APIRouter:
    api = APIRouter(prefix=prefix, tags=["sigstore: rekor"])

    @api.post("/api/v1/log/entries", status_code=201)
    def create_entry(request: Request, rt: RuntimeDep,
                     proposed: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
        return _store(rt, request, _hashedrekord(proposed))

    @api.get("/api/v1/log/publicKey", response_class=Response,
             responses={200: {"content": {PEM_KEY_MEDIA_TYPE: {}}}})
    def public_key(request: Request, rt: RuntimeDep) -> Response:
        url_namespace(request)
        pem = rt.service.tlog.signer.public_key.public_bytes(
            Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
        return Response(pem, media_type=PEM_KEY_MEDIA_TYPE)

    return api

"""Rekor's write APIs, so that Sigstore's clients log their signatures in signer.

``POST /api/v1/log/entries`` takes a proposed entry (rekor's openapi), ``hashedrekord`` or
``dsse`` 0.0.1, logs it in the v1 log and answers 201 with the v1 LogEntry the read API
renders. ``POST /api/v2/log/entries`` takes a Rekor v2 ``CreateEntryRequest``
(``hashedRekordRequestV002`` or ``dsseRequestV002``), logs it in the v2 tile log and answers
201 with the TransparencyLogEntry as protobuf JSON (what sigstore-python's ``RekorV2Client``
reads: log id = checkpoint key id, integrated time 0, no promise). An entry logged already is
a 409 naming its log and index.

Every accepted entry is in signer's store, as an upload to ``/v1`` would be: timestamped,
listed, on the page, verifiable, revocable. A signed digest is a signature
(`SigningService.submit_signature`), a DSSE envelope an attestation
(`AttestingService.log_envelope`).

Who may write: Rekor takes writes without credentials, and so do these routes, but only
under a leaf this service's CA issued, valid now: the leaf names the namespace and identity
the policies admitted minutes ago, and the signature over the digest (or the DSSE PAE)
proves its key (`Authenticator.leaf_holder`). Under ``/ns/<namespace>`` the leaf must be
that namespace's.

The name: a hashedrekord names no artifact, only its digest, so the signature is stored as
``sha256:<hex>@sha256:<hex>`` (the name is the digest itself); list, verify and revoke it by
that name. An attestation is named by its statement's subject (`attesting.subject_ref`).
"""

from __future__ import annotations

import base64
import json
from typing import Annotated, Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from fastapi import APIRouter, Body, Request, Response

from signer.artifact import digest_named
from signer.errors import Conflict, PermissionDenied, UsageError
from signer.service import attesting, limits, log_api
from signer.service.auth import Principal
from signer.service.dependencies import RuntimeDep
from signer.service.fulcio_api import url_namespace
from signer.service.runtime import Runtime
from signer.service.signing import RekorVersion
from signer.service.store import AttestationRecord, SignatureRecord
from signer.sigstore_json import DsseEnvelope
from signer.transparency import rekor_bodies
from signer.transparency.rekor_bodies import HashedRekordV001, RekorBodyError, V2Verifier

PEM_KEY_MEDIA_TYPE = "application/x-pem-file"
_KEYLESS = "Sign keyless: get a certificate from this service's /api/v2/signingCert."
Stored = SignatureRecord | AttestationRecord


def artifact_name(digest_hex: str) -> str:
    """The name a digest-only entry is stored under (see the module's notes)."""
    return str(digest_named(digest_hex))


# -- the requests, parsed ------------------------------------------------------------------------
def _v1_entry(proposed: dict[str, Any]) -> rekor_bodies.ProposedEntry:
    try:
        entry = rekor_bodies.parse_proposed_entry(proposed)
    except RekorBodyError as exc:
        raise UsageError(f"The proposed entry is malformed: {exc}.",
                         "Send a hashedrekord or dsse 0.0.1 entry as rekor's openapi defines "
                         "it.") from exc
    if isinstance(entry, HashedRekordV001) and entry.algorithm != "sha256":
        raise UsageError(f"The entry's digest is {entry.algorithm}; signer logs sha256.",
                         "Hash the artifact with SHA-256.")
    return entry


def _v2_request(body: dict[str, Any]) -> rekor_bodies.CreateEntryRequest:
    try:
        return rekor_bodies.parse_create_entry_request(json.dumps(body))
    except RekorBodyError as exc:
        raise UsageError(f"The request is malformed: {exc}.",
                         "Send a Rekor v2 CreateEntryRequest (protobuf JSON) with "
                         "hashedRekordRequestV002 or dsseRequestV002.") from exc


def _pem_leaf(pem: bytes, field: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise UsageError(
            f"{field} is not a PEM certificate: signer logs signatures made under its own "
            "leaf certificates only, not bare keys.", _KEYLESS) from exc


def _v2_leaf(verifiers: tuple[V2Verifier, ...], field: str) -> tuple[x509.Certificate, str]:
    """The one verifier's certificate, and the keyDetails the request names for it."""
    if len(verifiers) != 1:
        raise UsageError(f"{field} holds {len(verifiers)} verifiers; signer logs entries "
                         "signed under one of its leaf certificates.",
                         "Send exactly one verifier: the leaf's x509Certificate.")
    verifier = verifiers[0]
    if verifier.x509_certificate is None:
        raise UsageError(f"{field} is a bare public key: signer logs signatures made under its "
                         "own leaf certificates only.", _KEYLESS)
    try:
        cert = x509.load_der_x509_certificate(verifier.x509_certificate.raw_bytes)
    except ValueError as exc:
        raise UsageError(f"{field}.x509Certificate is not a DER certificate.", _KEYLESS) from exc
    return cert, verifier.key_details


def _one_pem_leaf(proposal: rekor_bodies.DsseProposalV001) -> x509.Certificate:
    if len(proposal.verifiers) != 1:
        raise UsageError(f"spec.proposedContent.verifiers holds {len(proposal.verifiers)} "
                         "verifiers; signer logs envelopes signed under one of its leaf "
                         "certificates.", "Send exactly one verifier: the leaf's PEM, base64.")
    return _pem_leaf(proposal.verifiers[0], "spec.proposedContent.verifiers[0]")


# -- the decisions of every write ----------------------------------------------------------------
def _holder(rt: Runtime, request: Request, cert: x509.Certificate) -> Principal:
    holder = rt.auth.leaf_holder(cert, rt.service.ca.certificate)
    limits.check(request, holder)
    named = url_namespace(request)
    if named is not None and named != holder.leaf_namespace:
        raise PermissionDenied(
            f"The certificate was issued for namespace '{holder.leaf_namespace}', and this "
            f"URL is namespace '{named}''s.",
            "Log the signature at the URL of the namespace that issued the certificate.")
    return holder


def _check_key_details(cert: x509.Certificate, named: str) -> None:
    """A v2 entry records the verifier's keyDetails: it must be the leaf key's."""
    actual = rekor_bodies.certificate_verifier(cert).key_details
    if named != actual:
        raise UsageError(f"The verifier's keyDetails is {named[:40]!r}; the certificate's key "
                         f"is {actual}.", f"Send keyDetails {actual}.")


def _created(rt: Runtime, row: Stored, created: bool) -> Stored:
    """``row`` if this request logged it; else the 409 naming the entry logged before."""
    if created:
        return row
    if row.log_index is None:
        raise Conflict("An equivalent entry is already stored.", "Nothing to do.")
    if row.log_tree == rt.service.tlog_v2.name:
        raise Conflict(f"An equivalent entry already exists in the Rekor v2 log at index "
                       f"{row.log_index}.", "The entry is logged; nothing to do.")
    raise Conflict(f"An equivalent entry already exists in the Rekor v1 log at index "
                   f"{row.log_index}.", "The entry is logged; fetch it with GET "
                   f"/api/v1/log/entries?logIndex={row.log_index}.")


def _signature(rt: Runtime, holder: Principal, cert: x509.Certificate, digest: bytes,
               signature: bytes, rekor_version: RekorVersion) -> Stored:
    assert holder.leaf_namespace is not None
    row, created = rt.service.submit_signature(
        holder, holder.leaf_namespace, artifact_name(digest.hex()),
        cert.public_bytes(Encoding.PEM).decode(), base64.b64encode(signature).decode(),
        rekor_version)
    return _created(rt, row, created)


def _attestation(rt: Runtime, holder: Principal, cert: x509.Certificate,
                 envelope: DsseEnvelope, envelope_json: str | None,
                 rekor_version: RekorVersion) -> Stored:
    row, created = rt.attesting.log_envelope(holder, cert, envelope, envelope_json,
                                             rekor_version)
    return _created(rt, row, created)


def _v1_store(rt: Runtime, request: Request, entry: rekor_bodies.ProposedEntry) -> Stored:
    if isinstance(entry, HashedRekordV001):
        cert = _pem_leaf(entry.public_key, "spec.signature.publicKey")
        return _signature(rt, _holder(rt, request, cert), cert, entry.digest, entry.signature,
                          1)
    cert = _one_pem_leaf(entry)
    holder = _holder(rt, request, cert)
    return _attestation(rt, holder, cert, attesting.parse_envelope(entry.envelope_json),
                        entry.envelope_json, 1)


def _v2_store(rt: Runtime, request: Request, entry: rekor_bodies.CreateEntryRequest
              ) -> Stored:
    hashed, signed = entry.hashed_rekord_request_v002, entry.dsse_request_v002
    if hashed is not None:
        cert, key_details = _v2_leaf((hashed.signature.verifier,),
                                     "hashedRekordRequestV002.signature.verifier")
        holder = _holder(rt, request, cert)  # ours (a P-256 leaf) before its key is read
        _check_key_details(cert, key_details)
        return _signature(rt, holder, cert, hashed.digest, hashed.signature.content, 2)
    assert signed is not None
    cert, key_details = _v2_leaf(signed.verifiers, "dsseRequestV002.verifiers")
    holder = _holder(rt, request, cert)
    _check_key_details(cert, key_details)
    return _attestation(rt, holder, cert, signed.envelope, None, 2)


def routes(prefix: str) -> APIRouter:
    api = APIRouter(prefix=prefix, tags=["sigstore: rekor"])

    @api.post("/api/v1/log/entries", status_code=201)
    def create_entry(request: Request, rt: RuntimeDep,
                     proposed: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
        row = _v1_store(rt, request, _v1_entry(proposed))
        assert row.log_index is not None
        return log_api.rekor_entry(rt, rt.service.tlog.entry(row.log_index))

    @api.post("/api/v2/log/entries", status_code=201)
    def create_entry_v2(request: Request, rt: RuntimeDep,
                        body: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
        row = _v2_store(rt, request, _v2_request(body))
        # The entry as the stored bundle holds it (protobuf JSON): no parse of the bundle.
        entry: dict[str, Any] = json.loads(row.bundle)["verificationMaterial"]["tlogEntries"][0]
        return entry

    @api.get("/api/v1/log/publicKey", response_class=Response,
             responses={200: {"content": {PEM_KEY_MEDIA_TYPE: {}}}})
    def public_key(request: Request, rt: RuntimeDep) -> Response:
        url_namespace(request)
        pem = rt.service.tlog.signer.public_key.public_bytes(
            Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
        return Response(pem, media_type=PEM_KEY_MEDIA_TYPE)

    return api

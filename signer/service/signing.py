"""The service's use cases: issue a certificate, accept a signature, revoke, look up.

Routes translate HTTP to these calls and back; every check lives here or below.

A signature is logged in the log of the Rekor API it came through (`RekorVersion`): the v1
log ``tlog`` (``/v1``, the CLI, Rekor v1: ``hashedrekord`` 0.0.1 with an inclusion promise)
or the v2 tile log ``tlog2`` (Rekor v2: ``hashedrekord`` 0.0.2, no promise); the stored row
names its log beside the index (``log_tree``: see `signer.service.store`).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import json
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import pydantic_core
import rfc8785
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from signer import bundle as bundles
from signer.artifact import ArtifactRef, check_name, parse_ref
from signer.errors import NotFound, PermissionDenied, Unavailable, UsageError
from signer.provenance import BY_KEY, Provenance
from signer.service.audit import Audit
from signer.service.auth import Authenticator, Principal
from signer.service.ca import CertificateAuthority, Precertificate, parse_csr
from signer.service.log import Duplicate, LogItem, Sequenced, TransparencyLog
from signer.service.log.handoff import Handoff
from signer.service.log.rfc6962 import Rfc6962Log
from signer.service.log.tiles import TileLog
from signer.service.store import NewSignature, SignatureRecord, Store, Transaction
from signer.service.tsa import TimestampAuthority
from signer.sigstore_json import TransparencyLogEntry
from signer.transparency import rekor, rekor_bodies, sct
from signer.trust import TrustMaterial
from signer.verification import uploads

NAMESPACE = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
MAX_SIGNATURE_BYTES = 256  # a DER ECDSA P-256 signature is at most 72 bytes
MAX_REASON_LENGTH = 1024
# The Rekor API (majorApiVersion) an entry comes through; it decides the log (module notes).
RekorVersion = Literal[1, 2]


def check_namespace(name: str) -> str:
    if not NAMESPACE.fullmatch(name):
        raise UsageError(f"'{name[:80]}' is not a valid namespace name.",
                         "Use 1–63 lowercase letters, digits and hyphens, starting with a "
                         "letter or digit.")
    return name


@dataclass(frozen=True)
class Issued:
    chain: list[x509.Certificate]
    identity: str
    provenance: Provenance


@dataclass(frozen=True)
class Revoked:
    id: str
    count: int
    revoked_at: datetime
    log_index: int


REVOCATION_KIND = "signer-revocation"
REVOCATION_VERSION = "0.0.1"


def revocation_body(namespace: str, name: str, ref: str, reason: str, who: str,
                    at: datetime) -> bytes:
    """A revocation's log entry (RFC 8785 JSON): hiding it would need a fork of the log."""
    return rfc8785.dumps({
        "apiVersion": REVOCATION_VERSION, "kind": REVOCATION_KIND,
        "spec": {"namespace": namespace, "name": name, "sourceRepositoryRef": ref,
                 "reason": reason, "revokedBy": who,
                 "revokedAt": at.isoformat().replace("+00:00", "Z")},
    })


class SigningService:
    def __init__(self, store: Store, auth: Authenticator, ca: CertificateAuthority,
                 tsa: TimestampAuthority, trust: TrustMaterial, tlog: TransparencyLog,
                 ctlog: TransparencyLog, tlog_v2: TileLog, audit: Audit) -> None:
        self.store = store
        self.auth = auth
        self.ca = ca
        self.tsa = tsa
        self.trust = trust
        self.tlog = tlog
        self.ctlog = ctlog
        # The Rekor v2 log: POST /api/v2/log/entries appends to it (contract: log/tiles.py).
        self.tlog_v2 = tlog_v2
        self.audit = audit
        self._issuer_key_hash = sct.issuer_key_hash(ca.certificate)

    def hand_off_appends(self, to: Handoff) -> None:
        """Append to every log through ``to`` (the server's sequencer process) from now on."""
        for log in (self.tlog, self.ctlog, self.tlog_v2):
            assert isinstance(log, Rfc6962Log)
            log.handoff = to

    def sequencer_reachable(self) -> bool:
        """False while the sequencer process appends go to takes no connections."""
        handoff = self.tlog.handoff if isinstance(self.tlog, Rfc6962Log) else None
        return handoff is None or handoff.reachable()

    # -- certificates -------------------------------------------------------------------------
    def issue_certificate(self, principal: Principal, namespace: str,
                          csr_pem: str | ec.EllipticCurvePublicKey,
                          declared: Mapping[str, str | None]) -> Issued:
        """``csr_pem``: a PEM CSR, or a key whose possession the caller proved otherwise
        (Fulcio's API: `ca.parse_csr(…, sigstore_client=True)`, `ca.key_from_proof`)."""
        check_namespace(namespace)
        self.auth.authorize(principal, namespace, "sign")
        csr = csr_pem if isinstance(csr_pem, ec.EllipticCurvePublicKey) else parse_csr(csr_pem)
        cert, provenance, precert = self._issue(principal, namespace, csr, declared)
        self.ctlog.append(precert)
        self.audit.issued(cert, namespace, principal.identity, provenance)
        return Issued([cert, *self.ca.chain], principal.identity, provenance)

    def _provenance(self, principal: Principal, namespace: str,
                    declared: Mapping[str, str | None]
                    ) -> tuple[Provenance, Mapping[str, Any] | None]:
        unknown = [k for k in declared if k not in BY_KEY or not BY_KEY[k].flag]
        if unknown:
            raise UsageError(f"Unknown provenance fields: {', '.join(unknown)}.",
                             "Use the fields the CLI flags name (source_repository_ref, …).")
        if principal.oidc_issuer is not None:
            # The issuer's kind decides what its claims mean (signer.issuers).
            provenance = principal.oidc_issuer.provenance(principal.claims, namespace)
            provenance.with_flags_checked(declared)
            return provenance, principal.oidc_issuer.legacy_claims(principal.claims)
        wanted_issuer = declared.get("issuer")
        if wanted_issuer and wanted_issuer != principal.issuer:
            raise UsageError(
                f"--certificate-oidc-issuer '{wanted_issuer}' contradicts the API key's "
                f"issuer '{principal.issuer}'.", "Remove --certificate-oidc-issuer.")
        return Provenance.declared(declared, principal.issuer, namespace), None

    def _issue(self, principal: Principal, namespace: str,
               csr: x509.CertificateSigningRequest | ec.EllipticCurvePublicKey,
               declared: Mapping[str, str | None]
               ) -> tuple[x509.Certificate, Provenance, LogItem[None]]:
        """The leaf (with its SCT) and the CT log item that records it; not yet logged."""
        provenance, claims = self._provenance(principal, namespace, declared)
        precerts: list[tuple[int, Precertificate]] = []

        def sct_source(precert: Precertificate) -> bytes:
            # The CT log promises (signs) first; the precertificate enters its tree when the
            # item is appended, in the same transaction that records the certificate.
            timestamp_ms = int(time.time() * 1000)
            precerts.append((timestamp_ms, precert))
            return sct.sign_precert_sct(self.ctlog.signer, timestamp_ms, self._issuer_key_hash,
                                        precert.tbs)

        cert = self.ca.issue(csr, leaf_identities(principal, provenance),
                             provenance.extensions(claims),
                             sct_source=sct_source)
        timestamp_ms, precert = precerts[0]

        record = CertificateRow(format(cert.serial_number, "x"), namespace, principal.identity,
                                principal.issuer, cert.not_valid_before_utc,
                                cert.public_bytes(Encoding.DER))
        return cert, provenance, LogItem(
            kind="precert", version="rfc6962",
            body=sct.precert_merkle_tree_leaf(timestamp_ms, self._issuer_key_hash, precert.tbs),
            extra=precert.der, namespace=namespace, write=record)

    # -- one request: certificate, timestamp, log entry ------------------------------------------
    def sign(self, principal: Principal, namespace: str, name: str, csr_pem: str,
             signature_b64: str, declared: Mapping[str, str | None]
             ) -> tuple[SignatureRecord, bool]:
        """POST /v1/sign: the client signed the digest with the CSR's key before it had a
        certificate. The leaf's precertificate and the signature's log entry commit in one
        transaction (the tlog's batch appends to the ctlog too); nothing is stored on a
        refusal, and a retry of a stored signature gets that entry."""
        check_namespace(namespace)
        self.auth.authorize(principal, namespace, "sign")
        ref = parse_ref(name)
        signature = _decode_signature(signature_b64)
        csr = parse_csr(csr_pem)
        if not uploads.signs_digest(csr.public_key(), signature, ref.digest_bytes):
            raise UsageError(
                f"The signature does not verify over sha256:{ref.digest} with the CSR's key.",
                "Sign the digest named in 'name' with the key the CSR was made for.")
        sig_hash = hashlib.sha256(signature).hexdigest()
        # No lookup of a stored copy here: the log's batch answers a retry with the stored
        # entry (one query per batch). Its new leaf is then neither logged nor returned.
        cert, provenance, precert = self._issue(principal, namespace, csr, declared)
        row, created = self._log_signature(principal, namespace, ref, cert, signature,
                                           sig_hash, provenance, precert)
        if created:
            self.audit.issued(cert, namespace, principal.identity, provenance)
        return row, created

    # -- signatures ---------------------------------------------------------------------------
    def submit_signature(self, principal: Principal, namespace: str, name: str,
                         certificate_pem: str, signature_b64: str,
                         rekor_version: RekorVersion = 1) -> tuple[SignatureRecord, bool]:
        check_namespace(namespace)
        self.auth.authorize(principal, namespace, "sign")
        ref = parse_ref(name)
        signature = _decode_signature(signature_b64)
        cert = self._check_certificate(certificate_pem, principal, namespace)
        if not uploads.signs_digest(cert.public_key(), signature, ref.digest_bytes):
            raise UsageError(
                f"The signature does not verify over sha256:{ref.digest} with the "
                "certificate's key.",
                "Sign that digest with the key the certificate was issued for.")
        sig_hash = hashlib.sha256(signature).hexdigest()
        # Idempotent: a retried upload gets the stored entry, and no second timestamp.
        stored = self.store.find_signature(namespace, ref.name, ref.digest, sig_hash)
        if stored is not None:
            return stored, False
        return self._log_signature(principal, namespace, ref, cert, signature, sig_hash,
                                   Provenance.from_certificate(cert),
                                   rekor_version=rekor_version)

    def timestamp(self, signature: bytes) -> bytes:
        """The TSA's token over ``signature``. Only a timestamped signature or attestation is
        ever stored: any TSA failure refuses the upload before anything is written."""
        try:
            return self.tsa.timestamp(signature)
        except Exception as exc:
            why = f" ({exc.detail.rstrip('.')})" if isinstance(exc, Unavailable) else ""
            raise Unavailable(f"The timestamp authority failed{why}; nothing was stored.",
                              "Retry in a few seconds.") from exc

    def rekor_log(self, rekor_version: RekorVersion) -> TransparencyLog:
        """The log a Rekor API's entries go to: v1 ``tlog``, v2 the tile log ``tlog2``."""
        return self.tlog_v2 if rekor_version == 2 else self.tlog

    def _log_signature(self, principal: Principal, namespace: str, ref: ArtifactRef,
                       cert: x509.Certificate, signature: bytes, sig_hash: str,
                       provenance: Provenance, precert: LogItem[None] | None = None,
                       rekor_version: RekorVersion = 1) -> tuple[SignatureRecord, bool]:
        """Timestamp, log (in the log of ``rekor_version``) and store a verified signature
        under ``cert``, whose provenance is ``provenance``; with ``precert``, the CT log's
        item commits in the same transaction."""
        timestamp = self.timestamp(signature)
        new = NewSignature(
            namespace=namespace, name=ref.name, digest=ref.digest, signature_sha256=sig_hash,
            identity=principal.identity, issuer=provenance.issuer or principal.issuer,
            source_repository=provenance.source_repository,
            source_repository_ref=provenance.source_repository_ref,
            provenance=provenance.as_dict(), certificate_serial=format(cert.serial_number, "x"),
            signed_at=datetime.now(UTC), bundle="",
        )
        log = self.rekor_log(rekor_version)
        if rekor_version == 2:
            version, body = rekor_bodies.V002, rekor_bodies.hashedrekord_v002_body(
                ref.digest_bytes, signature, rekor_bodies.certificate_verifier(cert))
        else:
            version, body = rekor.HASHEDREKORD_VERSION, rekor.hashedrekord_body(
                ref.digest_bytes, signature, cert.public_bytes(Encoding.PEM))
        skeleton = bundles.Skeleton.of(bundles.build(cert, ref.digest_bytes, signature, timestamp))
        write = SignatureRow(new, skeleton, version, log.name, log.log_id)
        try:
            row, created = log.append(
                LogItem(kind=rekor.HASHEDREKORD_KIND, version=version, body=body,
                        namespace=namespace, write=write),
                also=() if precert is None else ((self.ctlog, precert),))
        except Duplicate:
            # The same upload raced this one (another request or replica) and won.
            stored = self.store.find_signature(namespace, ref.name, ref.digest, sig_hash)
            if stored is None:
                raise
            return stored, False
        if created:
            self.audit.stored("signature", row.id, namespace, row.name, row.digest,
                              row.log_tree, row.log_index)
        return row, created

    def _check_certificate(self, pem: str, principal: Principal, namespace: str
                           ) -> x509.Certificate:
        try:
            cert = x509.load_pem_x509_certificate(pem.encode())
        except (ValueError, UnicodeEncodeError) as exc:
            raise UsageError("The certificate is not a PEM X.509 certificate.",
                             "Send the leaf certificate POST /v1/certificates returned.") from exc
        try:
            uploads.check_own_leaf(cert, self.ca.certificate, principal.identity, namespace,
                                   datetime.now(UTC))
        except uploads.NotIssuedByUs as exc:
            raise UsageError("The certificate was not issued by this service's CA.",
                             "Request a certificate from POST /v1/certificates.") from exc
        except uploads.LeafExpired as exc:
            raise UsageError(
                f"The certificate expired at {exc.not_after.isoformat()} "
                f"(it lives {self.ca.validity}).",
                "Request a fresh certificate and sign again right away.") from exc
        except uploads.LeafMalformed as exc:
            raise UsageError(f"The certificate is malformed: {exc}.") from exc
        except uploads.NotTheCallers as exc:
            raise PermissionDenied(
                "The certificate was issued to another identity or namespace than this "
                "request's.", "Upload with the same credentials and namespace you used to "
                "get the certificate.") from exc
        return cert

    # -- reading ------------------------------------------------------------------------------
    def entries(self, principal: Principal, namespace: str, ref: ArtifactRef
                ) -> list[SignatureRecord]:
        check_namespace(namespace)
        self.auth.authorize(principal, namespace, "verify")
        rows = self.store.signatures_for(namespace, ref.name, ref.digest)
        if not rows:
            raise NotFound(f"No signature for {ref} in namespace '{namespace}'.",
                           "Check the name, digest and namespace; sign it first.")
        return rows

    def revoke(self, principal: Principal, namespace: str, name: str, ref: str, reason: str
               ) -> Revoked:
        check_namespace(namespace)
        self.auth.authorize(principal, namespace, "revoke")
        name = parse_ref(name).name if "@" in name else check_name(name)
        if not ref:
            raise UsageError("--source-repository-ref is required to revoke.",
                             "Pass the ref the bad build ran from, e.g. refs/tags/v1.2.3.")
        if len(reason) > MAX_REASON_LENGTH:
            raise UsageError(f"The reason is longer than {MAX_REASON_LENGTH} characters.")
        at = datetime.now(UTC).replace(microsecond=0)
        body = revocation_body(namespace, name, ref, reason, principal.identity, at)

        revoked = self.tlog.append(LogItem(
            kind=REVOCATION_KIND, version=REVOCATION_VERSION, body=body, namespace=namespace,
            write=RevocationRow(namespace, name, ref, reason, principal.identity, at)))
        self.audit.revoked(revoked.id, namespace, name, ref, reason, revoked.count,
                           revoked.log_index)
        return revoked


# -- the rows a log entry commits with (run by the log's sequencer, maybe in its own process:
# data and module-level code, no closures; signer.service.log.handoff) --------------------------
@dataclass(frozen=True)
class CertificateRow:
    """An issued leaf's row, written with its precertificate's CT log entry."""

    serial: str
    namespace: str
    identity: str
    issuer: str
    issued_at: datetime
    der: bytes

    def __call__(self, tx: Transaction, _entry: Sequenced) -> None:
        Store.record_certificate(tx, self.serial, self.namespace, self.identity, self.issuer,
                                 self.issued_at, self.der)


@dataclass(frozen=True)
class SignatureRow:
    """A signature's row, its bundle completed with its log entry (``skeleton``: the bundle
    without it)."""

    new: NewSignature
    skeleton: bundles.Skeleton
    version: str  # of the hashedrekord entry
    log_name: str
    log_id: bytes

    @staticmethod
    def stored(tx: Transaction, writers: Sequence[SignatureRow]
               ) -> list[tuple[SignatureRecord, bool] | None]:
        found = Store.stored_signatures(tx, [w.key for w in writers])
        return [None if (row := found.get(w.key)) is None else (row, False) for w in writers]

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.new.namespace, self.new.name, self.new.digest, self.new.signature_sha256)

    @staticmethod
    def prepare(tx: Transaction, writers: Sequence[SignatureRow]) -> None:
        Store.resolve_artifacts(tx, (w.new for w in writers), signatures=1)

    def __call__(self, tx: Transaction, entry: Sequenced) -> tuple[SignatureRecord, bool]:
        tlog_entry = bundle_entry(self.log_id, rekor.HASHEDREKORD_KIND, self.version, entry)
        row = Store.insert_signature(tx, dataclasses.replace(
            self.new, bundle=self.skeleton.with_entry(tlog_entry)),
            self.log_name, entry.index)
        return row, True


@dataclass(frozen=True)
class RevocationRow:
    """A revocation, applied to the rows it names, with its log entry."""

    namespace: str
    name: str
    ref: str
    reason: str
    who: str
    at: datetime

    def __call__(self, tx: Transaction, entry: Sequenced) -> Revoked:
        rev_id, count = Store.revoke(tx, self.namespace, self.name, self.ref, self.reason,
                                     self.who, self.at, entry.index)
        return Revoked(rev_id, count, self.at, entry.index)


def bundle_entry(log_id: bytes, kind: str, version: str, entry: Sequenced
                 ) -> TransparencyLogEntry:
    """``entry`` of the log ``log_id`` as a bundle carries it. Without an inclusion promise
    (the Rekor v2 log's entries) the integrated time is 0, as rekor-tiles answers: nothing
    signs it, so clients take the time from the RFC 3161 timestamp (log/tiles.py)."""
    promise = entry.signed_entry_timestamp
    return bundles.tlog_entry(
        kind=kind, version=version, log_id=log_id, index=entry.index,
        integrated_time=entry.integrated_time if promise else 0, body=entry.body,
        promise=promise, root_hash=entry.root_hash, tree_size=entry.tree_size,
        proof=entry.proof, checkpoint=entry.checkpoint)


def leaf_identities(principal: Principal, provenance: Provenance) -> list[str]:
    """The leaf's URI SANs: for a github-kind token, first the job's workflow as Fulcio names
    it (``https://<server>/<job_workflow_ref>``, what gh's --signer-workflow, --owner and
    cosign match), then the token's subject (the identity policies and uploads use)."""
    workflow = provenance.build_signer_uri
    if principal.oidc_issuer is not None and principal.oidc_issuer.kind == "github" \
            and workflow and workflow != principal.identity:
        return [workflow, principal.identity]
    return [principal.identity]


def _decode_signature(text: str) -> bytes:
    try:
        signature = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise UsageError("The signature is not valid base64.",
                         "Send the DER ECDSA signature, base64-encoded.") from exc
    if not 0 < len(signature) <= MAX_SIGNATURE_BYTES:
        raise UsageError(f"The signature is {len(signature)} bytes; an ECDSA P-256 signature "
                         "is 70–72.", "Send the DER ECDSA signature, base64-encoded.")
    return signature


def signature_view_json(row: SignatureRecord) -> bytes:
    """:func:`signature_view` as JSON (models.SignatureView's shape and encoding), the stored
    bundle spliced in as it is: no parse of the bundle, no model validation of the view."""
    view = signature_view(row, with_bundle=False)
    head = pydantic_core.to_json(view)
    return head[:-1] + b',"bundle":' + row.bundle.encode() + b"}"


def signature_view(row: SignatureRecord, with_bundle: bool = True) -> dict[str, Any]:
    """The API's view of a stored signature."""
    revocation = row.revocation
    view = {
        "id": row.id,
        "namespace": row.namespace,
        "name": f"{row.name}@sha256:{row.digest}",
        "digest": f"sha256:{row.digest}",
        "identity": row.identity,
        "issuer": row.issuer,
        "provenance": row.provenance,
        "signed_at": row.signed_at,
        "created_at": row.created_at,
        "revoked": revocation is not None,
        "log_tree": row.log_tree,
        "log_index": row.log_index,
        "revocation": {"reason": revocation.reason, "revoked_by": revocation.revoked_by,
                       "revoked_at": revocation.revoked_at, "log_index": revocation.log_index}
        if revocation else None,
    }
    if with_bundle:
        view["bundle"] = json.loads(row.bundle)
    return view

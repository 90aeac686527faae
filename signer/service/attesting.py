"""The attestation use cases: build provenance from a token, accept a signed statement, look up.

An attestation is an in-toto statement about one artifact (its name and SHA-256), in a DSSE
envelope the caller signed with the key of a leaf from ``POST /v1/certificates``. The service
checks the envelope's signature over its PAE, the statement's subject and, for SLSA
provenance v1, that the predicate is exactly the one the caller's verified token proves
(`signer.slsa`: the client cannot override what the token says; other predicate types, an
SBOM or a test result, are the signer's own claims, bound to its identity by the leaf).
Then, as for a signature: an RFC 3161 timestamp over the signature, a Rekor v1 ``dsse``
0.0.1 entry in the signature log (the kind sigstore-go, and so ``gh attestation verify``,
sigstore-python and sigstore-js read for DSSE bundles: it records the payload hash and the
signature with its certificate, never the payload) and the bundle, stored once: the row
holds the bundle, the bundle the envelope, the envelope the predicate.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from datetime import UTC, datetime
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from signer import bundle as bundles
from signer import dsse, slsa
from signer.artifact import ArtifactRef, parse_ref
from signer.errors import NotFound, TooLarge, Unavailable, UsageError
from signer.issuers import Issuer
from signer.provenance import Provenance
from signer.service.auth import Principal
from signer.service.log import Duplicate, LogItem, Sequenced
from signer.service.signing import SigningService, check_namespace
from signer.service.store import AttestationRecord, NewAttestation, Transaction
from signer.sigstore_json import (
    Bundle,
    DsseEnvelope,
    RFC3161SignedTimestamp,
    TimestampVerificationData,
    TransparencyLogEntry,
    VerificationMaterial,
    X509Certificate,
)
from signer.transparency import rekor_bodies

# A statement (the envelope's payload) is at most this: room for the SBOM of a large image
# (CycloneDX/SPDX documents of a few MB), far below what would strain a database row.
MAX_STATEMENT_BYTES: Final = 8 * 1024 * 1024
# The attestation route's own request body limit (the API's is 1 MiB): the envelope carries
# the statement in base64 (4/3 of it), plus the leaf and the JSON around them.
MAX_ATTESTATION_BODY_BYTES: Final = MAX_STATEMENT_BYTES * 4 // 3 + 64 * 1024
ATTESTATIONS_PATH: Final = "/v1/attestations"
MAX_PREDICATE_TYPE_LENGTH: Final = 512  # the predicate_type column


class AttestingService:
    """Attestations, on the CA, timestamp authority, log and store of a `SigningService`."""

    def __init__(self, signing: SigningService) -> None:
        self.signing = signing
        self.store = signing.store
        self.auth = signing.auth

    # -- provenance ---------------------------------------------------------------------------
    def provenance(self, principal: Principal, namespace: str) -> dict[str, Any]:
        """The SLSA v1 predicate the caller's credentials prove (the CLI signs it as is)."""
        check_namespace(namespace)
        self.auth.authorize(principal, namespace, "sign")
        return slsa.predicate(*_issuer_and_provenance(principal, namespace))

    # -- attestations -------------------------------------------------------------------------
    def submit(self, principal: Principal, namespace: str, name: str, certificate_pem: str,
               envelope_json: str) -> tuple[AttestationRecord, bool]:
        check_namespace(namespace)
        self.auth.authorize(principal, namespace, "sign")
        ref = parse_ref(name)
        envelope, statement = _parse(envelope_json, ref)
        cert = self.signing._check_certificate(certificate_pem, principal, namespace)
        key = cert.public_key()
        assert isinstance(key, ec.EllipticCurvePublicKey)  # our CA certifies only P-256
        try:
            dsse.verify_signature(envelope, key)
        except dsse.DsseError as exc:
            raise UsageError(f"The DSSE envelope does not verify: {exc}.",
                             "Sign PAE(payloadType, payload) with the key the certificate was "
                             "issued for.") from exc
        if statement.predicate_type == slsa.PREDICATE_TYPE:
            expected = slsa.predicate(*_issuer_and_provenance(principal, namespace))
            if statement.predicate != expected:
                raise UsageError(
                    "The SLSA provenance in the statement is not what your credentials prove.",
                    "Attest without --predicate: signer builds the provenance from the "
                    "verified token (GET /v1/provenance returns it).")
        signature = envelope.signatures[0].sig
        sig_hash = hashlib.sha256(signature).hexdigest()
        stored = self.store.find_attestation(namespace, ref.name, ref.digest, sig_hash)
        if stored is not None:
            return stored, False
        try:
            timestamp = self.signing.tsa.timestamp(signature)
        except Exception as exc:  # any TSA failure: refuse, and store nothing
            raise Unavailable("The timestamp authority failed; nothing was stored.",
                              "Retry in a few seconds.") from exc
        provenance = Provenance.from_certificate(cert)
        new = NewAttestation(
            namespace=namespace, name=ref.name, digest=ref.digest,
            predicate_type=statement.predicate_type, signature_sha256=sig_hash,
            payload_sha256=hashlib.sha256(envelope.payload).hexdigest(),
            payload_size=len(envelope.payload), identity=principal.identity,
            issuer=provenance.issuer or principal.issuer,
            source_repository=provenance.source_repository,
            source_repository_ref=provenance.source_repository_ref,
            provenance=provenance.as_dict(), certificate_serial=format(cert.serial_number, "x"),
            signed_at=datetime.now(UTC), bundle="")
        body = rekor_bodies.dsse_v001_body(envelope_json.encode(), envelope,
                                           cert.public_bytes(Encoding.PEM))
        tlog = self.signing.tlog

        def write(tx: Transaction, entry: Sequenced) -> tuple[AttestationRecord, bool]:
            tlog_entry = bundles.tlog_entry(
                kind=rekor_bodies.DSSE_KIND, version=rekor_bodies.V001, log_id=tlog.log_id,
                index=entry.index, integrated_time=entry.integrated_time, body=entry.body,
                promise=entry.signed_entry_timestamp, root_hash=entry.root_hash,
                tree_size=entry.tree_size, proof=entry.proof, checkpoint=entry.checkpoint)
            text = dsse_bundle(cert.public_bytes(Encoding.DER), envelope, timestamp,
                               tlog_entry).to_json()
            row = self.store.insert_attestation(
                tx, dataclasses.replace(new, bundle=text), tlog.name, entry.index)
            return row, True

        try:
            row, created = tlog.append(LogItem(kind=rekor_bodies.DSSE_KIND,
                                               version=rekor_bodies.V001, body=body,
                                               namespace=namespace, write=write))
        except Duplicate:
            stored = self.store.find_attestation(namespace, ref.name, ref.digest, sig_hash)
            if stored is None:
                raise
            return stored, False
        self.signing.audit.stored("attestation", row.id, namespace, row.name, row.digest,
                                  row.log_tree, row.log_index)
        return row, created

    def find(self, principal: Principal, namespace: str, ref: ArtifactRef,
             predicate_type: str | None = None) -> list[AttestationRecord]:
        check_namespace(namespace)
        self.auth.authorize(principal, namespace, "verify")
        rows = self.store.attestations_for(namespace, ref.name, ref.digest, predicate_type)
        if not rows:
            kind = f" of type {predicate_type}" if predicate_type else ""
            raise NotFound(f"No attestation{kind} for {ref} in namespace '{namespace}'.",
                           "Check the name, digest, namespace and predicate type; attest it "
                           "first with 'signer artifact attest'.")
        return rows


def _issuer_and_provenance(principal: Principal, namespace: str
                           ) -> tuple[Issuer, dict[str, Any], Provenance]:
    if principal.oidc_issuer is not None:
        issuer = principal.oidc_issuer
        return issuer, dict(principal.claims), issuer.provenance(principal.claims, namespace)
    # An API key proves no build: the provenance names the key's issuer as the builder.
    issuer = Issuer(principal.issuer, "generic", None)
    return issuer, {}, Provenance(issuer=principal.issuer, namespace=namespace,
                                  provenance_source="declared")


def _parse(envelope_json: str, ref: ArtifactRef) -> tuple[DsseEnvelope, dsse.Statement]:
    fix = ("Send the DSSE envelope 'signer artifact attest' makes: one signature over an "
           "in-toto statement about the artifact.")
    try:
        envelope = dsse.parse_envelope(envelope_json)
    except dsse.DsseError as exc:
        raise UsageError(f"{exc}.", fix) from exc
    if len(envelope.payload) > MAX_STATEMENT_BYTES:
        raise TooLarge(f"The statement is {len(envelope.payload)} bytes; the limit is "
                       f"{MAX_STATEMENT_BYTES} (MAX_STATEMENT_BYTES).",
                       "Attest a smaller predicate, or attach the document and attest its "
                       "digest.")
    if envelope.payload_type != dsse.IN_TOTO_PAYLOAD_TYPE:
        raise UsageError(f"The envelope's payloadType is {envelope.payload_type[:80]!r}, not "
                         f"{dsse.IN_TOTO_PAYLOAD_TYPE!r}.", fix)
    if len(envelope.signatures) != 1:
        raise UsageError(f"The envelope carries {len(envelope.signatures)} signatures; an "
                         "attestation has exactly one.", fix)
    try:
        statement = dsse.Statement.parse(envelope.payload)
    except dsse.DsseError as exc:
        raise UsageError(f"{exc}.", fix) from exc
    if len(statement.predicate_type) > MAX_PREDICATE_TYPE_LENGTH:
        raise UsageError(f"The predicate type is longer than {MAX_PREDICATE_TYPE_LENGTH} "
                         "characters.", "Use the predicate type URI its specification names.")
    subjects = statement.subjects
    if len(subjects) != 1 or subjects[0].name != ref.name \
            or subjects[0].digest.get("sha256") != ref.digest:
        named = ", ".join(f"{s.name}@sha256:{s.digest.get('sha256')}" for s in subjects)
        raise UsageError(f"The statement is about {named}, not {ref}.",
                         "Attest one subject: the artifact named in --name, with its digest.")
    return envelope, statement


def dsse_bundle(certificate_der: bytes, envelope: DsseEnvelope, timestamp: bytes,
                tlog_entry: TransparencyLogEntry) -> Bundle:
    """A v0.3 bundle holding the envelope, the leaf, the timestamp and the log entry."""
    return Bundle(
        media_type=bundles.MEDIA_TYPE,
        verification_material=VerificationMaterial(
            certificate=X509Certificate(raw_bytes=certificate_der),
            tlog_entries=(tlog_entry,),
            timestamp_verification_data=TimestampVerificationData(
                rfc3161_timestamps=(RFC3161SignedTimestamp(signed_timestamp=timestamp),))),
        dsse_envelope=envelope)


def attestation_view(row: AttestationRecord) -> dict[str, Any]:
    """The API's view of a stored attestation (the statement is in the bundle)."""
    revocation = row.revocation
    return {
        "id": row.id, "namespace": row.namespace, "name": f"{row.name}@sha256:{row.digest}",
        "digest": f"sha256:{row.digest}", "predicate_type": row.predicate_type,
        "identity": row.identity, "issuer": row.issuer, "provenance": row.provenance,
        "signed_at": row.signed_at, "created_at": row.created_at,
        "revoked": revocation is not None, "log_tree": row.log_tree,
        "log_index": row.log_index,
        "revocation": {"reason": revocation.reason, "revoked_by": revocation.revoked_by,
                       "revoked_at": revocation.revoked_at, "log_index": revocation.log_index}
        if revocation else None,
        "bundle": json.loads(row.bundle),
    }

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

An envelope logged through Rekor's API (v1 ``dsse`` 0.0.1, v2 ``dsseRequestV002``) is an
attestation too (`AttestingService.log_envelope`): the leaf's holder stands for the caller,
the artifact is the statement's one subject, and a v2 one is logged as ``dsse`` 0.0.2 in the
Rekor v2 log. Both paths end in the same `AttestingService.log_and_store`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from signer import bundle as bundles
from signer import dsse, slsa
from signer.artifact import ArtifactRef, check_name, digest_named, parse_ref
from signer.errors import NotFound, TooLarge, UsageError
from signer.issuers import Issuer
from signer.provenance import Provenance
from signer.service.auth import Principal
from signer.service.log import Duplicate, LogItem, Sequenced
from signer.service.signing import RekorVersion, SigningService, bundle_entry, check_namespace
from signer.service.store import AttestationRecord, NewAttestation, Store, Transaction
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
from signer.verification import uploads

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
        """``POST /v1/attestations``: an envelope about the artifact ``name``."""
        check_namespace(namespace)
        self.auth.authorize(principal, namespace, "sign")
        ref = parse_ref(name)
        envelope = parse_envelope(envelope_json)
        statement = _statement(envelope)
        _check_subject(statement, ref)
        cert = self.signing._check_certificate(certificate_pem, principal, namespace)
        _verify_envelope(envelope, cert)
        if statement.predicate_type == slsa.PREDICATE_TYPE:
            expected = slsa.predicate(*_issuer_and_provenance(principal, namespace))
            if statement.predicate != expected:
                raise UsageError(
                    "The SLSA provenance in the statement is not what your credentials prove.",
                    "Attest without --predicate: signer builds the provenance from the "
                    "verified token (GET /v1/provenance returns it).")
        return self.log_and_store(namespace, ref, principal.identity, principal.issuer, cert,
                                  envelope, statement, envelope_json)

    def log_envelope(self, holder: Principal, cert: x509.Certificate, envelope: DsseEnvelope,
                     envelope_json: str | None, rekor_version: RekorVersion
                     ) -> tuple[AttestationRecord, bool]:
        """A DSSE envelope logged through Rekor's API (`signer.service.rekor_write`), signed
        with the key of ``cert``, a leaf of ``holder`` (`Authenticator.leaf_holder`). The
        artifact is the statement's one subject (`subject_ref`). No token comes with it, so an
        SLSA provenance statement, which signer vouches for as what a token proved, is
        refused here: ``signer artifact attest`` builds it from the token."""
        namespace = holder.leaf_namespace
        assert namespace is not None
        self.auth.authorize(holder, namespace, "sign")
        statement = _statement(envelope)
        ref = subject_ref(statement)
        _verify_envelope(envelope, cert)
        if statement.predicate_type == slsa.PREDICATE_TYPE:
            raise UsageError(
                "signer stores SLSA provenance only as its verified token proves it, and a "
                "Rekor entry comes without a token.",
                "Attest build provenance with 'signer artifact attest' (POST /v1/attestations), "
                "or log another predicate type here.")
        return self.log_and_store(namespace, ref, holder.identity, holder.issuer, cert,
                                  envelope, statement, envelope_json, rekor_version)

    def log_and_store(self, namespace: str, ref: ArtifactRef, identity: str, issuer: str,
                      cert: x509.Certificate, envelope: DsseEnvelope,
                      statement: dsse.Statement, envelope_json: str | None,
                      rekor_version: RekorVersion = 1) -> tuple[AttestationRecord, bool]:
        """Timestamp, log and store a checked attestation, once: a stored one is returned as
        it is. The log is ``rekor_version``'s: a v1 ``dsse`` 0.0.1 entry records the hash of
        ``envelope_json`` (the envelope as submitted), a v2 ``dsse`` 0.0.2 entry (``envelope_json``
        None) the payload hash and the signature with its verifier."""
        signature = envelope.signatures[0].sig
        sig_hash = hashlib.sha256(signature).hexdigest()
        stored = self.store.find_attestation(namespace, ref.name, ref.digest, sig_hash)
        if stored is not None:
            return stored, False
        timestamp = self.signing.timestamp(signature)
        provenance = Provenance.from_certificate(cert)
        new = NewAttestation(
            namespace=namespace, name=ref.name, digest=ref.digest,
            predicate_type=statement.predicate_type, signature_sha256=sig_hash,
            payload_sha256=hashlib.sha256(envelope.payload).hexdigest(),
            payload_size=len(envelope.payload), identity=identity,
            issuer=provenance.issuer or issuer,
            source_repository=provenance.source_repository,
            source_repository_ref=provenance.source_repository_ref,
            provenance=provenance.as_dict(), certificate_serial=format(cert.serial_number, "x"),
            signed_at=datetime.now(UTC), bundle="")
        log = self.signing.rekor_log(rekor_version)
        if rekor_version == 2:
            version, body = rekor_bodies.V002, rekor_bodies.dsse_v002_body(
                envelope, rekor_bodies.certificate_verifier(cert))
        else:
            assert envelope_json is not None  # a v1 entry hashes the envelope as submitted
            version, body = rekor_bodies.V001, rekor_bodies.dsse_v001_body(
                envelope_json.encode(), envelope, cert.public_bytes(Encoding.PEM))

        write = AttestationRow(new, cert.public_bytes(Encoding.DER), envelope, timestamp,
                               version, log.name, log.log_id)
        try:
            row, created = log.append(LogItem(kind=rekor_bodies.DSSE_KIND, version=version,
                                              body=body, namespace=namespace, write=write))
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


_FIX = ("Send the DSSE envelope 'signer artifact attest' makes: one signature over an "
        "in-toto statement about the artifact.")


def parse_envelope(envelope_json: str) -> DsseEnvelope:
    """An attestation's envelope from its JSON, or a 400 saying what it is not."""
    try:
        return dsse.parse_envelope(envelope_json)
    except dsse.DsseError as exc:
        raise UsageError(f"{exc}.", _FIX) from exc


def _statement(envelope: DsseEnvelope) -> dsse.Statement:
    """The in-toto statement an attestation's envelope carries, with its one signature."""
    if len(envelope.payload) > MAX_STATEMENT_BYTES:
        raise TooLarge(f"The statement is {len(envelope.payload)} bytes; the limit is "
                       f"{MAX_STATEMENT_BYTES} (MAX_STATEMENT_BYTES).",
                       "Attest a smaller predicate, or attach the document and attest its "
                       "digest.")
    if envelope.payload_type != dsse.IN_TOTO_PAYLOAD_TYPE:
        raise UsageError(f"The envelope's payloadType is {envelope.payload_type[:80]!r}, not "
                         f"{dsse.IN_TOTO_PAYLOAD_TYPE!r}.", _FIX)
    if len(envelope.signatures) != 1:
        raise UsageError(f"The envelope carries {len(envelope.signatures)} signatures; an "
                         "attestation has exactly one.", _FIX)
    try:
        statement = dsse.Statement.parse(envelope.payload)
    except dsse.DsseError as exc:
        raise UsageError(f"{exc}.", _FIX) from exc
    if len(statement.predicate_type) > MAX_PREDICATE_TYPE_LENGTH:
        raise UsageError(f"The predicate type is longer than {MAX_PREDICATE_TYPE_LENGTH} "
                         "characters.", "Use the predicate type URI its specification names.")
    return statement


def _check_subject(statement: dsse.Statement, ref: ArtifactRef) -> None:
    subjects = statement.subjects
    if len(subjects) != 1 or subjects[0].name != ref.name \
            or subjects[0].digest.get("sha256") != ref.digest:
        named = ", ".join(f"{s.name}@sha256:{s.digest.get('sha256')}" for s in subjects)
        raise UsageError(f"The statement is about {named}, not {ref}.",
                         "Attest one subject: the artifact named in --name, with its digest.")


def subject_ref(statement: dsse.Statement) -> ArtifactRef:
    """The artifact a statement logged through Rekor is about: its one subject, by the
    subject's name when that is a valid artifact name, else by its digest alone
    (``sha256:<hex>``, as a Rekor signature is named)."""
    subjects = statement.subjects
    sha256 = subjects[0].digest.get("sha256") if len(subjects) == 1 else None
    if sha256 is None:
        raise UsageError(
            f"The statement has {len(subjects)} subject(s)"
            f"{'' if len(subjects) != 1 else ' without a sha256 digest'}; signer stores an "
            "attestation about one artifact, named by its SHA-256.",
            "Attest one subject with its sha256 digest.")
    try:
        return ArtifactRef(check_name(subjects[0].name), sha256)
    except UsageError:
        return digest_named(sha256)


def _verify_envelope(envelope: DsseEnvelope, cert: x509.Certificate) -> None:
    why = uploads.envelope_refusal(cert.public_key(), envelope)
    if why is not None:
        raise UsageError(f"The DSSE envelope does not verify: {why}.",
                         "Sign PAE(payloadType, payload) with the key the certificate was "
                         "issued for.")


@dataclass(frozen=True)
class AttestationRow:
    """An attestation's row, its bundle completed with its log entry (run by the log's
    sequencer, maybe in its own process: signer.service.log.handoff)."""

    new: NewAttestation
    certificate_der: bytes
    envelope: DsseEnvelope
    timestamp: bytes
    version: str  # of the dsse entry
    log_name: str
    log_id: bytes

    @staticmethod
    def prepare(tx: Transaction, writers: Sequence[AttestationRow]) -> None:
        Store.resolve_artifacts(tx, (w.new for w in writers), signatures=0)

    def __call__(self, tx: Transaction, entry: Sequenced) -> tuple[AttestationRecord, bool]:
        tlog_entry = bundle_entry(self.log_id, rekor_bodies.DSSE_KIND, self.version, entry)
        text = dsse_bundle(self.certificate_der, self.envelope, self.timestamp,
                           tlog_entry).to_json()
        row = Store.insert_attestation(tx, dataclasses.replace(self.new, bundle=text),
                                       self.log_name, entry.index)
        return row, True


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

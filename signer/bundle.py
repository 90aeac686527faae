"""Sigstore bundle v0.3 (``<name>.sigstore.json``): built and parsed once, here.

Everything else works on :class:`SignedArtifact`, never on raw JSON.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from signer.errors import UsageError
from signer.sigstore_json import (
    BUNDLE_MEDIA_TYPES,
    SHA2_256,
    U64,
    Bundle,
    Checkpoint,
    HashOutput,
    InclusionPromise,
    InclusionProof,
    KindVersion,
    LogId,
    MessageSignature,
    RFC3161SignedTimestamp,
    TimestampVerificationData,
    TransparencyLogEntry,
    VerificationMaterial,
    WireError,
    X509Certificate,
)

MEDIA_TYPE: Final = "application/vnd.dev.sigstore.bundle.v0.3+json"
# A bundle is a few KB; this bounds what we parse from disk or the network.
MAX_BUNDLE_BYTES = 256 * 1024


@dataclass(frozen=True)
class SignedArtifact:
    """The parts of a bundle that verification reads."""

    certificate: x509.Certificate
    digest: bytes
    signature: bytes
    timestamps: tuple[bytes, ...]
    tlog_entries: tuple[TransparencyLogEntry, ...]
    model: Bundle

    def to_json(self) -> str:
        return self.model.to_json()


def tlog_entry(
    *, kind: str, version: str, log_id: bytes, index: int, integrated_time: int, body: bytes,
    promise: bytes | None, root_hash: bytes, tree_size: int, proof: list[bytes],
    checkpoint: str,
) -> TransparencyLogEntry:
    """A Rekor v1 entry as a bundle carries it: body, promise, proof, checkpoint."""
    return TransparencyLogEntry(
        log_index=U64(index),
        log_id=LogId(key_id=log_id),
        kind_version=KindVersion(kind=kind, version=version),
        integrated_time=U64(integrated_time),
        inclusion_promise=InclusionPromise(signed_entry_timestamp=promise) if promise else None,
        inclusion_proof=InclusionProof(
            log_index=U64(index), root_hash=root_hash, tree_size=U64(tree_size),
            hashes=tuple(proof), checkpoint=Checkpoint(envelope=checkpoint),
        ),
        canonicalized_body=body,
    )


def json_with_entry(skeleton: dict[str, Any], entry: TransparencyLogEntry) -> str:
    """The bundle JSON of ``skeleton`` (``build(...).model.to_dict()`` with no tlog entry)
    with ``entry`` as its one tlog entry, byte for byte as ``to_json()`` writes it: what
    does not depend on the log is encoded before the entry exists (outside the sequencer)."""
    material = skeleton["verificationMaterial"]
    return json.dumps({**skeleton, "verificationMaterial": {
        **material, "tlogEntries": [entry.to_dict()]}}, separators=(",", ":"))


def build(
    certificate: x509.Certificate,
    digest: bytes,
    signature: bytes,
    timestamp: bytes,
    tlog_entries: list[TransparencyLogEntry] | None = None,
) -> SignedArtifact:
    model = Bundle(
        media_type=MEDIA_TYPE,
        verification_material=VerificationMaterial(
            certificate=X509Certificate(raw_bytes=certificate.public_bytes(Encoding.DER)),
            tlog_entries=tuple(tlog_entries or ()),
            timestamp_verification_data=TimestampVerificationData(
                rfc3161_timestamps=(RFC3161SignedTimestamp(signed_timestamp=timestamp),)
            ),
        ),
        message_signature=MessageSignature(
            message_digest=HashOutput(algorithm=SHA2_256, digest=digest),
            signature=signature,
        ),
    )
    return SignedArtifact(certificate, digest, signature, (timestamp,),
                          tuple(tlog_entries or ()), model)


def parse(text: str | bytes, source: str = "the bundle") -> SignedArtifact:
    if len(text) > MAX_BUNDLE_BYTES:
        raise UsageError(f"{source} is {len(text)} bytes; a bundle is at most "
                         f"{MAX_BUNDLE_BYTES}.", "Pass the .sigstore.json file signer wrote.")
    try:
        model = Bundle.from_json(text)
    except WireError as exc:
        raise UsageError(f"{source} is not a Sigstore bundle: {exc}.",
                         "Pass the .sigstore.json file signer wrote.") from exc
    if model.media_type not in BUNDLE_MEDIA_TYPES:
        raise UsageError(f"{source} has the media type {model.media_type[:80]!r}, not a "
                         "Sigstore bundle's.", "Pass the .sigstore.json file signer wrote.")
    material = model.verification_material
    signature = model.message_signature
    if model.dsse_envelope is not None or material.public_key is not None \
            or material.x509_certificate_chain is not None:
        raise UsageError(f"{source} holds a DSSE envelope, a public key or a certificate chain; "
                         "signer verifies message signatures over one certificate.",
                         "Pass the .sigstore.json file signer wrote.")
    if material.certificate is None or signature is None or signature.message_digest is None:
        raise UsageError(f"{source} has no certificate or no message signature with a digest.",
                         "Only artifact-signature bundles with a certificate are supported.")
    if signature.message_digest.algorithm != SHA2_256:
        raise UsageError(f"{source} uses {signature.message_digest.algorithm}; only SHA2_256 "
                         "is supported.")
    try:
        cert = x509.load_der_x509_certificate(material.certificate.raw_bytes)
    except ValueError as exc:
        raise UsageError(f"{source} holds a certificate that cannot be parsed.") from exc
    tsd = material.timestamp_verification_data
    timestamps = tuple(t.signed_timestamp for t in tsd.rfc3161_timestamps) if tsd else ()
    return SignedArtifact(cert, signature.message_digest.digest, signature.signature,
                          timestamps, tuple(material.tlog_entries), model)


def read(path: Path) -> SignedArtifact:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"Cannot read the bundle {path}: {exc.strerror}.") from exc
    return parse(data, str(path))


"""Sigstore bundle v0.3 (``<name>.sigstore.json``): built and parsed once, here.

Everything else works on :class:`SignedArtifact`, never on raw JSON.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pydantic
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from sigstore_models.bundle.v1 import (
    Bundle,
    TimestampVerificationData,
    VerificationMaterial,
)
from sigstore_models.common.v1 import (
    HashAlgorithm,
    HashOutput,
    LogId,
    MessageSignature,
    RFC3161SignedTimestamp,
    X509Certificate,
)
from sigstore_models.rekor.v1 import (
    Checkpoint,
    InclusionPromise,
    InclusionProof,
    KindVersion,
    TransparencyLogEntry,
)

from signer.errors import UsageError

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


def b64(data: bytes) -> bytes:
    """sigstore-models decodes base64 on construction, so raw bytes go in encoded."""
    return base64.b64encode(data)


def tlog_entry(
    *, kind: str, version: str, log_id: bytes, index: int, integrated_time: int, body: bytes,
    promise: bytes | None, root_hash: bytes, tree_size: int, proof: list[bytes],
    checkpoint: str,
) -> TransparencyLogEntry:
    """A Rekor v1 entry as a bundle carries it: body, promise, proof, checkpoint."""
    return TransparencyLogEntry(
        log_index=str(index),  # type: ignore[arg-type]  # protobuf uint64 travels as text
        log_id=LogId(key_id=b64(log_id)),
        kind_version=KindVersion(kind=kind, version=version),
        integrated_time=str(integrated_time),  # type: ignore[arg-type]
        inclusion_promise=InclusionPromise(signed_entry_timestamp=b64(promise))
        if promise else None,
        inclusion_proof=InclusionProof(
            log_index=str(index),  # type: ignore[arg-type]
            root_hash=b64(root_hash),
            tree_size=str(tree_size),  # type: ignore[arg-type]
            hashes=[b64(h) for h in proof],
            checkpoint=Checkpoint(envelope=checkpoint),
        ),
        canonicalized_body=b64(body),
    )


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
            certificate=X509Certificate(raw_bytes=b64(certificate.public_bytes(Encoding.DER))),
            tlog_entries=tlog_entries or [],
            timestamp_verification_data=TimestampVerificationData(
                rfc3161_timestamps=[RFC3161SignedTimestamp(signed_timestamp=b64(timestamp))]
            ),
        ),
        message_signature=MessageSignature(
            message_digest=HashOutput(algorithm=HashAlgorithm.SHA2_256, digest=b64(digest)),
            signature=b64(signature),
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
    except (pydantic.ValidationError, ValueError) as exc:
        raise UsageError(f"{source} is not a Sigstore bundle: {_first_error(exc)}.",
                         "Pass the .sigstore.json file signer wrote.") from exc
    material = model.verification_material
    signature = model.message_signature
    if material.certificate is None or signature is None or signature.message_digest is None:
        raise UsageError(f"{source} has no certificate or no message signature with a digest.",
                         "Only artifact-signature bundles with a certificate are supported.")
    if signature.message_digest.algorithm != HashAlgorithm.SHA2_256:
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


def _first_error(exc: Exception) -> str:
    if isinstance(exc, pydantic.ValidationError) and exc.errors():
        err = exc.errors()[0]
        return f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
    return str(exc)

"""Sigstore bundles: v0.3 built (``<name>.sigstore.json``), v0.1 to v0.3 parsed, once, here.

Everything else works on :class:`SignedArtifact`, never on raw JSON.
"""

from __future__ import annotations

import base64
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
    DsseEnvelope,
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


V01_MEDIA_TYPE: Final = "application/vnd.dev.sigstore.bundle+json;version=0.1"
V02_MEDIA_TYPE: Final = "application/vnd.dev.sigstore.bundle+json;version=0.2"
# The bundle versions by media type (v0.3 has two spellings): what each requires of its log
# entries is checked by the verifier (v0.1: an inclusion promise; v0.2 on: a proof).
VERSIONS: Final = {V01_MEDIA_TYPE: 1, V02_MEDIA_TYPE: 2, BUNDLE_MEDIA_TYPES[2]: 3,
                   MEDIA_TYPE: 3}
_FIX = "Pass a Sigstore bundle (.sigstore.json)."


@dataclass(frozen=True)
class SignedArtifact:
    """The parts of a bundle that verification reads.

    The content is a message signature over ``digest`` or a DSSE ``envelope`` (then
    ``digest`` is None and ``signature`` is the envelope's one signature, over its PAE). The
    signer is a certificate (``leaf``; v0.1/v0.2 carry it first in a chain, whose other
    certificates verification ignores: the trust root says which CAs count) or a managed key
    named by ``key_hint``.
    """

    leaf: x509.Certificate | None
    digest: bytes | None
    signature: bytes
    timestamps: tuple[bytes, ...]
    tlog_entries: tuple[TransparencyLogEntry, ...]
    model: Bundle
    envelope: DsseEnvelope | None = None
    key_hint: str | None = None

    @property
    def version(self) -> int:
        """The bundle's minor version: 1, 2 or 3."""
        return VERSIONS[self.model.media_type]

    @property
    def certificate(self) -> x509.Certificate:
        """The leaf, for callers that only handle certificate bundles (the service's own)."""
        if self.leaf is None:
            raise UsageError("The bundle is signed with a managed key, not a certificate.",
                             "Verify it with --key.")
        return self.leaf

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


@dataclass(frozen=True, slots=True)
class Skeleton:
    """A bundle's JSON on either side of its one tlog entry, encoded before the entry exists:
    outside the log's critical section, and two strings to hand to the sequencer instead of
    a tree of dicts."""

    head: str
    tail: str

    @classmethod
    def of(cls, unlogged: SignedArtifact) -> Skeleton:
        """``unlogged``: a bundle built with no tlog entry."""
        head, marker, tail = unlogged.to_json().partition(_NO_ENTRIES)
        if not marker or _NO_ENTRIES in tail:
            raise ValueError("a skeleton is a bundle with no tlog entry")
        return cls(head + _NO_ENTRIES[:-1], _NO_ENTRIES[-1] + tail)

    def with_entry(self, entry: TransparencyLogEntry) -> str:
        """The bundle JSON with ``entry`` as its tlog entry, byte for byte as ``to_json()``
        writes it."""
        return self.head + json.dumps(_entry_dict(entry), separators=(",", ":")) + self.tail


_NO_ENTRIES = '"tlogEntries":[]'  # base64 and media types hold no quote: found only as a key


def _entry_dict(entry: TransparencyLogEntry) -> dict[str, Any]:
    """``entry.to_dict()``, written out: the generic encoder walks the types by reflection,
    and this runs inside the log's critical section, once per entry (test_bundle_json)."""
    out: dict[str, Any] = {
        "logIndex": str(entry.log_index),
        "logId": {"keyId": _b64(entry.log_id.key_id)},
        "kindVersion": {"kind": entry.kind_version.kind, "version": entry.kind_version.version},
        "canonicalizedBody": _b64(entry.canonicalized_body),
    }
    proof = entry.inclusion_proof
    if proof is not None:
        out["inclusionProof"] = {
            "logIndex": str(proof.log_index), "rootHash": _b64(proof.root_hash),
            "treeSize": str(proof.tree_size), "hashes": [_b64(h) for h in proof.hashes]}
        if proof.checkpoint is not None:
            out["inclusionProof"]["checkpoint"] = {"envelope": proof.checkpoint.envelope}
    if entry.integrated_time is not None:
        out["integratedTime"] = str(entry.integrated_time)
    if entry.inclusion_promise is not None:
        out["inclusionPromise"] = {
            "signedEntryTimestamp": _b64(entry.inclusion_promise.signed_entry_timestamp)}
    return out


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


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
    """Any Sigstore bundle, v0.1 to v0.3, or `UsageError` saying what it is not."""
    if len(text) > MAX_BUNDLE_BYTES:
        raise UsageError(f"{source} is {len(text)} bytes; a bundle is at most "
                         f"{MAX_BUNDLE_BYTES}.", _FIX)
    try:
        model = Bundle.from_json(text)
    except WireError as exc:
        raise UsageError(f"{source} is not a Sigstore bundle: {exc}.", _FIX) from exc
    if model.media_type not in VERSIONS:
        raise UsageError(f"{source} has the media type {model.media_type[:80]!r}, not a "
                         "Sigstore bundle's.", _FIX)
    material = model.verification_material
    leaf, hint = _signer(material, VERSIONS[model.media_type], source)
    tsd = material.timestamp_verification_data
    timestamps = tuple(t.signed_timestamp for t in tsd.rfc3161_timestamps) if tsd else ()
    entries = tuple(material.tlog_entries)
    envelope, message = model.dsse_envelope, model.message_signature
    if envelope is not None and message is not None:
        raise UsageError(f"{source} holds a DSSE envelope and a message signature; a bundle "
                         "holds one of them.", _FIX)
    if envelope is not None:
        # Sigstore's bundle specification: the envelope carries exactly one signature.
        if len(envelope.signatures) != 1:
            raise UsageError(f"{source} holds a DSSE envelope with {len(envelope.signatures)} "
                             "signatures; a Sigstore bundle's carries exactly one.", _FIX)
        return SignedArtifact(leaf, None, envelope.signatures[0].sig, timestamps, entries,
                              model, envelope, hint)
    if message is None or message.message_digest is None:
        raise UsageError(f"{source} has no message signature with a digest and no DSSE "
                         "envelope.", _FIX)
    if message.message_digest.algorithm != SHA2_256:
        raise UsageError(f"{source} uses {message.message_digest.algorithm}; only SHA2_256 "
                         "is supported.")
    return SignedArtifact(leaf, message.message_digest.digest, message.signature, timestamps,
                          entries, model, None, hint)


def _signer(material: VerificationMaterial, version: int, source: str
            ) -> tuple[x509.Certificate | None, str | None]:
    """The leaf certificate, or the hint of the managed key, that signed."""
    given = [m for m in (material.certificate, material.x509_certificate_chain,
                         material.public_key) if m is not None]
    if len(given) != 1:
        raise UsageError(f"{source} has no certificate, certificate chain or public key"
                         if not given else f"{source} names more than one signer (certificate, "
                         "chain, public key)", _FIX)
    if material.public_key is not None:
        return None, material.public_key.hint or ""
    if material.x509_certificate_chain is not None:
        # v0.3 replaced the chain with the leaf alone (protobuf-specs bundle.proto).
        if version == 3:
            raise UsageError(f"{source} is a v0.3 bundle with a certificate chain; v0.3 "
                             "carries the leaf as 'certificate'.", _FIX)
        certificates = material.x509_certificate_chain.certificates
        if not certificates:
            raise UsageError(f"{source} has an empty certificate chain.", _FIX)
        der = certificates[0].raw_bytes
    else:
        assert material.certificate is not None
        der = material.certificate.raw_bytes
    try:
        return x509.load_der_x509_certificate(der), None
    except ValueError as exc:
        raise UsageError(f"{source} holds a certificate that cannot be parsed.") from exc


def read(path: Path) -> SignedArtifact:
    try:
        with path.open("rb", buffering=0) as file:  # unbuffered: one read, no copy (~5 us)
            data = file.read()
    except OSError as exc:
        raise UsageError(f"Cannot read the bundle {path}: {exc.strerror}.") from exc
    return parse(data, str(path))


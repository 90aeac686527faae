"""The transparency checks of verification: the leaf's SCT and the signature's log entry.

Pure functions over the pinned trust material; the verifier calls them as numbered steps.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, load_der_public_key

from signer.sigstore_json import TransparencyLogEntry, TransparencyLogInstance
from signer.transparency import merkle, rekor
from signer.transparency.checkpoint import CheckpointError, verify_checkpoint
from signer.transparency.sct import SCTError, verify_embedded_sct
from signer.verification.windows import Window


class LogCheckError(ValueError):
    """A log entry or SCT does not prove what it claims."""


def log_keys(logs: Sequence[TransparencyLogInstance]
             ) -> dict[bytes, tuple[ec.EllipticCurvePublicKey, TransparencyLogInstance]]:
    keys = {}
    for log in logs:
        if log.public_key.raw_bytes is None:
            continue
        key = load_der_public_key(log.public_key.raw_bytes)
        if isinstance(key, ec.EllipticCurvePublicKey):
            keys[log.log_id.key_id] = (key, log)
    return keys


def check_sct(cert: x509.Certificate, issuer: x509.Certificate,
              ctlogs: Mapping[bytes, tuple[ec.EllipticCurvePublicKey, TransparencyLogInstance]],
              issuer_key_hash: bytes | None = None) -> None:
    """``issuer_key_hash``: the issuer's RFC 6962 key hash, if known already."""
    try:
        verify_embedded_sct(cert, issuer, {k: v[0] for k, v in ctlogs.items()},
                            issuer_key_hash)
    except SCTError as exc:
        raise LogCheckError(str(exc)) from exc
    # A rotated CT log key is trusted only for SCTs it made while it was the log's key.
    sct = cert.extensions.get_extension_for_class(
        x509.PrecertificateSignedCertificateTimestamps).value[0]
    at = sct.timestamp if sct.timestamp.tzinfo else sct.timestamp.replace(tzinfo=UTC)
    outside = outside_window(ctlogs[sct.log_id][1], at)
    if outside:
        raise LogCheckError(f"the SCT was made at {at.isoformat()} by CT log key "
                            f"{sct.log_id.hex()}, {outside}")


def outside_window(log: TransparencyLogInstance, at: datetime) -> str | None:
    """Why ``at`` is outside the log key's validFor (both ends included), or None."""
    window = Window.of(log.public_key.valid_for)
    return None if window is None else window.why_outside(at)


def check_entry(
    entries: Sequence[TransparencyLogEntry],
    tlogs: Mapping[bytes, tuple[ec.EllipticCurvePublicKey, TransparencyLogInstance]],
    cert: x509.Certificate,
    digest: bytes,
    signature: bytes,
) -> int:
    """The one hashedrekord entry: body matches, proof, checkpoint, promise, time. → index"""
    if len(entries) != 1:
        raise LogCheckError(f"the bundle must hold exactly one log entry, it holds {len(entries)}")
    entry = entries[0]
    found = tlogs.get(entry.log_id.key_id)
    if found is None:
        raise LogCheckError(f"the entry is from log {entry.log_id.key_id.hex()}, which the "
                            "trust root does not list")
    key, log = found
    kind = (entry.kind_version.kind, entry.kind_version.version)
    if kind != (rekor.HASHEDREKORD_KIND, rekor.HASHEDREKORD_VERSION):
        raise LogCheckError(f"the entry is of kind {kind[0]} {kind[1]}, not hashedrekord 0.0.1")
    # The body must say exactly what the bundle says (CVE-2022-36056's lesson).
    expected = rekor.hashedrekord_body(digest, signature, cert.public_bytes(Encoding.PEM))
    if entry.canonicalized_body != expected:
        raise LogCheckError("the entry's body does not match the bundle's certificate, "
                            "signature and digest")
    proof = entry.inclusion_proof
    if proof.log_index != entry.log_index:
        raise LogCheckError("the inclusion proof is for another index than the entry")
    try:
        merkle.verify_inclusion(merkle.leaf_hash(expected), proof.log_index, proof.tree_size,
                                proof.hashes, proof.root_hash)
    except merkle.MerkleError as exc:
        raise LogCheckError(f"the inclusion proof does not verify: {exc}") from exc
    if proof.checkpoint is None:
        raise LogCheckError("the inclusion proof has no signed checkpoint")
    try:
        checkpoint = verify_checkpoint(proof.checkpoint.envelope, urlsplit(log.base_url).netloc,
                                       key)
    except CheckpointError as exc:
        raise LogCheckError(f"the checkpoint is not signed by the log: {exc}") from exc
    if (checkpoint.size, checkpoint.root_hash) != (proof.tree_size, proof.root_hash):
        raise LogCheckError("the signed checkpoint is for another tree than the proof")
    if entry.inclusion_promise is None or entry.integrated_time is None:
        raise LogCheckError("the entry has no inclusion promise")
    try:
        rekor.verify_signed_entry_timestamp(
            key, entry.inclusion_promise.signed_entry_timestamp, body=expected,
            integrated_time=entry.integrated_time, log_id=entry.log_id.key_id,
            log_index=entry.log_index)
    except rekor.SignedEntryTimestampError as exc:
        raise LogCheckError(str(exc)) from exc
    integrated = datetime.fromtimestamp(entry.integrated_time, UTC)
    # A rotated log key is trusted only for entries integrated while it was the log's key.
    outside = outside_window(log, integrated)
    if outside:
        raise LogCheckError(f"the entry was integrated at {integrated.isoformat()} by log key "
                            f"{entry.log_id.key_id.hex()}, {outside}")
    if not cert.not_valid_before_utc <= integrated <= cert.not_valid_after_utc:
        raise LogCheckError(f"the entry was logged at {integrated.isoformat()}, outside the "
                            "certificate's validity")
    return int(entry.log_index)

"""The transparency checks of verification: the leaf's SCT and the signature's log entry.

Pure functions over the pinned trust material; the verifier calls them as numbered steps.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_der_public_key,
    load_pem_public_key,
)

from signer.key_details import PublicKeyTypes
from signer.sigstore_json import (
    DsseEnvelope,
    InclusionProof,
    TransparencyLogEntry,
    TransparencyLogInstance,
)
from signer.transparency import merkle, note, rekor, rekor_bodies
from signer.transparency.checkpoint import Checkpoint, CheckpointError
from signer.transparency.note import NoteKey
from signer.transparency.sct import SCTError, verify_embedded_sct
from signer.transparency.sct import log_id as key_log_id
from signer.verification.windows import Window


class LogCheckError(ValueError):
    """A log entry or SCT does not prove what it claims."""


def log_keys(logs: Sequence[TransparencyLogInstance]
             ) -> dict[bytes, tuple[ec.EllipticCurvePublicKey, TransparencyLogInstance]]:
    keys = {}
    for log in logs:
        if log.public_key.raw_bytes is None:
            continue
        try:
            key = load_der_public_key(log.public_key.raw_bytes)
        except ValueError:
            continue  # e.g. a PKCS#1 RSA CT key of a retired test log
        if isinstance(key, ec.EllipticCurvePublicKey):
            keys[log.log_id.key_id] = (key, log)
    return keys


def check_sct(cert: x509.Certificate, issuer: x509.Certificate,
              ctlogs: Mapping[bytes, tuple[ec.EllipticCurvePublicKey, TransparencyLogInstance]],
              issuer_key_hash: bytes | None = None) -> None:
    """``issuer_key_hash``: the issuer's RFC 6962 key hash, if known already."""
    try:
        sct = verify_embedded_sct(cert, issuer, {k: v[0] for k, v in ctlogs.items()},
                                  issuer_key_hash)
    except SCTError as exc:
        raise LogCheckError(str(exc)) from exc
    # A rotated CT log key is trusted only for SCTs it made while it was the log's key.
    at = sct.timestamp if sct.timestamp.tzinfo else sct.timestamp.replace(tzinfo=UTC)
    outside = outside_window(ctlogs[sct.log_id][1], at)
    if outside:
        raise LogCheckError(f"the SCT was made at {at.isoformat()} by CT log key "
                            f"{sct.log_id.hex()}, {outside}")


def outside_window(log: TransparencyLogInstance, at: datetime) -> str | None:
    """Why ``at`` is outside the log key's validFor (both ends included), or None."""
    window = Window.of(log.public_key.valid_for)
    return None if window is None else window.why_outside(at)


@dataclass(frozen=True)
class TlogKey:
    """A transparency log key of the trust root, and the name its checkpoints are signed as."""

    key: NoteKey
    log: TransparencyLogInstance
    name: str  # host[:port] of its base URL: how Rekor v1 and v2 sign checkpoints

    @cached_property  # a hash of the key: once per trust root, not per inclusion promise
    def key_log_id(self) -> bytes:
        return key_log_id(self.key)

    @cached_property  # its key ID is a hash: made once per trust root, not per checkpoint
    def verifier(self) -> note.NoteVerifier | None:
        """The note verifier of the key as ``name``, if that is a key name."""
        try:
            return note.NoteVerifier(self.name, self.key)
        except ValueError:
            return None


def tlog_keys(logs: Sequence[TransparencyLogInstance]) -> dict[bytes, TlogKey]:
    """Every ECDSA or Ed25519 log key, by each id an entry may name it by: the trust root's
    ``logId`` and ``checkpointKeyId``, and the C2SP key hash a Rekor v2 entry carries."""
    keys: dict[bytes, TlogKey] = {}
    for log in logs:
        if log.public_key.raw_bytes is None:
            continue
        try:
            key = load_der_public_key(log.public_key.raw_bytes)
        except ValueError:
            continue  # a key kind no log signs with: it cannot vouch for an entry
        if not isinstance(key, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey):
            continue
        found = TlogKey(key, log, urlsplit(log.base_url).netloc)
        ids = {log.log_id.key_id, note.log_id(found.name, key)}
        if log.checkpoint_key_id is not None:
            ids.add(log.checkpoint_key_id.key_id)
        for key_id in ids:
            keys.setdefault(key_id, found)
    return keys


@dataclass(frozen=True)
class Signed:
    """What a bundle says was signed, and by whom: what a log entry's body must record."""

    signature: bytes
    digest: bytes | None  # a message signature's SHA-256
    envelope: DsseEnvelope | None
    certificate: x509.Certificate | None
    key: PublicKeyTypes  # the certificate's key, or the managed key

    def verifier_pem(self) -> bytes:
        if self.certificate is not None:
            return self.certificate.public_bytes(Encoding.PEM)
        return self.key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)

    def v2_verifier(self) -> rekor_bodies.V2Verifier:
        if self.certificate is not None:
            return rekor_bodies.certificate_verifier(self.certificate)
        return rekor_bodies.public_key_verifier(self.key)


@dataclass(frozen=True)
class LoggedEntry:
    """A verified log entry: its index, whether it is Rekor v2's, and (Rekor v1) the time its
    inclusion promise signs, if it has one."""

    log_index: int
    rekor_v2: bool
    integrated_time: datetime | None
    log: TransparencyLogInstance


V2_KINDS = {(rekor_bodies.HASHEDREKORD_KIND, rekor_bodies.V002),
            (rekor_bodies.DSSE_KIND, rekor_bodies.V002)}
_MESSAGE_KINDS = {(rekor.HASHEDREKORD_KIND, rekor.HASHEDREKORD_VERSION),
                  (rekor_bodies.HASHEDREKORD_KIND, rekor_bodies.V002)}
_DSSE_KINDS = {(rekor_bodies.DSSE_KIND, rekor_bodies.V001),
               (rekor_bodies.INTOTO_KIND, rekor_bodies.V002),
               (rekor_bodies.DSSE_KIND, rekor_bodies.V002),
               (rekor_bodies.HASHEDREKORD_KIND, rekor_bodies.V002)}


def promised_time(entry: TransparencyLogEntry) -> datetime | None:
    """A Rekor v1 entry's integrated time, if an inclusion promise signs it (checked with the
    entry). An inclusion proof does not cover it: the Merkle leaf is the body alone."""
    if (entry.kind_version.kind, entry.kind_version.version) in V2_KINDS:
        return None
    if entry.inclusion_promise is None or not entry.integrated_time:
        return None
    return datetime.fromtimestamp(entry.integrated_time, UTC)


def check_entry(entry: TransparencyLogEntry, tlogs: Mapping[bytes, TlogKey],
                bundle_version: int, signed: Signed) -> LoggedEntry:
    """The entry records this very signature, and the log vouches for it: its body matches
    the bundle, its inclusion proof reaches a checkpoint the log signed, its promise (Rekor
    v1) verifies. What it must carry depends on the bundle's version and the log's."""
    found = tlogs.get(entry.log_id.key_id)
    if found is None:
        raise LogCheckError(f"the entry is from log {entry.log_id.key_id.hex()}, which the "
                            "trust root does not list")
    kind = (entry.kind_version.kind, entry.kind_version.version)
    allowed = _DSSE_KINDS if signed.envelope is not None else _MESSAGE_KINDS
    if kind not in allowed:
        content = "a DSSE envelope" if signed.envelope is not None else "a message signature"
        raise LogCheckError(f"the entry is of kind {kind[0]} {kind[1]}, which cannot record "
                            f"{content}")
    _check_body(entry.canonicalized_body, kind, signed)
    rekor_v2 = kind in V2_KINDS
    proof = entry.inclusion_proof
    if proof is None and (rekor_v2 or bundle_version >= 2):
        raise LogCheckError("the entry has no inclusion proof (a v0.2+ bundle and a Rekor v2 "
                            "entry need one)")
    if proof is not None:
        _check_inclusion(entry, proof, found, rekor_v2)
    integrated = None
    if not rekor_v2:
        if entry.inclusion_promise is None:
            if bundle_version == 1:
                raise LogCheckError("the entry has no inclusion promise (a v0.1 bundle needs "
                                    "one)")
        else:
            if not entry.integrated_time:
                raise LogCheckError("the entry's inclusion promise has no integrated time")
            if not isinstance(found.key, ec.EllipticCurvePublicKey):
                raise LogCheckError("the inclusion promise names a log whose key is not ECDSA")
            try:
                rekor.verify_signed_entry_timestamp(
                    found.key, entry.inclusion_promise.signed_entry_timestamp,
                    body=entry.canonicalized_body, integrated_time=entry.integrated_time,
                    log_id=found.log.log_id.key_id, log_index=entry.log_index,
                    key_id=found.key_log_id)
            except rekor.SignedEntryTimestampError as exc:
                raise LogCheckError(str(exc)) from exc
            integrated = datetime.fromtimestamp(entry.integrated_time, UTC)
    return LoggedEntry(int(entry.log_index), rekor_v2, integrated, found.log)


def _check_body(body: bytes, kind: tuple[str, str], signed: Signed) -> None:
    """The body must say exactly what the bundle says (CVE-2022-36056's lesson): rebuilt and
    compared byte for byte where the bundle holds everything the body is made of."""
    envelope = signed.envelope
    if kind == (rekor.HASHEDREKORD_KIND, rekor.HASHEDREKORD_VERSION):
        assert signed.digest is not None
        if signed.certificate is not None:
            expected = rekor.hashedrekord_body(signed.digest, signed.signature,
                                               signed.verifier_pem())
            if body != expected:
                raise LogCheckError("the entry's body does not match the bundle's certificate, "
                                    "signature and digest")
            return
        # A managed key's PEM is as its owner wrote it (line breaks, headers): the key is
        # compared as a key, the rest field by field.
        parsed = _parsed(body)
        assert isinstance(parsed, rekor_bodies.HashedRekordV001)
        if (parsed.algorithm, parsed.digest, parsed.signature) != (
                "sha256", signed.digest, signed.signature) or not _same_verifier(
                    parsed.public_key, signed):
            raise LogCheckError("the entry's body does not match the bundle's key, signature "
                                "and digest")
        return
    if kind == (rekor_bodies.HASHEDREKORD_KIND, rekor_bodies.V002):
        verifier = signed.v2_verifier()
        if envelope is not None:  # a DSSE envelope logged as a hashedrekord over SHA-256(PAE)
            expected = rekor_bodies.dsse_as_hashedrekord_v002_body(envelope, verifier)
        else:
            assert signed.digest is not None
            expected = rekor_bodies.hashedrekord_v002_body(signed.digest, signed.signature,
                                                           verifier)
        if body != expected:
            raise LogCheckError("the entry's body does not match the bundle's signature, "
                                "signer and digest")
        return
    assert envelope is not None
    if kind == (rekor_bodies.DSSE_KIND, rekor_bodies.V002):
        if body != rekor_bodies.dsse_v002_body(envelope, signed.v2_verifier()):
            raise LogCheckError("the entry's body does not match the bundle's DSSE envelope "
                                "and signer")
        return
    # Rekor v1 dsse 0.0.1 and intoto 0.0.2 record the SHA-256 of the envelope JSON exactly as
    # it was submitted, which a bundle (holding the envelope re-serialised) cannot rebuild:
    # the body is compared field by field, everything but that hash.
    parsed = _parsed(body)
    payload_hash = hashlib.sha256(envelope.payload).digest()
    if isinstance(parsed, rekor_bodies.DsseV001):
        signatures = [(s, pem) for s, pem in parsed.signatures]
    else:
        assert isinstance(parsed, rekor_bodies.IntotoV002)
        if parsed.payload_type != envelope.payload_type:
            raise LogCheckError(f"the entry records payload type {parsed.payload_type!r}, the "
                                f"envelope carries {envelope.payload_type!r}")
        signatures = [(s.signature, s.public_key) for s in parsed.signatures]
    if parsed.payload_hash != payload_hash:
        raise LogCheckError("the entry records another payload than the envelope's")
    if len(signatures) != 1 or signatures[0][0] != signed.signature \
            or not _same_verifier(signatures[0][1], signed):
        raise LogCheckError("the entry does not record exactly the envelope's signature with "
                            "the bundle's signer")


def _parsed(body: bytes) -> rekor_bodies.RekorBody:
    try:
        return rekor_bodies.parse_body(body)
    except rekor_bodies.RekorBodyError as exc:
        raise LogCheckError(str(exc)) from exc


def _same_verifier(pem: bytes, signed: Signed) -> bool:
    """A body's verifier PEM names the bundle's certificate or key."""
    try:
        if pem.startswith(b"-----BEGIN CERTIFICATE-----"):
            return signed.certificate is not None and \
                x509.load_pem_x509_certificate(pem) == signed.certificate
        if signed.certificate is not None:
            return False
        spki = Encoding.DER, PublicFormat.SubjectPublicKeyInfo
        return bool(load_pem_public_key(pem).public_bytes(*spki)
                    == signed.key.public_bytes(*spki))
    except ValueError:
        return False


def _check_inclusion(entry: TransparencyLogEntry, proof: InclusionProof, log: TlogKey,
                     rekor_v2: bool) -> None:
    # Rekor v1 numbers entries across its shards (the entry's logIndex, which the promise
    # signs) and proves them in the active shard's tree (the proof's); a v2 log has one tree.
    if rekor_v2 and proof.log_index != entry.log_index:
        raise LogCheckError("the inclusion proof is for another index than the entry")
    try:
        merkle.verify_inclusion(merkle.leaf_hash(entry.canonicalized_body), proof.log_index,
                                proof.tree_size, proof.hashes, proof.root_hash)
    except merkle.MerkleError as exc:
        raise LogCheckError(f"the inclusion proof does not verify: {exc}") from exc
    if proof.checkpoint is None:
        raise LogCheckError("the inclusion proof has no signed checkpoint")
    try:
        checkpoint = log_checkpoint(proof.checkpoint.envelope, log)
    except CheckpointError as exc:
        raise LogCheckError(f"the checkpoint is not signed by the log: {exc}") from exc
    if (checkpoint.size, checkpoint.root_hash) != (proof.tree_size, proof.root_hash):
        raise LogCheckError("the signed checkpoint is for another tree than the proof")


def log_checkpoint(envelope: str, log: TlogKey) -> Checkpoint:
    """The checkpoint of a C2SP signed note that ``log`` signed, among any other signatures
    (witnesses' cosignatures, in any order). The log's line is found by its key ID and its
    name: the host of its base URL, or the checkpoint's origin (Rekor v1 signs as the
    origin's host, ``rekor.sigstore.dev - <tree id>``, whatever URL serves it)."""
    parsed = note.parse_note(envelope)
    origin = parsed.text.split("\n", 1)[0]
    names = dict.fromkeys([log.name, origin, origin.split(" - ", 1)[0]])
    errors = []
    for name in names:
        try:
            verifier = log.verifier if name == log.name else note.NoteVerifier(name, log.key)
        except ValueError:
            continue  # not a key name (a v1 origin holds spaces)
        if verifier is None:
            continue
        try:
            return note.verify_checkpoint(parsed, verifier)
        except CheckpointError as exc:
            errors.append(str(exc))
    raise CheckpointError("; ".join(errors))

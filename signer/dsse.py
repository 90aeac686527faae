"""DSSE envelopes and the in-toto statements they carry: what an attestation is on the wire.

DSSE (https://github.com/secure-systems-lab/dsse/blob/master/protocol.md) signs the
pre-authentication encoding of the payload, never the payload itself::

    PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body

with LEN the decimal byte length (of the UTF-8 type). A Sigstore bundle's ``dsseEnvelope``
is the protobuf-JSON form of the envelope (`signer.sigstore_json.DsseEnvelope`): payload and
signatures as base64, exactly one signature in practice.

The payload of an attestation is an in-toto Statement
(https://github.com/in-toto/attestation/blob/main/spec/v1/statement.md)::

    {"_type": "https://in-toto.io/Statement/v1",
     "subject": [{"name": "app.tar.gz", "digest": {"sha256": "<hex>"}}],
     "predicateType": "https://slsa.dev/provenance/v1", "predicate": {...}}

`Statement.parse` refuses malformed statements by naming the field; it ignores fields it does
not know, as the in-toto specification asks of consumers.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from signer.key_details import ecdsa_hash
from signer.sigstore_json import DsseEnvelope, DsseSignature, WireError

IN_TOTO_PAYLOAD_TYPE: Final = "application/vnd.in-toto+json"
STATEMENT_V1: Final = "https://in-toto.io/Statement/v1"
# npm's publish attestations and older SLSA generators still write v0.1; its shape is the same
# for what we read (subject, predicateType, predicate).
STATEMENT_V01: Final = "https://in-toto.io/Statement/v0.1"
STATEMENT_TYPES: Final = (STATEMENT_V1, STATEMENT_V01)
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


class DsseError(ValueError):
    """An envelope or statement is malformed, or its signature does not verify."""


class EnvelopeSigner(Protocol):
    """What signs an envelope: a key object with ``sign(data) -> signature``."""

    def sign(self, data: bytes) -> bytes: ...


VerifyingKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey


def pae(payload_type: str, payload: bytes) -> bytes:
    """The bytes a DSSE signature covers."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def sign_envelope(payload_type: str, payload: bytes, signer: EnvelopeSigner,
                  keyid: str | None = None) -> DsseEnvelope:
    """An envelope holding ``payload`` with one signature by ``signer`` over its PAE."""
    if not payload_type:
        raise ValueError("a DSSE payload type must not be empty")
    signature = signer.sign(pae(payload_type, payload))
    return DsseEnvelope(payload=payload, payload_type=payload_type,
                        signatures=(DsseSignature(sig=signature, keyid=keyid),))


def parse_envelope(text: str | bytes) -> DsseEnvelope:
    """An envelope from its JSON (as in a bundle, or as a DSSE file); raises `DsseError`."""
    try:
        envelope = DsseEnvelope.from_json(text)
    except WireError as exc:
        raise DsseError(f"malformed DSSE envelope: {exc}") from None
    if not envelope.payload_type:
        raise DsseError("malformed DSSE envelope: payloadType is empty")
    if not envelope.signatures:
        raise DsseError("malformed DSSE envelope: it carries no signature")
    return envelope


def verify_signature(envelope: DsseEnvelope, key: VerifyingKey) -> DsseSignature:
    """The envelope's signature that ``key`` made over the PAE; raises `DsseError` if none.

    ECDSA keys sign with the hash `signer.key_details` pairs with their curve.
    """
    message = pae(envelope.payload_type, envelope.payload)
    for signature in envelope.signatures:
        try:
            if isinstance(key, ed25519.Ed25519PublicKey):
                key.verify(signature.sig, message)
            else:
                key.verify(signature.sig, message, ec.ECDSA(ecdsa_hash(key.curve)))
        except InvalidSignature:
            continue
        return signature
    count = len(envelope.signatures)
    raise DsseError(
        f"no signature of the DSSE envelope ({count} present) verifies over "
        f"PAE({envelope.payload_type!r}, payload) with the signing key")


# -- in-toto statements ------------------------------------------------------------------------
@dataclass(frozen=True)
class Subject:
    """An artifact a statement is about: its name and digests (algorithm → lowercase hex)."""

    name: str
    digest: Mapping[str, str] = field(hash=False)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "digest": dict(self.digest)}


@dataclass(frozen=True)
class Statement:
    """An in-toto statement: subjects, what kind of claim (``predicate_type``) and the claim."""

    subjects: tuple[Subject, ...]
    predicate_type: str
    predicate: Mapping[str, Any] | None = field(default=None, hash=False)
    type: str = STATEMENT_V1

    @classmethod
    def about(cls, name: str, sha256: bytes, predicate_type: str,
              predicate: Mapping[str, Any] | None) -> Statement:
        """A v1 statement with one subject, the artifact ``name`` with its SHA-256."""
        if len(sha256) != 32:
            raise ValueError(f"a SHA-256 digest is 32 bytes, got {len(sha256)}")
        return cls((Subject(name, {"sha256": sha256.hex()}),), predicate_type, predicate)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"_type": self.type,
                               "subject": [s.to_dict() for s in self.subjects],
                               "predicateType": self.predicate_type}
        if self.predicate is not None:
            out["predicate"] = dict(self.predicate)
        return out

    def to_json(self) -> bytes:
        """The payload to put in an envelope (compact JSON, UTF-8)."""
        return json.dumps(self.to_dict(), separators=(",", ":"), ensure_ascii=False).encode()

    def subject_with_sha256(self, sha256: bytes) -> Subject | None:
        """The subject whose ``sha256`` digest is ``sha256``, if any."""
        wanted = sha256.hex()
        return next((s for s in self.subjects if s.digest.get("sha256") == wanted), None)

    @classmethod
    def parse(cls, payload: bytes) -> Statement:
        """A statement from an envelope's payload; raises `DsseError` naming the fault."""
        try:
            data = json.loads(payload, object_pairs_hook=_no_duplicate_keys)
        except UnicodeDecodeError:
            raise DsseError("in-toto statement is not UTF-8") from None
        except (ValueError, RecursionError) as exc:
            raise DsseError(f"in-toto statement is not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise DsseError("in-toto statement must be a JSON object")
        kind = data.get("_type")
        if kind not in STATEMENT_TYPES:
            raise DsseError(f"in-toto statement _type is {kind!r}, not {STATEMENT_V1!r}")
        predicate_type = data.get("predicateType")
        if not isinstance(predicate_type, str) or not predicate_type:
            raise DsseError("in-toto statement predicateType must be a non-empty string")
        predicate = data.get("predicate")
        if predicate is not None and not isinstance(predicate, dict):
            raise DsseError("in-toto statement predicate must be a JSON object")
        subjects = data.get("subject")
        if not isinstance(subjects, list) or not subjects:
            raise DsseError("in-toto statement subject must be a non-empty list")
        return cls(tuple(_subject(s, i) for i, s in enumerate(subjects)), predicate_type,
                   predicate, kind)


def _subject(value: object, index: int) -> Subject:
    where = f"in-toto statement subject[{index}]"
    if not isinstance(value, dict):
        raise DsseError(f"{where} must be an object")
    name = value.get("name", "")
    if not isinstance(name, str):
        raise DsseError(f"{where}.name must be a string")
    digest = value.get("digest")
    if not isinstance(digest, dict) or not digest:
        raise DsseError(f"{where}.digest must be a non-empty object")
    for algorithm, hexdigest in digest.items():
        if not isinstance(hexdigest, str) or not hexdigest:
            raise DsseError(f"{where}.digest.{algorithm} must be a non-empty string")
    sha256 = digest.get("sha256")
    if sha256 is not None and not _SHA256_HEX.fullmatch(sha256):
        raise DsseError(f"{where}.digest.sha256 must be 64 lowercase hex digits, got {sha256!r}")
    return Subject(name, dict(digest))


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Two parsers that keep different duplicates would see different subjects: refuse.
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def payload_sha256(envelope: DsseEnvelope) -> bytes:
    """SHA-256 of the payload, as Rekor's ``dsse`` and ``intoto`` entries record it."""
    return hashlib.sha256(envelope.payload).digest()

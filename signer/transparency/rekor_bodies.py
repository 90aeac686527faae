"""Rekor entry bodies beyond ``hashedrekord`` 0.0.1: DSSE and in-toto (v1), and Rekor v2.

A body is what the log stores as the entry (``canonicalizedBody`` in a bundle): RFC 8785
canonical JSON of the entry, whose Merkle leaf is ``leaf_hash(body)``. Builders here make it
from an entry's parts; `parse_body` reads one into a typed record a verifier compares with
the bundle. What each kind records, from the peers' sources:

- **v1 ``dsse`` 0.0.1** (rekor ``pkg/types/dsse/v0.0.1``): ``envelopeHash`` = SHA-256 of the
  envelope JSON exactly as submitted (a verifier cannot recompute it from a bundle, whose
  envelope is re-serialised), ``payloadHash`` = SHA-256 of the payload, and ``signatures``
  [{``signature``: the envelope's base64 signature, ``verifier``: base64 of the key's or
  certificate's PEM}], sorted by signature. sigstore-python compares payload hash and
  signatures; sigstore-js the single signature and the payload hash.
- **v1 ``intoto`` 0.0.2** (rekor ``pkg/types/intoto/v0.0.2``): ``content.envelope`` keeps the
  payload type and signatures, each ``sig`` *base64 of the base64 signature* and
  ``publicKey`` base64 of the PEM; ``content.hash`` is the SHA-256 of the submitted envelope
  JSON and ``content.payloadHash`` the payload's, both hex.
- **v2 ``hashedrekord`` 0.0.2 / ``dsse`` 0.0.2** (rekor-tiles ``pkg/types``, protobuf-specs
  ``rekor/v2``): protobuf-JSON of ``Entry{kind, apiVersion, spec: {hashedRekordV002 |
  dsseV002}}``, canonicalised with RFC 8785. A verifier names its key with
  ``keyDetails`` and either ``publicKey.rawBytes`` (DER SPKI) or ``x509Certificate.rawBytes``
  (DER). sigstore-python 4.x logs a DSSE envelope as a ``hashedrekord`` 0.0.2 over
  SHA-256(PAE) with the envelope's one signature (`dsse_as_hashedrekord_v002_body`); the
  ``dsse`` 0.0.2 kind records the payload hash and every signature with its verifier.
- The **v2 requests** clients POST to ``/api/v2/log/entries``: ``CreateEntryRequest`` with
  ``hashedRekordRequestV002{digest, signature}`` or ``dsseRequestV002{envelope, verifiers}``.
- The **v1 proposed entries** clients POST to ``/api/v1/log/entries`` (rekor's openapi): a
  ``hashedrekord`` 0.0.1 is its body; a ``dsse`` 0.0.1 is
  ``spec.proposedContent{envelope: the envelope's JSON as a string, verifiers: [base64 PEM]}``,
  of which the log stores the body above.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import json
from collections.abc import Callable, Sequence
from typing import Any, Final

import rfc8785
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from signer.dsse import pae
from signer.key_details import PublicKeyTypes, key_details
from signer.sigstore_json import (
    SHA2_256,
    DsseEnvelope,
    HashOutput,
    Message,
    WireError,
    X509Certificate,
)

DSSE_KIND: Final = "dsse"
INTOTO_KIND: Final = "intoto"
HASHEDREKORD_KIND: Final = "hashedrekord"
V001: Final = "0.0.1"
V002: Final = "0.0.2"
_V1_HASHES: Final = {"sha256": 32, "sha384": 48, "sha512": 64}


class RekorBodyError(ValueError):
    """A log entry body is not the kind it claims, or misses a field; ``str()`` names it."""


# -- Rekor v2 messages (protobuf-specs rekor/v2) -----------------------------------------------
@dataclasses.dataclass(frozen=True)
class V2PublicKey(Message):
    raw_bytes: bytes  # DER SubjectPublicKeyInfo


@dataclasses.dataclass(frozen=True)
class V2Verifier(Message):
    """The key a v2 entry's signature verifies with: a public key or a certificate."""

    key_details: str
    public_key: V2PublicKey | None = None
    x509_certificate: X509Certificate | None = None


@dataclasses.dataclass(frozen=True)
class V2Signature(Message):
    content: bytes
    verifier: V2Verifier


@dataclasses.dataclass(frozen=True)
class HashedRekordLogEntryV002(Message):
    data: HashOutput
    signature: V2Signature


@dataclasses.dataclass(frozen=True)
class DSSELogEntryV002(Message):
    payload_hash: HashOutput
    signatures: tuple[V2Signature, ...] = ()


@dataclasses.dataclass(frozen=True)
class V2Spec(Message):
    hashed_rekord_v002: HashedRekordLogEntryV002 | None = None
    dsse_v002: DSSELogEntryV002 | None = None


@dataclasses.dataclass(frozen=True)
class V2Entry(Message):
    """A Rekor v2 log entry, as ``canonicalizedBody`` holds it."""

    kind: str
    api_version: str
    spec: V2Spec


@dataclasses.dataclass(frozen=True)
class HashedRekordRequestV002(Message):
    digest: bytes
    signature: V2Signature


@dataclasses.dataclass(frozen=True)
class DSSERequestV002(Message):
    envelope: DsseEnvelope
    verifiers: tuple[V2Verifier, ...] = ()


@dataclasses.dataclass(frozen=True)
class CreateEntryRequest(Message):
    """The body of ``POST /api/v2/log/entries``: exactly one of the two requests."""

    hashed_rekord_request_v002: HashedRekordRequestV002 | None = None
    dsse_request_v002: DSSERequestV002 | None = None


def certificate_verifier(certificate: x509.Certificate) -> V2Verifier:
    """The v2 verifier of a signature made with a certificate's key (Fulcio's leaf)."""
    key = certificate.public_key()
    if not isinstance(key, PublicKeyTypes):
        raise TypeError(f"Sigstore has no key details for {type(key).__name__}")
    return V2Verifier(key_details(key), x509_certificate=X509Certificate(
        certificate.public_bytes(Encoding.DER)))


def public_key_verifier(key: PublicKeyTypes) -> V2Verifier:
    """The v2 verifier of a signature made with a managed key."""
    return V2Verifier(key_details(key), public_key=V2PublicKey(
        key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)))


def _canonical(message: Message) -> bytes:
    return rfc8785.dumps(message.to_dict())


# -- v2 builders -------------------------------------------------------------------------------
def hashedrekord_v002_body(digest: bytes, signature: bytes, verifier: V2Verifier) -> bytes:
    """Canonical body of a Rekor v2 ``hashedrekord`` 0.0.2 entry for a SHA-256 ``digest``."""
    _check_sha256(digest)
    entry = V2Entry(HASHEDREKORD_KIND, V002, V2Spec(hashed_rekord_v002=HashedRekordLogEntryV002(
        HashOutput(SHA2_256, digest), V2Signature(signature, _checked(verifier)))))
    return _canonical(entry)


def dsse_as_hashedrekord_v002_body(envelope: DsseEnvelope, verifier: V2Verifier) -> bytes:
    """A DSSE envelope logged as sigstore-python 4.x does: hashedrekord over SHA-256(PAE)."""
    if len(envelope.signatures) != 1:
        raise ValueError("a DSSE envelope is logged as a hashedrekord only with one signature")
    digest = hashlib.sha256(pae(envelope.payload_type, envelope.payload)).digest()
    return hashedrekord_v002_body(digest, envelope.signatures[0].sig, verifier)


def dsse_v002_body(envelope: DsseEnvelope, verifier: V2Verifier) -> bytes:
    """Canonical body of a Rekor v2 ``dsse`` 0.0.2 entry: every signature, one verifier.

    rekor-tiles lists the signatures each verifier accepted, in envelope order; with one
    verifier that is every signature in envelope order.
    """
    if not envelope.signatures:
        raise ValueError("a DSSE envelope without signatures cannot be logged")
    checked = _checked(verifier)
    entry = V2Entry(DSSE_KIND, V002, V2Spec(dsse_v002=DSSELogEntryV002(
        HashOutput(SHA2_256, hashlib.sha256(envelope.payload).digest()),
        tuple(V2Signature(s.sig, checked) for s in envelope.signatures))))
    return _canonical(entry)


def hashedrekord_v002_request(digest: bytes, signature: bytes, verifier: V2Verifier) -> bytes:
    """The JSON a client POSTs to ``/api/v2/log/entries`` for a signed digest."""
    _check_sha256(digest)
    request = CreateEntryRequest(hashed_rekord_request_v002=HashedRekordRequestV002(
        digest, V2Signature(signature, _checked(verifier))))
    return request.to_json().encode()


def dsse_v002_request(envelope: DsseEnvelope, verifiers: Sequence[V2Verifier]) -> bytes:
    """The JSON a client POSTs to ``/api/v2/log/entries`` for a DSSE envelope."""
    if not verifiers:
        raise ValueError("a DSSE request needs at least one verifier")
    request = CreateEntryRequest(dsse_request_v002=DSSERequestV002(
        envelope, tuple(_checked(v) for v in verifiers)))
    return request.to_json().encode()


def parse_create_entry_request(text: str | bytes) -> CreateEntryRequest:
    """A v2 create-entry request; raises `RekorBodyError` naming the field."""
    try:
        request = CreateEntryRequest.from_json(text)
    except WireError as exc:
        raise RekorBodyError(f"malformed Rekor v2 request: {exc}") from None
    if (request.hashed_rekord_request_v002 is None) == (request.dsse_request_v002 is None):
        raise RekorBodyError("a Rekor v2 request holds exactly one of hashedRekordRequestV002 "
                             "and dsseRequestV002")
    hashed = request.hashed_rekord_request_v002
    if hashed is not None and len(hashed.digest) != 32:
        raise RekorBodyError(f"hashedRekordRequestV002.digest is {len(hashed.digest)} bytes; "
                             "a SHA-256 digest is 32")
    for verifier in _request_verifiers(request):
        _checked(verifier, RekorBodyError)
    return request


def _request_verifiers(request: CreateEntryRequest) -> tuple[V2Verifier, ...]:
    if request.hashed_rekord_request_v002 is not None:
        return (request.hashed_rekord_request_v002.signature.verifier,)
    assert request.dsse_request_v002 is not None
    return request.dsse_request_v002.verifiers


def _checked(verifier: V2Verifier, error: type[ValueError] = ValueError) -> V2Verifier:
    if (verifier.public_key is None) == (verifier.x509_certificate is None):
        raise error("a Rekor v2 verifier holds exactly one of publicKey and x509Certificate")
    if not verifier.key_details:
        raise error("a Rekor v2 verifier must name its keyDetails")
    return verifier


def _check_sha256(digest: bytes) -> None:
    if len(digest) != 32:
        raise ValueError(f"digest must be SHA-256 (32 bytes), got {len(digest)}")


# -- v1 builders -------------------------------------------------------------------------------
def dsse_v001_body(envelope_json: bytes, envelope: DsseEnvelope, verifier_pem: bytes) -> bytes:
    """Canonical body of a Rekor v1 ``dsse`` 0.0.1 entry.

    ``envelope_json`` is the envelope exactly as submitted to the log (its hash is recorded);
    ``verifier_pem`` the PEM of the certificate or public key every signature verifies with.
    """
    _check_pem(verifier_pem)
    if not envelope.signatures:
        raise ValueError("a DSSE envelope without signatures cannot be logged")
    verifier = base64.b64encode(verifier_pem).decode()
    signatures = sorted(base64.b64encode(s.sig).decode() for s in envelope.signatures)
    return rfc8785.dumps({"apiVersion": V001, "kind": DSSE_KIND, "spec": {
        "envelopeHash": {"algorithm": "sha256", "value": hashlib.sha256(envelope_json).hexdigest()},
        "payloadHash": {"algorithm": "sha256",
                        "value": hashlib.sha256(envelope.payload).hexdigest()},
        "signatures": [{"signature": s, "verifier": verifier} for s in signatures]}})


def intoto_v002_body(envelope_json: bytes, envelope: DsseEnvelope, verifier_pem: bytes) -> bytes:
    """Canonical body of a Rekor v1 ``intoto`` 0.0.2 entry (see the module's notes)."""
    _check_pem(verifier_pem)
    if not envelope.signatures:
        raise ValueError("a DSSE envelope without signatures cannot be logged")
    public_key = base64.b64encode(verifier_pem).decode()
    signatures = []
    for signature in envelope.signatures:
        item = {"publicKey": public_key,
                "sig": base64.b64encode(base64.b64encode(signature.sig)).decode()}
        if signature.keyid:  # Go's omitempty
            item["keyid"] = signature.keyid
        signatures.append(item)
    return rfc8785.dumps({"apiVersion": V002, "kind": INTOTO_KIND, "spec": {"content": {
        "envelope": {"payloadType": envelope.payload_type, "signatures": signatures},
        "hash": {"algorithm": "sha256", "value": hashlib.sha256(envelope_json).hexdigest()},
        "payloadHash": {"algorithm": "sha256",
                        "value": hashlib.sha256(envelope.payload).hexdigest()}}}})


def _check_pem(pem: bytes) -> None:
    if not pem.startswith(b"-----BEGIN "):
        raise ValueError("a Rekor v1 verifier is the PEM of a certificate or public key")


# -- parsing -----------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class HashedRekordV001:
    algorithm: str  # sha256, sha384 or sha512
    digest: bytes
    signature: bytes
    public_key: bytes  # PEM of the certificate or key


@dataclasses.dataclass(frozen=True)
class DsseV001:
    envelope_hash: bytes
    payload_hash: bytes
    signatures: tuple[tuple[bytes, bytes], ...]  # (signature, verifier PEM)


@dataclasses.dataclass(frozen=True)
class IntotoSignatureV002:
    signature: bytes  # decoded twice: the raw signature
    public_key: bytes  # PEM
    keyid: str | None


@dataclasses.dataclass(frozen=True)
class IntotoV002:
    envelope_hash: bytes
    payload_hash: bytes
    payload_type: str
    signatures: tuple[IntotoSignatureV002, ...]


RekorBody = HashedRekordV001 | DsseV001 | IntotoV002 | V2Entry


@dataclasses.dataclass(frozen=True)
class DsseProposalV001:
    """A Rekor v1 ``dsse`` 0.0.1 proposed entry."""

    envelope_json: str  # the envelope exactly as submitted: its hash is the envelopeHash
    verifiers: tuple[bytes, ...]  # PEM of each certificate or public key


ProposedEntry = HashedRekordV001 | DsseProposalV001


def parse_proposed_entry(data: object) -> ProposedEntry:
    """A v1 proposed entry, ``hashedrekord`` or ``dsse`` 0.0.1; raises `RekorBodyError`
    naming the fault."""
    if not isinstance(data, dict):
        raise RekorBodyError("a proposed entry is a JSON object")
    kind, version = data.get("kind"), data.get("apiVersion")
    if (kind, version) == (HASHEDREKORD_KIND, V001):
        try:
            canonical = rfc8785.dumps(data)
        except (ValueError, TypeError) as exc:  # numbers or text JSON cannot canonicalise
            raise RekorBodyError(f"the proposed entry has no canonical JSON: {exc}") from None
        parsed = parse_body(canonical)
        assert isinstance(parsed, HashedRekordV001)
        return parsed
    if (kind, version) != (DSSE_KIND, V001):
        raise RekorBodyError(f"proposed entry kind {str(kind)[:40]!r} version "
                             f"{str(version)[:20]!r} is not one signer logs (hashedrekord "
                             "0.0.1, dsse 0.0.1)")
    try:
        where = "spec.proposedContent"
        content = _object(_object(data, "spec"), "proposedContent", "spec")
        verifiers = tuple(_b64_text(item, f"{where}.verifiers[{index}]")
                          for index, item in enumerate(_list(content, "verifiers", where)))
        return DsseProposalV001(_text(content, "envelope", where), verifiers)
    except WireError as exc:
        raise RekorBodyError(f"malformed dsse 0.0.1 proposed entry: {exc}") from None


def parse_body(body: bytes) -> RekorBody:
    """A log entry body as a typed record; raises `RekorBodyError` naming the fault."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise RekorBodyError(f"log entry body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise RekorBodyError("log entry body is not a JSON object")
    kind, version = data.get("kind"), data.get("apiVersion")
    reader = _READERS.get((str(kind), str(version)))
    if reader is None:
        raise RekorBodyError(f"log entry kind {kind!r} version {version!r} is not one signer reads"
                             f" (hashedrekord 0.0.1/0.0.2, dsse 0.0.1/0.0.2, intoto 0.0.2)")
    try:
        return reader(data)
    except WireError as exc:
        raise RekorBodyError(f"malformed {kind} {version} entry: {exc}") from None


def _v2(data: dict[str, Any]) -> V2Entry:
    entry = V2Entry.from_dict(data)
    spec = entry.spec
    expected = spec.hashed_rekord_v002 if entry.kind == HASHEDREKORD_KIND else spec.dsse_v002
    if expected is None or (spec.hashed_rekord_v002 is None) == (spec.dsse_v002 is None):
        field = "hashedRekordV002" if entry.kind == HASHEDREKORD_KIND else "dsseV002"
        raise WireError(f"spec must hold {field} and nothing else")
    if spec.hashed_rekord_v002 is not None:
        signatures: tuple[V2Signature, ...] = (spec.hashed_rekord_v002.signature,)
    else:
        assert spec.dsse_v002 is not None
        signatures = spec.dsse_v002.signatures
    for signature in signatures:
        _checked(signature.verifier, WireError)
    return entry


def _hashedrekord_v001(data: dict[str, Any]) -> HashedRekordV001:
    spec = _object(data, "spec")
    hashed = _object(_object(spec, "data", "spec"), "hash", "spec.data")
    algorithm = _text(hashed, "algorithm", "spec.data.hash")
    if algorithm not in _V1_HASHES:
        raise WireError(f"spec.data.hash.algorithm: {algorithm!r} is not sha256, sha384 or sha512")
    digest = _hex(hashed, "value", "spec.data.hash", _V1_HASHES[algorithm])
    signature = _object(spec, "signature", "spec")
    key = _object(signature, "publicKey", "spec.signature")
    return HashedRekordV001(algorithm, digest, _b64(signature, "content", "spec.signature"),
                            _b64(key, "content", "spec.signature.publicKey"))


def _dsse_v001(data: dict[str, Any]) -> DsseV001:
    spec = _object(data, "spec")
    signatures = []
    for index, item in enumerate(_list(spec, "signatures", "spec")):
        where = f"spec.signatures[{index}]"
        if not isinstance(item, dict):
            raise WireError(f"{where}: expected an object")
        signatures.append((_b64(item, "signature", where), _b64(item, "verifier", where)))
    return DsseV001(_sha256(spec, "envelopeHash"), _sha256(spec, "payloadHash"),
                    tuple(signatures))


def _intoto_v002(data: dict[str, Any]) -> IntotoV002:
    content = _object(_object(data, "spec"), "content", "spec")
    envelope = _object(content, "envelope", "spec.content")
    signatures = []
    for index, item in enumerate(_list(envelope, "signatures", "spec.content.envelope")):
        where = f"spec.content.envelope.signatures[{index}]"
        if not isinstance(item, dict):
            raise WireError(f"{where}: expected an object")
        inner = _b64(item, "sig", where)
        try:  # the envelope's base64 signature, base64-encoded again
            signature = base64.b64decode(inner, validate=True)
        except (binascii.Error, ValueError):
            raise WireError(f"{where}.sig: not the base64 of a base64 signature") from None
        keyid = item.get("keyid")
        if keyid is not None and not isinstance(keyid, str):
            raise WireError(f"{where}.keyid: expected text")
        signatures.append(IntotoSignatureV002(signature, _b64(item, "publicKey", where), keyid))
    return IntotoV002(_sha256(content, "hash", "spec.content"),
                      _sha256(content, "payloadHash", "spec.content"),
                      _text(envelope, "payloadType", "spec.content.envelope"), tuple(signatures))


_READERS: Final[dict[tuple[str, str], Callable[[dict[str, Any]], RekorBody]]] = {
    (HASHEDREKORD_KIND, V001): _hashedrekord_v001,
    (DSSE_KIND, V001): _dsse_v001,
    (INTOTO_KIND, V002): _intoto_v002,
    (HASHEDREKORD_KIND, V002): _v2,
    (DSSE_KIND, V002): _v2,
}


def _object(data: dict[str, Any], key: str, where: str = "") -> dict[str, Any]:
    value = data.get(key)
    if not isinstance(value, dict):
        raise WireError(f"{_at(where, key)}: expected an object")
    return value


def _list(data: dict[str, Any], key: str, where: str) -> list[Any]:
    value = data.get(key)
    if not isinstance(value, list) or not value:
        raise WireError(f"{_at(where, key)}: expected a non-empty list")
    return value


def _text(data: dict[str, Any], key: str, where: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise WireError(f"{_at(where, key)}: expected non-empty text")
    return value


def _b64(data: dict[str, Any], key: str, where: str) -> bytes:
    return _b64_text(_text(data, key, where), _at(where, key))


def _b64_text(value: object, where: str) -> bytes:
    if not isinstance(value, str) or not value:
        raise WireError(f"{where}: expected non-empty text")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise WireError(f"{where}: not base64") from None


def _hex(data: dict[str, Any], key: str, where: str, size: int) -> bytes:
    text = _text(data, key, where)
    try:
        value = bytes.fromhex(text)
    except ValueError:
        raise WireError(f"{_at(where, key)}: not hex") from None
    if len(value) != size or text != value.hex():
        raise WireError(f"{_at(where, key)}: expected {2 * size} lowercase hex digits")
    return value


def _sha256(data: dict[str, Any], key: str, where: str = "spec") -> bytes:
    hashed = _object(data, key, where)
    if hashed.get("algorithm") != "sha256":
        raise WireError(f"{_at(where, key)}.algorithm: expected 'sha256'")
    return _hex(hashed, "value", _at(where, key), 32)


def _at(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key

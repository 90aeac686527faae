"""Sigstore's protobuf-specs messages, the ones signer reads and writes, in their JSON form.

Bundle v0.3, ``trusted_root.json`` and ``ClientTrustConfig`` are protobuf messages
serialised with the protobuf JSON mapping: camelCase keys, ``bytes`` as base64, 64-bit
integers as decimal strings, ``Timestamp`` as RFC 3339. Frozen dataclasses name the fields
(snake_case, as protobuf-specs does) and one codec below reads and writes them all; the
reference verifiers (sigstore-python, sigstore-js) read what it writes, in the tests.

It replaces the ``sigstore-models`` package so that the action image carries no pydantic
(8.6 MB of its 40 MB): the action only parses bundles and trust roots, and pydantic stays a
service dependency (FastAPI).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import types
import typing
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final, Self

BUNDLE_MEDIA_TYPES: Final = (
    "application/vnd.dev.sigstore.bundle+json;version=0.1",
    "application/vnd.dev.sigstore.bundle+json;version=0.2",
    "application/vnd.dev.sigstore.bundle+json;version=0.3",
    "application/vnd.dev.sigstore.bundle.v0.3+json",
)
TRUSTED_ROOT_MEDIA_TYPES: Final = (
    "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
    "application/vnd.dev.sigstore.trustedroot.v0.2+json",
)
SHA2_256: Final = "SHA2_256"
PKIX_ECDSA_P256_SHA_256: Final = "PKIX_ECDSA_P256_SHA_256"
_U64_MAX: Final = 2**64 - 1


class WireError(ValueError):
    """The JSON is not the message it claims to be; ``str()`` names the field and the fault."""


class U64(int):
    """A protobuf (u)int64: a decimal string in JSON (a number is accepted too)."""


@dataclasses.dataclass(frozen=True)
class Message:
    """Base of the messages: JSON in and out, by the protobuf JSON mapping."""

    @classmethod
    def from_json(cls, text: str | bytes) -> Self:
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise WireError(f"not JSON: {exc}") from exc
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: object) -> Self:
        decoded: Self = _decode(cls, data, "")
        return decoded

    def to_dict(self) -> dict[str, Any]:
        encoded = _encode(self)
        assert isinstance(encoded, dict)
        return encoded

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))


# -- common ------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class TimeRange(Message):
    start: datetime
    end: datetime | None = None


@dataclasses.dataclass(frozen=True)
class LogId(Message):
    key_id: bytes


@dataclasses.dataclass(frozen=True)
class HashOutput(Message):
    algorithm: str
    digest: bytes


@dataclasses.dataclass(frozen=True)
class MessageSignature(Message):
    signature: bytes
    message_digest: HashOutput | None = None


@dataclasses.dataclass(frozen=True)
class X509Certificate(Message):
    raw_bytes: bytes


@dataclasses.dataclass(frozen=True)
class X509CertificateChain(Message):
    certificates: tuple[X509Certificate, ...] = ()


@dataclasses.dataclass(frozen=True)
class RFC3161SignedTimestamp(Message):
    signed_timestamp: bytes


@dataclasses.dataclass(frozen=True)
class PublicKey(Message):
    key_details: str
    raw_bytes: bytes | None = None
    valid_for: TimeRange | None = None


@dataclasses.dataclass(frozen=True)
class PublicKeyIdentifier(Message):
    """Names the key of a managed-key bundle; verifiers pick the key by it, out of band."""

    hint: str | None = None


@dataclasses.dataclass(frozen=True)
class DistinguishedName(Message):
    organization: str = ""
    common_name: str = ""


# -- rekor -------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class KindVersion(Message):
    kind: str
    version: str


@dataclasses.dataclass(frozen=True)
class Checkpoint(Message):
    envelope: str


@dataclasses.dataclass(frozen=True)
class InclusionProof(Message):
    log_index: U64
    root_hash: bytes
    tree_size: U64
    hashes: tuple[bytes, ...] = ()
    checkpoint: Checkpoint | None = None


@dataclasses.dataclass(frozen=True)
class InclusionPromise(Message):
    signed_entry_timestamp: bytes


@dataclasses.dataclass(frozen=True)
class TransparencyLogEntry(Message):
    log_index: U64
    log_id: LogId
    kind_version: KindVersion
    canonicalized_body: bytes
    # v0.1 bundles may carry only the promise; v0.2 on require the proof (the verifier says).
    inclusion_proof: InclusionProof | None = None
    integrated_time: U64 | None = None
    inclusion_promise: InclusionPromise | None = None


# -- DSSE (protobuf-specs envelope.proto) --------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class DsseSignature(Message):
    """One DSSE signature: over PAE(payloadType, payload), not over the payload."""

    sig: bytes
    keyid: str | None = None


@dataclasses.dataclass(frozen=True)
class DsseEnvelope(Message):
    payload: bytes
    payload_type: str
    signatures: tuple[DsseSignature, ...] = ()


# -- bundle ------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class TimestampVerificationData(Message):
    rfc3161_timestamps: tuple[RFC3161SignedTimestamp, ...] = ()


@dataclasses.dataclass(frozen=True)
class VerificationMaterial(Message):
    """One of ``certificate`` (v0.3), ``x509_certificate_chain`` (v0.1, v0.2: leaf first) or
    ``public_key`` (a managed key, named by its hint)."""

    certificate: X509Certificate | None = None
    tlog_entries: tuple[TransparencyLogEntry, ...] = ()
    timestamp_verification_data: TimestampVerificationData | None = None
    public_key: PublicKeyIdentifier | None = None
    x509_certificate_chain: X509CertificateChain | None = None


@dataclasses.dataclass(frozen=True)
class Bundle(Message):
    """Content is one of ``message_signature`` (a signed digest) or ``dsse_envelope``."""

    media_type: str
    verification_material: VerificationMaterial
    message_signature: MessageSignature | None = None
    dsse_envelope: DsseEnvelope | None = None


# -- trust root and client configuration -------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class TransparencyLogInstance(Message):
    base_url: str
    hash_algorithm: str
    public_key: PublicKey
    log_id: LogId
    checkpoint_key_id: LogId | None = None
    operator: str | None = None


@dataclasses.dataclass(frozen=True)
class CertificateAuthority(Message):
    subject: DistinguishedName
    cert_chain: X509CertificateChain
    valid_for: TimeRange
    uri: str | None = None
    operator: str | None = None


@dataclasses.dataclass(frozen=True)
class TrustedRoot(Message):
    media_type: str
    tlogs: tuple[TransparencyLogInstance, ...] = ()
    certificate_authorities: tuple[CertificateAuthority, ...] = ()
    ctlogs: tuple[TransparencyLogInstance, ...] = ()
    timestamp_authorities: tuple[CertificateAuthority, ...] = ()


@dataclasses.dataclass(frozen=True)
class Service(Message):
    url: str
    major_api_version: int
    operator: str
    valid_for: TimeRange | None = None


@dataclasses.dataclass(frozen=True)
class ServiceConfiguration(Message):
    selector: str
    count: int | None = None


@dataclasses.dataclass(frozen=True)
class SigningConfig(Message):
    media_type: str
    ca_urls: tuple[Service, ...] = ()
    oidc_urls: tuple[Service, ...] = ()
    rekor_tlog_urls: tuple[Service, ...] = ()
    rekor_tlog_config: ServiceConfiguration | None = None
    tsa_urls: tuple[Service, ...] = ()
    tsa_config: ServiceConfiguration | None = None


@dataclasses.dataclass(frozen=True)
class ClientTrustConfig(Message):
    media_type: str
    trusted_root: TrustedRoot
    signing_config: SigningConfig


# -- the codec ---------------------------------------------------------------------------------
def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


_FIELDS: dict[type, tuple[tuple[str, str, Any, bool], ...]] = {}


def _fields(cls: type) -> tuple[tuple[str, str, Any, bool], ...]:
    """(attribute, JSON key, type, required) per field, resolved once per message type."""
    found = _FIELDS.get(cls)
    if found is None:
        hints = typing.get_type_hints(cls)
        found = tuple(
            (f.name, _camel(f.name), hints[f.name],
             f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING)
            for f in dataclasses.fields(cls))
        _FIELDS[cls] = found
    return found


Decoder = Callable[[object, str], Any]  # (JSON value, where it is) -> the field's value
# Why: one decoder per field type (a few dozen types), so decoding walks no type hints.
_DECODERS: dict[Any, Decoder] = {}


def _decode(kind: Any, value: object, where: str) -> Any:
    return _decoder(kind)(value, where)


def _decoder(kind: Any) -> Decoder:
    """The decoding function of a field type, made once per type: a bundle is decoded
    without looking at type hints again."""
    found = _DECODERS.get(kind)
    if found is None:
        found = _DECODERS[kind] = _make_decoder(kind)
    return found


def _make_decoder(kind: Any) -> Decoder:
    if isinstance(kind, type) and issubclass(kind, Message):
        return _message_decoder(kind)
    if kind is U64:
        return _u64
    if kind is bytes:
        return _bytes
    if kind is datetime:
        return _datetime
    if kind is str or kind is int:
        def scalar(value: object, where: str) -> Any:
            if not isinstance(value, kind) or isinstance(value, bool):
                raise WireError(f"{where}: expected {'text' if kind is str else 'an integer'}")
            return value
        return scalar
    origin = typing.get_origin(kind)
    if origin is tuple:
        item = _decoder(typing.get_args(kind)[0])

        def items(value: object, where: str) -> Any:
            if not isinstance(value, list):
                raise WireError(f"{where}: expected a list")
            return tuple(item(v, f"{where}[{i}]") for i, v in enumerate(value))
        return items
    if origin is types.UnionType:  # X | None
        return _decoder(next(a for a in typing.get_args(kind) if a is not type(None)))
    raise TypeError(f"no JSON decoding for {kind!r}")  # a modelling error, not bad input


def _message_decoder(kind: type[Message]) -> Decoder:
    # Every field with its decoder, and the default of each optional one.
    defaults = {f.name: f.default for f in dataclasses.fields(kind)}
    fields = tuple((name, key, _decoder(hint), required, defaults[name])
                   for name, key, hint, required in _fields(kind))
    known = frozenset(key for _, key, _, _, _ in fields)
    assert not hasattr(kind, "__post_init__"), f"{kind.__name__} must be made by __init__"
    assert all(f.default_factory is dataclasses.MISSING for f in dataclasses.fields(kind)), \
        f"{kind.__name__}: a default_factory would be skipped here"
    new = object.__new__

    def message(value: object, where: str) -> Any:
        if not isinstance(value, dict):
            raise WireError(f"{where or 'the document'}: expected an object")
        if not known.issuperset(value):
            unknown = next(key for key in value if key not in known)
            raise WireError(f"{_at(where, str(unknown))}: unknown field")
        # Made as copy and pickle make an instance: its frozen __init__ would only set every
        # field (no __post_init__), one object.__setattr__ at a time (~10 us a bundle).
        decoded = new(kind)
        attributes = decoded.__dict__
        for name, key, decode, required, default in fields:
            item = value.get(key)
            if item is not None:
                attributes[name] = decode(item, f"{where}.{key}" if where else key)  # _at
            elif required:
                raise WireError(f"{_at(where, key)}: required")
            else:
                attributes[name] = default
        return decoded
    return message


def _u64(value: object, where: str) -> U64:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise WireError(f"{where}: expected a 64-bit integer as a decimal string")
    text = str(value)
    if not text.isascii() or not text.isdigit() or int(text) > _U64_MAX:
        raise WireError(f"{where}: {text[:40]!r} is not an unsigned 64-bit integer")
    return U64(text)


def _bytes(value: object, where: str) -> bytes:
    if not isinstance(value, str):
        raise WireError(f"{where}: expected base64 text")
    try:
        # protobuf's JSON mapping accepts standard and URL-safe base64, padded or not.
        text = value.replace("-", "+").replace("_", "/")
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise WireError(f"{where}: not base64") from exc


def _datetime(value: object, where: str) -> datetime:
    if not isinstance(value, str):
        raise WireError(f"{where}: expected an RFC 3339 timestamp")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise WireError(f"{where}: {value[:40]!r} is not an RFC 3339 timestamp") from exc
    if parsed.tzinfo is None:
        raise WireError(f"{where}: the timestamp has no time zone")
    return parsed


def _encode(value: object, kind: Any = None) -> object:
    """By the declared type, so a plain ``int`` in a ``U64`` field is written as text."""
    if isinstance(value, Message):
        out: dict[str, object] = {}
        for name, key, hint, _ in _fields(type(value)):
            field = getattr(value, name)
            if field is not None:
                out[key] = _encode(field, hint)
        return out
    if typing.get_origin(kind) is types.UnionType:
        kind = next(a for a in typing.get_args(kind) if a is not type(None))
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if kind is U64:
        return str(int(typing.cast(int, value)))
    if isinstance(value, datetime):
        text = value.astimezone(UTC).isoformat()
        return text.removesuffix("+00:00") + "Z"
    if isinstance(value, tuple | list):
        item = typing.get_args(kind)[0] if kind is not None else None
        return [_encode(v, item) for v in value]
    return value


def _at(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key

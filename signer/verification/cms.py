"""The usual shape of an RFC 3161 token, read strictly, so that its CMS signature can be
checked with ``cryptography`` instead of by OpenSSL's ``PKCS7_verify`` for every token.

``rfc3161-client``'s ``pkcs7_verify`` parses the token, builds an X509 store, verifies the
signer's path and then the signature, per token. For a token in exactly the shape TSAs issue
(one SignerInfo naming its signer by issuer and serial, the signed attributes a TSA sets, each
once, with one value, an ECDSA signature), `read` returns what ``PKCS7_signatureVerify``
computes the signature from: the TSTInfo the message digest attribute must match, and the
signed attributes as DER. Anything else is None, and the caller asks OpenSSL as before.

Strict DER only: definite, minimal lengths, single-byte tags. OpenSSL verifies the signature
over its own DER re-encoding of the attributes (in the order received); for DER input with
these value types (kept or re-encoded as they are) that is the bytes read here, tag aside.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from cryptography.hazmat.primitives import hashes

# DER of the object identifiers read here (tag and length included).
_SIGNED_DATA: Final = bytes.fromhex("06092a864886f70d010702")
_TST_INFO: Final = bytes.fromhex("060b2a864886f70d0109100104")
_CONTENT_TYPE: Final = bytes.fromhex("06092a864886f70d010903")
_MESSAGE_DIGEST: Final = bytes.fromhex("06092a864886f70d010904")
_SIGNING_TIME: Final = bytes.fromhex("06092a864886f70d010905")
_SIGNING_CERTIFICATE: Final = bytes.fromhex("060b2a864886f70d010910020c")
_SIGNING_CERTIFICATE_V2: Final = bytes.fromhex("060b2a864886f70d010910022f")
# The digests by their AlgorithmIdentifier (without parameters, or with NULL), and the
# ECDSA signature algorithm over each.
_DIGESTS: Final[dict[bytes, hashes.HashAlgorithm]] = {
    bytes.fromhex(f"30{11 + len(null) // 2:02x}060960864801650304020{n}{null}"): digest
    for n, digest in (("1", hashes.SHA256()), ("2", hashes.SHA384()), ("3", hashes.SHA512()))
    for null in ("", "0500")}
_ECDSA_WITH: Final = {"sha256": bytes.fromhex("300a06082a8648ce3d040302"),
                      "sha384": bytes.fromhex("300a06082a8648ce3d040303"),
                      "sha512": bytes.fromhex("300a06082a8648ce3d040304")}

_SEQUENCE, _SET, _INTEGER, _OCTET_STRING, _UTC_TIME, _GENERALIZED_TIME = (
    0x30, 0x31, 0x02, 0x04, 0x17, 0x18)
_TAGGED_0, _TAGGED_1 = 0xA0, 0xA1


class _NotThisShape(ValueError):
    """Not strict DER, or not the shape read here: OpenSSL judges the token."""


@dataclass(frozen=True)
class SignedToken:
    """What the signature of a token depends on, as ``PKCS7_verify`` reads it."""

    certificates: tuple[bytes, ...]  # embedded, DER, in order
    issuer: bytes  # the SignerInfo's issuer Name, DER
    serial: bytes  # the contents of its serial number INTEGER
    digest: hashes.HashAlgorithm  # of the TSTInfo, and of the signed attributes
    content: bytes  # the TSTInfo (eContent)
    message_digest: bytes  # the message digest attribute's value
    signed_attributes: bytes  # DER, as signed: the [0] IMPLICIT tag back to SET
    signature: bytes


class _Reader:
    """Reads the elements between ``pos`` and ``end``, in order."""

    __slots__ = ("data", "end", "pos")  # one per element read: kept light

    def __init__(self, data: bytes, pos: int, end: int) -> None:
        self.data, self.pos, self.end = data, pos, end

    def element(self, tag: int) -> _Reader:
        """The next element, which must have ``tag``: a reader of its contents."""
        start, end = self._next(tag)
        return _Reader(self.data, start, end)

    def _next(self, tag: int) -> tuple[int, int]:
        """Where the next element's contents start and end; it must have ``tag``."""
        data, pos, end = self.data, self.pos, self.end
        if end - pos < 2 or data[pos] != tag:
            raise _NotThisShape
        length, pos = data[pos + 1], pos + 2
        if length & 0x80:
            count = length & 0x7F
            if not 1 <= count <= 3 or end - pos < count or data[pos] == 0:
                raise _NotThisShape  # indefinite, huge or with a leading zero byte
            length, pos = int.from_bytes(data[pos:pos + count], "big"), pos + count
            if length < 0x80:
                raise _NotThisShape  # DER takes the short form when it fits
        if end - pos < length:
            raise _NotThisShape
        self.pos = pos + length
        return pos, pos + length

    def expect(self, element: bytes) -> None:
        """The next element must be ``element`` (a whole DER element: then the bytes that
        follow here are that very element)."""
        if self.end - self.pos < len(element) or not self.data.startswith(element, self.pos):
            raise _NotThisShape
        self.pos += len(element)

    def raw(self, tag: int) -> bytes:
        """The next element, header included."""
        start = self.pos
        self._next(tag)
        return self.data[start:self.pos]

    def contents(self, tag: int) -> bytes:
        start, end = self._next(tag)
        return self.data[start:end]

    def peek(self, tag: int) -> bool:
        return self.pos < self.end and self.data[self.pos] == tag

    @property
    def done(self) -> bool:
        return self.pos == self.end

    def finish(self) -> None:
        if self.pos != self.end:
            raise _NotThisShape


def token_of_response(der: bytes) -> bytes | None:
    """The TimeStampToken of a TimeStampResp (status, then the token), or None.

    What ``pkcs7_verify`` is given is rfc3161-client's re-encoding of the token it read as
    strict DER: these very bytes (tests compare them for every token of the assets)."""
    try:
        response = _Reader(der, 0, len(der)).element(_SEQUENCE)
        response.element(_SEQUENCE)  # PKIStatusInfo: rfc3161-client reads it
        token = response.raw(_SEQUENCE)
        response.finish()
    except _NotThisShape:
        return None
    return token


def read(token: bytes) -> SignedToken | None:
    """The token's signature and what it signs, if the token has the shape read here."""
    try:
        return _read(token)
    except _NotThisShape:
        return None


def _read(token: bytes) -> SignedToken:
    outer = _Reader(token, 0, len(token))
    info = outer.element(_SEQUENCE)
    outer.finish()
    info.expect(_SIGNED_DATA)
    explicit = info.element(_TAGGED_0)
    info.finish()
    signed = explicit.element(_SEQUENCE)
    explicit.finish()
    if signed.contents(_INTEGER) not in (b"\x01", b"\x03"):
        raise _NotThisShape
    algorithms = signed.element(_SET)
    digest = _digest(algorithms)
    algorithms.finish()
    encapsulated = signed.element(_SEQUENCE)
    encapsulated.expect(_TST_INFO)
    econtent = encapsulated.element(_TAGGED_0)
    encapsulated.finish()
    content = econtent.contents(_OCTET_STRING)
    econtent.finish()
    certificates: list[bytes] = []
    if signed.peek(_TAGGED_0):
        bag = signed.element(_TAGGED_0)
        while not bag.done:
            certificates.append(bag.raw(_SEQUENCE))
    if signed.peek(_TAGGED_1):
        raise _NotThisShape  # CRLs
    infos = signed.element(_SET)
    signed.finish()
    signer = infos.element(_SEQUENCE)
    infos.finish()  # exactly one SignerInfo
    if signer.contents(_INTEGER) != b"\x01":
        raise _NotThisShape
    sid = signer.element(_SEQUENCE)
    issuer = sid.raw(_SEQUENCE)
    serial = sid.contents(_INTEGER)
    sid.finish()
    if _digest(signer) is not digest:
        raise _NotThisShape
    attributes_start = signer.pos
    attributes = signer.element(_TAGGED_0)
    signed_attributes = b"\x31" + token[attributes_start + 1:signer.pos]
    message_digest = _attributes(attributes)
    signer.expect(_ECDSA_WITH[digest.name])
    signature = signer.contents(_OCTET_STRING)
    signer.finish()  # no unsigned attributes
    return SignedToken(tuple(certificates), issuer, serial, digest, content, message_digest,
                       signed_attributes, signature)


def _digest(reader: _Reader) -> hashes.HashAlgorithm:
    found = _DIGESTS.get(reader.raw(_SEQUENCE))
    if found is None:
        raise _NotThisShape
    return found


def _attributes(reader: _Reader) -> bytes:
    """The message digest; every attribute is one a TSA sets, once, with one value of its
    type, and content type and message digest are there."""
    seen: dict[bytes, bytes] = {}
    while not reader.done:
        attribute = reader.element(_SEQUENCE)
        oid = attribute.raw(0x06)
        values = attribute.element(_SET)
        attribute.finish()
        if oid in seen:
            raise _NotThisShape
        if oid == _CONTENT_TYPE:
            values.expect(_TST_INFO)
            value = _TST_INFO
        elif oid == _MESSAGE_DIGEST:
            value = values.contents(_OCTET_STRING)
        elif oid == _SIGNING_TIME:
            # OpenSSL refuses a UTCTime shorter than 13 bytes, a GeneralizedTime than 15.
            if values.peek(_UTC_TIME):
                value = values.contents(_UTC_TIME)
                if len(value) != 13:
                    raise _NotThisShape
            else:
                value = values.contents(_GENERALIZED_TIME)
                if len(value) < 15:
                    raise _NotThisShape
        elif oid in (_SIGNING_CERTIFICATE, _SIGNING_CERTIFICATE_V2):
            value = values.raw(_SEQUENCE)  # kept as it is by OpenSSL (a SEQUENCE in ANY)
        else:
            raise _NotThisShape
        values.finish()  # one value
        seen[oid] = value
    if _CONTENT_TYPE not in seen or _MESSAGE_DIGEST not in seen:
        raise _NotThisShape
    return seen[_MESSAGE_DIGEST]

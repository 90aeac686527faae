"""A leaf's TBSCertificate, assembled from DER its CA encodes once.

Every leaf of one CA shares its version, signature algorithm, issuer, empty subject and four
of its extensions; only the serial, validity, key, SKI, SAN, provenance extensions and the
CT extensions differ. cryptography's builder encodes all of it for each certificate, and
that was more than half of issuing one (docs/benchmarks.md); here the shared parts are bytes
made at start-up and a leaf is one concatenation. The bytes are those the builder makes for
the same certificate (tests/unit/test_ca.py compares them).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from signer.transparency.sct import der_element, der_generalized_time, der_integer

_VERSION_3 = bytes.fromhex("a003020102")  # [0] EXPLICIT INTEGER 2
_EMPTY_NAME = bytes.fromhex("3000")
_CRITICAL = bytes.fromhex("0101ff")  # BOOLEAN TRUE; FALSE is the default, never written
_SKI = x509.oid.ExtensionOID.SUBJECT_KEY_IDENTIFIER
# SubjectPublicKeyInfo of a P-256 key up to its point: id-ecPublicKey, prime256v1, BIT STRING.
_P256_SPKI_PREFIX = bytes.fromhex("3059301306072a8648ce3d020106082a8648ce3d030107034200")


@functools.lru_cache(maxsize=256)
def oid_der(oid: x509.ObjectIdentifier) -> bytes:
    """The DER OBJECT IDENTIFIER (X.690 §8.19): the first two arcs in one, base 128."""
    arcs = [int(a) for a in oid.dotted_string.split(".")]
    body = bytearray()
    for arc in [arcs[0] * 40 + arcs[1], *arcs[2:]]:
        chunk = [arc & 0x7F]
        while arc := arc >> 7:
            chunk.append(0x80 | (arc & 0x7F))
        body += bytes(reversed(chunk))
    return der_element(0x06, bytes(body))


def extension_der(oid: x509.ObjectIdentifier, critical: bool, value: bytes) -> bytes:
    """Extension ::= SEQUENCE { extnID, critical DEFAULT FALSE, extnValue OCTET STRING }."""
    return der_element(0x30, oid_der(oid) + (_CRITICAL if critical else b"")
                       + der_element(0x04, value))


def _time(at: datetime) -> bytes:
    """RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050; seconds, Z."""
    if at.year < 2050:
        return der_element(0x17, at.strftime("%y%m%d%H%M%SZ").encode())
    return der_generalized_time(at)


class LeafTemplate:
    """The leaves of one issuer: ``tbs`` gives a leaf's TBSCertificate."""

    def __init__(self, issuer: x509.Certificate, algorithm: bytes,
                 before_ski: Sequence[x509.Extension[x509.ExtensionType]],
                 after_ski: Sequence[x509.Extension[x509.ExtensionType]]) -> None:
        """``algorithm``: the AlgorithmIdentifier DER the issuer's key signs with; the
        extensions: those every leaf holds, around its SKI, in order."""
        self._after_serial = algorithm + issuer.subject.public_bytes()
        self._before_ski = b"".join(_fixed(e) for e in before_ski)
        self._after_ski = b"".join(_fixed(e) for e in after_ski)
        # What every leaf holds already: no caller's extension may name these again.
        self.oids = (*(e.oid for e in before_ski), _SKI, *(e.oid for e in after_ski))

    def tbs(self, serial: int, not_before: datetime, not_after: datetime,
            key: ec.EllipticCurvePublicKey, extensions: Sequence[bytes]) -> Tbs:
        """The TBSCertificate of a leaf for ``key``; ``extensions``: DER Extensions that
        follow the shared ones and the SKI (`extension_der`)."""
        if key.curve.name != "secp256r1":  # the SPKI below is P-256's
            raise ValueError("a leaf's key is a P-256 key")
        point = key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
        # RFC 5280 §4.2.1.2 method 1, as cryptography's SubjectKeyIdentifier.from_public_key.
        ski = extension_der(_SKI, False,
                            der_element(0x04, hashlib.sha1(point).digest()))  # noqa: S324
        return Tbs(b"".join((
            _VERSION_3, der_integer(serial), self._after_serial,
            der_element(0x30, _time(not_before) + _time(not_after)), _EMPTY_NAME,
            _P256_SPKI_PREFIX, point)),
            b"".join((self._before_ski, ski, self._after_ski, *extensions)))


class Tbs:
    """A leaf's TBSCertificate up to its last extension: one leaf's precertificate (last: the
    poison), the TBS its SCT signs (no last) and the certificate (last: the SCT list)."""

    __slots__ = ("_extensions", "_fields")

    def __init__(self, fields: bytes, extensions: bytes) -> None:
        self._fields, self._extensions = fields, extensions

    def with_last(self, extension: bytes = b"") -> bytes:
        return der_element(0x30, self._fields + der_element(0xA3, der_element(
            0x30, self._extensions + extension)))


def _fixed(extension: x509.Extension[x509.ExtensionType]) -> bytes:
    return extension_der(extension.oid, extension.critical, extension.value.public_bytes())

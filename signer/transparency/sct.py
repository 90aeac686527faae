"""RFC 6962 v1 Signed Certificate Timestamps for precertificates, embedded in the leaf.

How the CA and the CT log use this module (RFC 6962 §3.1, §3.2, §3.4):

1. The CA builds the leaf with every final field (serial, validity, extensions), adds
   ``x509.PrecertPoison()`` (critical) as the **last** extension and signs it with the issuing
   CA key: the precertificate.
2. ``tbs = precertificate_tbs(precert)`` (its TBSCertificate without the poison; the
   service's CA assembles these bytes itself, `signer.service.ca.Precertificate`) and
   ``key_hash = issuer_key_hash(issuing_ca_cert)``.
3. The CT log appends ``leaf_hash(precert_merkle_tree_leaf(timestamp_ms, key_hash, tbs))`` to
   its tree and returns ``sign_precert_sct(log_signer, timestamp_ms, key_hash, tbs)``.
4. The CA builds the same leaf again from the same builder (same serial, validity, extensions
   in the same order) with ``x509.UnrecognizedExtension(SCT_LIST_OID,
   sct_list_extension_value([sct]))`` (non-critical) last, where the poison was, and signs it:
   the final certificate. Then ``final.tbs_precertificate_bytes == tbs``, which is exactly what
   verifiers rebuild; `verify_embedded_sct` checks it.

sigstore-python requires exactly one embedded SCT, hash SHA-256, and finds the log by the SCT's
log id among the trust root's ``ctlogs``; `verify_embedded_sct` applies the same rules. It takes
the issuer as the first certificate of the chain after the leaf, which must be a CA (critical
basicConstraints, keyCertSign). It rebuilds the timestamp as ``int(datetime.timestamp() *
1000)``, a float round trip that is exact for times from 2004-11 to 2038-01 only; we use
integers throughout.
"""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.certificate_transparency import (
    LogEntryType,
    SignatureAlgorithm,
    SignedCertificateTimestamp,
    Version,
)
from cryptography.x509.oid import ExtensionOID

from signer.key_details import ECDSA_SHA256

if TYPE_CHECKING:  # the protocol's home is the service's keys module; no import at run time
    from signer.service.keys import KeySigner, PublicKey

SCT_LIST_OID = ExtensionOID.PRECERT_SIGNED_CERTIFICATE_TIMESTAMPS  # 1.3.6.1.4.1.11129.2.4.2
POISON_OID = ExtensionOID.PRECERT_POISON  # 1.3.6.1.4.1.11129.2.4.3

# TLS enum values, RFC 6962 §3.2 and RFC 5246 §7.4.1.4.1.
_V1 = 0
_CERTIFICATE_TIMESTAMP = 0  # SignatureType
_TIMESTAMPED_ENTRY = 0  # MerkleLeafType
_PRECERT_ENTRY = 1  # LogEntryType
_HASH_SHA256 = 4
_SIGNATURE_ECDSA = 3

# DER of OBJECT IDENTIFIER 1.3.6.1.4.1.11129.2.4.3, the first element of the poison Extension.
_POISON_OID_DER = bytes.fromhex("060a2b06010401d679020403")
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


class SCTError(ValueError):
    """An embedded SCT is missing, malformed, from an unknown log, or does not verify."""


# Log ids of the first keys asked about (a service's and a trust root's few log keys), by
# object: key objects are not hashable. Each entry holds its key, so its id is not reused.
_LOG_IDS: dict[int, tuple[PublicKey, bytes]] = {}
_LOG_IDS_MAX = 64


def log_id(public_key: PublicKey) -> bytes:
    """RFC 6962 §3.2 LogID: SHA-256 of the log key's DER SubjectPublicKeyInfo.

    Rekor v1 and Sigstore trust roots use the same value as ``logId.keyId``.
    """
    known = _LOG_IDS.get(id(public_key))
    if known is not None and known[0] is public_key:
        return known[1]
    spki = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    found = hashlib.sha256(spki).digest()
    if len(_LOG_IDS) < _LOG_IDS_MAX:
        _LOG_IDS[id(public_key)] = (public_key, found)
    return found


def issuer_key_hash(issuer: x509.Certificate) -> bytes:
    """RFC 6962 §3.2 issuer_key_hash: SHA-256 of the issuing CA's DER SubjectPublicKeyInfo."""
    spki = issuer.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(spki).digest()


def check_log_key(key: PublicKey) -> ec.EllipticCurvePublicKey:
    """``key``, if it can sign for a log: trust roots publish log keys as
    PKIX_ECDSA_P256_SHA_256, and SHA-256 only fits P-256."""
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        name = key.curve.name if isinstance(key, ec.EllipticCurvePublicKey) else "Ed25519"
        raise TypeError(f"log keys must be ECDSA P-256, got {name}")
    return key


# --- TLS encoding -----------------------------------------------------------------------------


def _opaque(data: bytes, length_bytes: int) -> bytes:
    """TLS ``opaque x<0..2^(8·length_bytes)-1>``: big-endian length, then the bytes."""
    if len(data) >= 1 << (8 * length_bytes):
        raise ValueError(f"{len(data)} bytes do not fit a {length_bytes}-byte TLS length")
    return len(data).to_bytes(length_bytes, "big") + data


def _timestamped_precert(
    timestamp_ms: int, key_hash: bytes, tbs_precert_der: bytes, extensions: bytes
) -> bytes:
    """timestamp, entry_type = precert_entry, PreCert, extensions: shared by §3.2 and §3.4."""
    if len(key_hash) != 32:
        raise ValueError(f"issuer key hash must be 32 bytes, got {len(key_hash)}")
    if not 0 <= timestamp_ms < 1 << 64:
        raise ValueError(f"timestamp {timestamp_ms} is not a uint64 of milliseconds")
    return (
        timestamp_ms.to_bytes(8, "big")
        + _PRECERT_ENTRY.to_bytes(2, "big")
        + key_hash
        + _opaque(tbs_precert_der, 3)
        + _opaque(extensions, 2)
    )


def _signature_input(
    timestamp_ms: int, key_hash: bytes, tbs_precert_der: bytes, extensions: bytes
) -> bytes:
    """RFC 6962 §3.2: the data the ``digitally-signed`` field of a v1 SCT signs."""
    entry = _timestamped_precert(timestamp_ms, key_hash, tbs_precert_der, extensions)
    return bytes([_V1, _CERTIFICATE_TIMESTAMP]) + entry


def precert_merkle_tree_leaf(timestamp_ms: int, key_hash: bytes, tbs_precert_der: bytes) -> bytes:
    """RFC 6962 §3.4 MerkleTreeLeaf of a precertificate entry: what the CT log's tree hashes."""
    entry = _timestamped_precert(timestamp_ms, key_hash, tbs_precert_der, b"")
    return bytes([_V1, _TIMESTAMPED_ENTRY]) + entry


def sign_precert_sct(
    signer: KeySigner,
    timestamp_ms: int,
    issuer_key_hash: bytes,
    tbs_precert_der: bytes,
    extensions: bytes = b"",
) -> bytes:
    """A TLS-encoded v1 SignedCertificateTimestamp for a precertificate (``extensions``: the
    opaque CtExtensions, which the signature covers; our CT log writes none)."""
    public_key = check_log_key(signer.public_key)
    signature = signer.sign(
        _signature_input(timestamp_ms, issuer_key_hash, tbs_precert_der, extensions))
    return (
        bytes([_V1])
        + log_id(public_key)
        + timestamp_ms.to_bytes(8, "big")
        + _opaque(extensions, 2)  # CtExtensions
        + bytes([_HASH_SHA256, _SIGNATURE_ECDSA])
        + _opaque(signature, 2)
    )


_TREE_HASH = 1  # SignatureType tree_hash


def sign_tree_head(
    signer: KeySigner, timestamp_ms: int, tree_size: int, root_hash: bytes
) -> bytes:
    """RFC 6962 §3.5: the TLS ``digitally-signed`` TreeHeadSignature of a get-sth answer."""
    check_log_key(signer.public_key)
    signed = (bytes([_V1, _TREE_HASH]) + timestamp_ms.to_bytes(8, "big")
              + tree_size.to_bytes(8, "big") + root_hash)
    signature = signer.sign(signed)
    return bytes([_HASH_SHA256, _SIGNATURE_ECDSA]) + _opaque(signature, 2)


def precert_chain_entry(precert_der: bytes, chain_der: Sequence[bytes]) -> bytes:
    """RFC 6962 §4.6 ``extra_data`` of a precertificate entry: the precert and its chain."""
    chain = b"".join(_opaque(c, 3) for c in chain_der)
    return _opaque(precert_der, 3) + _opaque(chain, 3)


def der_element(tag: int, contents: bytes) -> bytes:
    """A definite-length DER element (single-byte tag)."""
    if len(contents) < 0x80:
        return bytes([tag, len(contents)]) + contents
    length = len(contents).to_bytes((len(contents).bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(length)]) + length + contents


def der_integer_contents(value: int) -> bytes:
    """The contents of a DER INTEGER: minimal two's complement, so a positive value whose top
    bit is set gets a leading 0x00."""
    length = (value if value >= 0 else ~value).bit_length() // 8 + 1
    return value.to_bytes(length, "big", signed=True)


def der_integer(value: int) -> bytes:
    return der_element(0x02, der_integer_contents(value))


def der_generalized_time(value: datetime.datetime) -> bytes:
    """DER GeneralizedTime of a whole-seconds time: YYYYMMDDHHMMSSZ, in UTC."""
    text = value.astimezone(datetime.UTC).strftime("%Y%m%d%H%M%SZ")
    return der_element(0x18, text.encode("ascii"))


def sct_list_extension_value(scts: Sequence[bytes]) -> bytes:
    """The value for ``x509.UnrecognizedExtension(SCT_LIST_OID, value)``.

    RFC 6962 §3.3: the extension's value is an ASN.1 OCTET STRING holding the TLS
    ``SignedCertificateTimestampList`` (a 2-byte-length list of 2-byte-length SCTs).
    """
    if not scts:
        raise ValueError("an SCT list holds at least one SCT")
    tls_list = _opaque(b"".join(_opaque(sct, 2) for sct in scts), 2)
    return der_element(0x04, tls_list)  # OCTET STRING


# --- the precertificate's TBSCertificate ------------------------------------------------------


def _element(der: bytes, offset: int) -> tuple[int, int]:
    """(start of contents, end) of the definite-length DER element at ``offset``."""
    length, pos = der[offset + 1], offset + 2
    if length & 0x80:
        count = length & 0x7F
        length, pos = int.from_bytes(der[pos : pos + count], "big"), pos + count
    if pos + length > len(der):
        raise ValueError("truncated DER element")
    return pos, pos + length


def _elements(der: bytes, start: int, end: int) -> list[bytes]:
    """The consecutive DER elements between ``start`` and ``end``, each with its header."""
    out = []
    while start < end:
        _, next_start = _element(der, start)
        out.append(der[start:next_start])
        start = next_start
    return out


def precertificate_tbs(precert: x509.Certificate) -> bytes:
    """RFC 6962 §3.2 ``tbs_certificate``: the precertificate's TBSCertificate without the poison.

    cryptography's ``tbs_precertificate_bytes`` only strips an SCT list, and refuses a
    precertificate, so this removes the poison extension itself; every other element is
    copied byte for byte.
    """
    try:
        precert.extensions.get_extension_for_oid(POISON_OID)
    except x509.ExtensionNotFound:
        raise ValueError("not a precertificate: no poison extension") from None
    tbs = precert.tbs_certificate_bytes
    start, end = _element(tbs, 0)
    fields = []
    for field in _elements(tbs, start, end):
        if field[0] != 0xA3:  # [3] EXPLICIT Extensions
            fields.append(field)
            continue
        seq_start, _ = _element(field, 0)
        ext_start, ext_end = _element(field, seq_start)
        extensions = [
            ext
            for ext in _elements(field, ext_start, ext_end)
            if not ext[_element(ext, 0)[0] :].startswith(_POISON_OID_DER)
        ]
        if extensions:  # DER forbids an empty Extensions SEQUENCE
            fields.append(der_element(0xA3, der_element(0x30, b"".join(extensions))))
    return der_element(0x30, b"".join(fields))


# --- verification -----------------------------------------------------------------------------


def verify_embedded_sct(
    cert: x509.Certificate,
    issuer_cert: x509.Certificate,
    ctlog_public_keys: Mapping[bytes, ec.EllipticCurvePublicKey],
    key_hash: bytes | None = None,
) -> SignedCertificateTimestamp:
    """Check the leaf's one embedded SCT against the CT logs we trust, keyed by log id;
    returns it.

    ``key_hash``: ``issuer_key_hash(issuer_cert)`` if the caller has it already.
    """
    try:
        scts = cert.extensions.get_extension_for_class(
            x509.PrecertificateSignedCertificateTimestamps
        ).value
    except x509.ExtensionNotFound:
        raise SCTError(
            f"certificate has no embedded SCT (extension {SCT_LIST_OID.dotted_string})"
        ) from None
    if len(scts) != 1:
        raise SCTError(f"certificate must embed exactly one SCT, it embeds {len(scts)}")
    sct: SignedCertificateTimestamp = scts[0]
    if sct.version != Version.v1:
        raise SCTError(f"SCT version {sct.version} is not v1")
    if sct.entry_type != LogEntryType.PRE_CERTIFICATE:
        raise SCTError(f"SCT is for a {sct.entry_type.name}, not a precertificate")
    if sct.signature_algorithm != SignatureAlgorithm.ECDSA or not isinstance(
        sct.signature_hash_algorithm, hashes.SHA256
    ):
        raise SCTError("SCT must be signed with ECDSA over SHA-256")
    log_key = ctlog_public_keys.get(sct.log_id)
    if log_key is None:
        raise SCTError(f"SCT comes from CT log {sct.log_id.hex()}, which is not trusted")
    timestamp = sct.timestamp
    if timestamp.tzinfo is None:
        timestamp = timestamp.replace(tzinfo=datetime.UTC)
    timestamp_ms = (timestamp - _EPOCH) // datetime.timedelta(milliseconds=1)
    signed = _signature_input(
        timestamp_ms,
        key_hash if key_hash is not None else issuer_key_hash(issuer_cert),
        cert.tbs_precertificate_bytes,
        sct.extension_bytes,
    )
    try:
        log_key.verify(sct.signature, signed, ECDSA_SHA256)
    except InvalidSignature:
        raise SCTError(
            f"SCT signature by CT log {sct.log_id.hex()} does not verify for this certificate "
            "and issuer"
        ) from None
    return sct

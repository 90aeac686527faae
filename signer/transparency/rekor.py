"""Rekor v1 ``hashedrekord`` 0.0.1 entry bodies and their inclusion promises.

The body is the RFC 8785 canonical JSON Rekor v1 stores as ``canonicalizedBody``; the log's
Merkle leaf is ``leaf_hash(body)``. sigstore-python rebuilds the body from the bundle (digest,
signature, ``base64(leaf PEM)``) and compares it field by field, so the PEM must be the
certificate's own ``public_bytes(Encoding.PEM)``.

The inclusion promise (signed entry timestamp, SET) is the log's ECDSA signature over the
RFC 8785 JSON of ``{"body": base64(body), "integratedTime": <unix s>, "logID": <hex log id>,
"logIndex": <index>}``: what Rekor v1 signs and what sigstore-python and sigstore-js verify.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec

from signer.key_details import ECDSA_SHA256
from signer.transparency.merkle import leaf_hash
from signer.transparency.sct import check_log_key
from signer.transparency.sct import log_id as key_log_id

if TYPE_CHECKING:  # the protocol's home is the service's keys module; no import at run time
    from signer.service.keys import KeySigner

HASHEDREKORD_KIND = "hashedrekord"
HASHEDREKORD_VERSION = "0.0.1"


class SignedEntryTimestampError(ValueError):
    """An inclusion promise does not verify for the entry it comes with."""


def hashedrekord_body(digest: bytes, signature: bytes, leaf_pem: bytes) -> bytes:
    """Canonical body of a hashedrekord 0.0.1 entry for a SHA-256 ``digest``; ``leaf_pem``
    is the leaf certificate's PEM, or a managed key's (SubjectPublicKeyInfo)."""
    if len(digest) != 32:
        raise ValueError(f"hashedrekord digest must be SHA-256 (32 bytes), got {len(digest)}")
    if not leaf_pem.startswith((b"-----BEGIN CERTIFICATE-----", b"-----BEGIN PUBLIC KEY-----")):
        raise ValueError("hashedrekord public key must be the leaf certificate's or a public "
                         "key's PEM")
    # RFC 8785 of the object below, written out: its keys are in canonical order already and
    # its values (hex, base64) need no escaping, so this is byte for byte what
    # ``rfc8785.dumps`` makes of it (tests/unit/test_rekor_body.py compares the two).
    return (
        '{"apiVersion":"' + HASHEDREKORD_VERSION + '","kind":"' + HASHEDREKORD_KIND + '",'
        '"spec":{"data":{"hash":{"algorithm":"sha256","value":"' + digest.hex() + '"}},'
        '"signature":{"content":"' + base64.b64encode(signature).decode() + '",'
        '"publicKey":{"content":"' + base64.b64encode(leaf_pem).decode() + '"}}}}'
    ).encode()


# RFC 8785 writes integers as ECMAScript numbers: plain decimal only within ±(2**53 - 1).
_SAFE_INTEGER = 2**53 - 1


def entry_uuid(body: bytes) -> str:
    """Rekor v1 entry UUID: hex of the entry's Merkle leaf hash."""
    return leaf_hash(body).hex()


def signed_entry_timestamp_payload(
    body: bytes, integrated_time: int, log_id: bytes, log_index: int
) -> bytes:
    """The canonical JSON an inclusion promise signs."""
    # Integers as rfc8785 writes them: an int subclass (a bundle's U64) as its int, a bool not.
    if all(isinstance(n, int) and not isinstance(n, bool) and -_SAFE_INTEGER <= n <= _SAFE_INTEGER
           for n in (integrated_time, log_index)):
        # As in `hashedrekord_body`: RFC 8785 written out (keys in order, no escaping).
        return (f'{{"body":"{base64.b64encode(body).decode()}","integratedTime":'
                f'{int(integrated_time)},"logID":"{log_id.hex()}","logIndex":'
                f'{int(log_index)}}}').encode()
    return rfc8785.dumps(  # out of range: rfc8785 says why
        {
            "body": base64.b64encode(body).decode(),
            "integratedTime": integrated_time,
            "logID": log_id.hex(),
            "logIndex": log_index,
        }
    )


def signed_entry_timestamp(
    signer: KeySigner,
    body: bytes,
    integrated_time: int,
    log_id: bytes,
    log_index: int,
) -> bytes:
    """The inclusion promise (DER ECDSA-SHA256 signature) for an entry."""
    public_key = check_log_key(signer.public_key)
    if log_id != key_log_id(public_key):
        raise ValueError("log id does not belong to the signing log key")
    return signer.sign(signed_entry_timestamp_payload(body, integrated_time, log_id, log_index))


def verify_signed_entry_timestamp(
    public_key: ec.EllipticCurvePublicKey,
    signature: bytes,
    *,
    body: bytes,
    integrated_time: int,
    log_id: bytes,
    log_index: int,
    key_id: bytes | None = None,
) -> None:
    """Check an inclusion promise against the entry's body, time, log id and index.

    ``key_id``: ``key_log_id(public_key)``, if the caller has it already."""
    expected = key_id if key_id is not None else key_log_id(public_key)
    if log_id != expected:
        raise SignedEntryTimestampError(
            f"entry names log {log_id.hex()}, but the key given is log {expected.hex()}"
        )
    payload = signed_entry_timestamp_payload(body, integrated_time, log_id, log_index)
    try:
        public_key.verify(signature, payload, ECDSA_SHA256)
    except InvalidSignature:
        raise SignedEntryTimestampError(
            f"inclusion promise of entry {log_index} does not verify with log {log_id.hex()}'s key"
        ) from None

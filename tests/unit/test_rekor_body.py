"""Rekor v1 hashedrekord bodies and inclusion promises, against a real Rekor entry and
sigstore-python's own entry verification."""

from __future__ import annotations

import base64
import datetime
import hashlib
from typing import Any

import pytest
import rekor_types
import rfc8785
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.x509.oid import NameOID
from sigstore._internal.rekor import _hashedrekord_from_parts
from sigstore._internal.trust import Keyring, RekorKeyring
from sigstore.errors import VerificationError
from sigstore.hashes import Hashed
from sigstore.models import TransparencyLogEntry
from sigstore_models.common import v1 as common_v1
from sigstore_models.common.v1 import HashAlgorithm
from sigstore_models.rekor.v1 import TransparencyLogEntry as InnerEntry

from signer.service.keys import FileKey
from signer.sigstore_json import U64
from signer.transparency.checkpoint import Checkpoint, sign_checkpoint, verify_checkpoint
from signer.transparency.merkle import (
    MemoryNodes,
    inclusion_proof,
    leaf_hash,
    verify_inclusion,
)
from signer.transparency.rekor import (
    SignedEntryTimestampError,
    entry_uuid,
    hashedrekord_body,
    signed_entry_timestamp,
    signed_entry_timestamp_payload,
    verify_signed_entry_timestamp,
)
from signer.transparency.sct import log_id

b64 = base64.b64decode

# A real rekor.sigstore.dev hashedrekord entry: sigstore-python's
# test/assets/new_bundle.txt.sigstore.json (body left out on purpose: we rebuild it).
REKOR_KEY = (
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE2G2Y+2tabdTV5BcGiBIx0a9fAFwrkBbmLSGtks4L3qX6yYY0zufBnhC8"
    "Ur/iy55GhWP/9A/bY2LhC30M9+RYtw=="
)
REAL_CERT = (
    "MIIDKzCCArGgAwIBAgIUJiGJMelrs1z3dgQuQIeDVK8WBsAwCgYIKoZIzj0EAwMwNzEVMBMGA1UEChMMc2lnc3Rv"
    "cmUuZGV2MR4wHAYDVQQDExVzaWdzdG9yZS1pbnRlcm1lZGlhdGUwHhcNMjYwODIzMTcwMTU5WhcNMjYwODIzMTcx"
    "MTU5WjAAMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAECKQdwaQrghOdjlVU4d77nMsYD5XpAfoEm1z83NKYfUnF"
    "V50Nw1wE1wPliPZsPcLYXoassXSMfdVszqkohCf9sqOCAdAwggHMMA4GA1UdDwEB/wQEAwIHgDATBgNVHSUEDDAK"
    "BggrBgEFBQcDAzAdBgNVHQ4EFgQUirE3C5S9D2942AYmz2kwW72cUw0wHwYDVR0jBBgwFoAU39Ppz1YkEZb5qNjp"
    "KFWixi4YZD8wJAYDVR0RAQH/BBowGIEWYXJ5YWRlZXB0YWRlQGdtYWlsLmNvbTAsBgorBgEEAYO/MAEBBB5odHRw"
    "czovL2dpdGh1Yi5jb20vbG9naW4vb2F1dGgwLgYKKwYBBAGDvzABCAQgDB5odHRwczovL2dpdGh1Yi5jb20vbG9n"
    "aW4vb2F1dGgwUwYKKwYBBAGDvzABGARFDENDZ2d6T0RnME5qVTNOeEltYUhSMGNITTZKVEpHSlRKR1oybDBhSFZp"
    "TG1OdmJTVXlSbXh2WjJsdUpUSkdiMkYxZEdnMIGLBgorBgEEAdZ5AgQCBH0EewB5AHcA3T0wasbHETJjGR4cmWc3"
    "AqJKXrjePK3/h4pygC8p7o4AAAGgL5JqjgAABAMASDBGAiEArZVhgUnG20asXAYj9WoFJyCEv6mqqZOEAAvtueJe"
    "hZ0CIQCSfuQOcQyY7Sng425/vW53AAjbwqy+EQr+79U8GGxIwTAKBggqhkjOPQQDAwNoADBlAjBxwssyt5SLzGIR"
    "LQFJeSTvV9TurQ2GtT5oE+TMAV3iGklq6jU//AbjkeP2I8pr5pUCMQD3sJ0lx7jMooCKubWUVD6ZvVYC6C9wjfKm"
    "ks2bTcfx3O6hsPXKGKDDc+wNnrYrAFA="
)
REAL_DIGEST = "p9274/qtHpZG8H2SMRupUNEMLERB5Y6pk12o3XAXlNo="
REAL_SIGNATURE = (
    "MEQCIBmOjS3C9rcQEbKF7IbRbB920F42e3KmIwHbWUUzHm2kAiA7PXH4UjPAPKUnPSQdqWwive5b8AoMzI9zkBlG"
    "MoofGg=="
)
REAL_LOG_INDEX = 2_574_120_827
REAL_LOG_ID = "wNI9atQGlz+VWfO6LRygH4QUfY/8W4RFwiT5i5WRgB0="
REAL_INTEGRATED_TIME = 1_787_504_520
REAL_SET = (
    "MEQCIBwEA8wIsu6qTwwIp7QC+iPZtdu7FyILt7pbqN2R6AntAiBMctC4TiR51i8fy1j4BVPgFdhCyUHHSs1DxIu0"
    "HZItNA=="
)
REAL_PROOF_INDEX = 2_452_216_565
REAL_TREE_SIZE = 2_452_216_574
REAL_ROOT_HASH = "bZRdG2DzhbAM0tXVNm4NLZzG8jXjYdzCKTxkKGf2HFM="
REAL_HASHES = [
    "NpmdUGXNwgqHuxWwZKsIm/ST7pn4xZK0h9//91fZSs0=",
    "iZvpWmECS6hAGvCwCNDsrcy+efHlMLipx3bbuMVsRLk=",
    "wj9iP8xd7c6sVqxlxQJq3+/ywgyw33n/RTt3RvBCdjU=",
    "cgRBJINWj/O5PDxO2SpZzGxSaEgPvMAlWr3Bj1dJUdw=",
    "+ULalR8+1XOzr93gN7MKsewBplUnOkX2eMbW5WR3r70=",
    "y3oRUL0fsQRVq0m6AjHVrTWZvCPMk59B9Qj9mIlMGDM=",
    "AgQmD6v+WhM9rU+6q3qjxUgwMKeiFmVxZ0JXb42hX8I=",
    "QIF6axtIw8xYmoMkIlcOVfZcOL1bHJu02MutkGXFxg8=",
    "2G+WoIWgZXFK854yAwq+yGYMkh3X3IDYV3bd/J5HQ14=",
    "iaSq9DDbHyCQMrvKPWK1ICVU6wtJTMyXSxT/nI3ExZk=",
    "+NL7cNmFP6DMG3a8VwQendTYKu2q1y4EOVG2xW6Wi0M=",
    "j81M8zXYxbAn0OslcxQXwMQjz3r6VF3FOQ8hZrpAg/k=",
    "OO08UQf1SoA9x6RkUY95+CVBFpBK995rFyejrGQNXLQ=",
    "a038EffyREAq1TRVeWn52k/C5q9QCPwltQhYu6ZhOnQ=",
    "3E6tOWc9nApPxgmBB/oWCo2wMMidTnBnApvCV0gHTqw=",
    "BhEuzCVJpbDOuqS72hVuBU6zdoGBIUFXfNPh54jFq4c=",
    "b80/J/68RC8/tx5xRdlKk6MmTpZiVRotquWBrE/z1pI=",
    "SndbMKVtcTenAkwi2JBfGzD+mhexp1qJbRIY+A1JRIU=",
    "xH/DCseLHr9eKoYT8qsORZK7zVdEGYWHuVtsVrD95wY=",
]
REAL_CHECKPOINT = (
    "rekor.sigstore.dev - 1193050959916656506\n"
    "2452216574\n"
    "bZRdG2DzhbAM0tXVNm4NLZzG8jXjYdzCKTxkKGf2HFM=\n"
    "\n"
    "\u2014 rekor.sigstore.dev wNI9ajBEAiBhr696IzcDtU4TdMeY2+OLss7fzbvkrs4Lz81epuE2swIgTj48m22do"
    "AKpi8TE7yzF4MGPEew2Lj9QlEsLYtTgfYU=\n"
)

NAME = "signer.example"
INTEGRATED_TIME = 1_767_323_045


def rekor_key() -> ec.EllipticCurvePublicKey:
    key = serialization.load_der_public_key(b64(REKOR_KEY))
    assert isinstance(key, ec.EllipticCurvePublicKey)
    return key


def real_body() -> bytes:
    cert = x509.load_der_x509_certificate(b64(REAL_CERT))
    return hashedrekord_body(
        b64(REAL_DIGEST),
        b64(REAL_SIGNATURE),
        cert.public_bytes(serialization.Encoding.PEM),
    )


# --- a real Rekor entry ------------------------------------------------------------------------


def test_real_rekor_body_is_rebuilt_byte_for_byte() -> None:
    """The rebuilt body's leaf hash is in Rekor's tree under a root Rekor signed: only the
    exact bytes Rekor logged can do that."""
    body = real_body()
    verify_inclusion(
        leaf_hash(body),
        REAL_PROOF_INDEX,
        REAL_TREE_SIZE,
        [b64(h) for h in REAL_HASHES],
        b64(REAL_ROOT_HASH),
    )
    checkpoint = verify_checkpoint(REAL_CHECKPOINT, "rekor.sigstore.dev", rekor_key())
    assert checkpoint.root_hash == b64(REAL_ROOT_HASH)
    assert checkpoint.size == REAL_TREE_SIZE
    assert entry_uuid(body) == leaf_hash(body).hex()


def test_real_rekor_inclusion_promise_verifies() -> None:
    body = real_body()
    entry_log_id = b64(REAL_LOG_ID)
    assert entry_log_id == log_id(rekor_key())
    verify_signed_entry_timestamp(
        rekor_key(),
        b64(REAL_SET),
        body=body,
        integrated_time=REAL_INTEGRATED_TIME,
        log_id=entry_log_id,
        log_index=REAL_LOG_INDEX,
    )
    with pytest.raises(SignedEntryTimestampError, match="does not verify"):
        verify_signed_entry_timestamp(
            rekor_key(),
            b64(REAL_SET),
            body=body,
            integrated_time=REAL_INTEGRATED_TIME + 1,
            log_id=entry_log_id,
            log_index=REAL_LOG_INDEX,
        )


# --- our own entries ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def log_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def other_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def signed() -> tuple[x509.Certificate, bytes, bytes]:
    """(leaf certificate, digest, signature over the digest)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "leaf")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(minutes=5))
        .sign(key, hashes.SHA256())
    )
    digest = hashlib.sha256(b"artifact").digest()
    signature = key.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256())))
    return cert, digest, signature


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def test_body_equals_what_sigstore_python_rebuilds(
    signed: tuple[x509.Certificate, bytes, bytes],
) -> None:
    cert, digest, signature = signed
    body = hashedrekord_body(digest, signature, pem(cert))
    expected = _hashedrekord_from_parts(
        cert, signature, Hashed(algorithm=HashAlgorithm.SHA2_256, digest=digest)
    )
    assert rekor_types.Hashedrekord.model_validate_json(body) == expected
    assert body == rfc8785.dumps(expected.model_dump(mode="json", by_alias=True))


def test_body_layout(signed: tuple[x509.Certificate, bytes, bytes]) -> None:
    cert, digest, signature = signed
    body = hashedrekord_body(digest, signature, pem(cert))
    sig = base64.b64encode(signature).decode()
    key = base64.b64encode(pem(cert)).decode()
    assert body.decode() == (
        '{"apiVersion":"0.0.1","kind":"hashedrekord","spec":{"data":{"hash":{"algorithm":'
        f'"sha256","value":"{digest.hex()}"}}}},"signature":{{"content":"{sig}",'
        f'"publicKey":{{"content":"{key}"}}}}}}}}'
    )
    with pytest.raises(ValueError, match="SHA-256"):
        hashedrekord_body(digest[:20], signature, pem(cert))
    with pytest.raises(ValueError, match="PEM"):
        hashedrekord_body(digest, signature, cert.public_bytes(serialization.Encoding.DER))


def test_signed_entry_timestamp_round_trip_and_tampering(
    log_key: ec.EllipticCurvePrivateKey,
    other_key: ec.EllipticCurvePrivateKey,
    signed: tuple[x509.Certificate, bytes, bytes],
) -> None:
    cert, digest, signature = signed
    body = hashedrekord_body(digest, signature, pem(cert))
    public = log_key.public_key()
    ours = log_id(public)
    promise = signed_entry_timestamp(FileKey(log_key), body, INTEGRATED_TIME, ours, 7)
    fields: dict[str, Any] = {
        "body": body,
        "integrated_time": INTEGRATED_TIME,
        "log_id": ours,
        "log_index": 7,
    }
    verify_signed_entry_timestamp(public, promise, **fields)
    tampered = [
        {**fields, "body": body.replace(b"sha256", b"sha257")},
        {**fields, "integrated_time": INTEGRATED_TIME + 1},
        {**fields, "log_index": 8},
    ]
    for changed in tampered:
        with pytest.raises(SignedEntryTimestampError, match="does not verify"):
            verify_signed_entry_timestamp(public, promise, **changed)
    flipped = promise[:-1] + bytes([promise[-1] ^ 1])
    with pytest.raises(SignedEntryTimestampError):
        verify_signed_entry_timestamp(public, flipped, **fields)
    with pytest.raises(SignedEntryTimestampError, match="but the key given"):
        verify_signed_entry_timestamp(other_key.public_key(), promise, **fields)
    with pytest.raises(ValueError, match="does not belong"):
        signed_entry_timestamp(FileKey(other_key), body, INTEGRATED_TIME, ours, 7)


# --- sigstore-python verifies a whole entry we produced ----------------------------------------


def rekor_keyring(public_key: ec.EllipticCurvePublicKey) -> RekorKeyring:
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    entry = common_v1.PublicKey(
        raw_bytes=base64.b64encode(der).decode(),  # type: ignore[arg-type]
        key_details=common_v1.PublicKeyDetails.PKIX_ECDSA_P256_SHA_256,
    )
    return RekorKeyring(Keyring([entry]))


def our_entry(
    log_key: ec.EllipticCurvePrivateKey,
    checkpoint_key: ec.EllipticCurvePrivateKey,
    body: bytes,
) -> dict[str, Any]:
    """A bundle tlogEntry as the service will build it: our entry at index 5 of 13."""
    tree = MemoryNodes()
    tree.append([leaf_hash(f"earlier {i}".encode()) for i in range(5)])
    tree.append([leaf_hash(body)])
    tree.append([leaf_hash(f"later {i}".encode()) for i in range(7)])
    index, size = 5, tree.size
    root = tree.root()
    ours = log_id(log_key.public_key())
    envelope = sign_checkpoint(Checkpoint(f"{NAME} - 1", size, root), NAME, FileKey(checkpoint_key))
    promise = signed_entry_timestamp(FileKey(log_key), body, INTEGRATED_TIME, ours, index)

    def enc(data: bytes) -> str:
        return base64.b64encode(data).decode()

    return {
        "logIndex": str(index),
        "logId": {"keyId": enc(ours)},
        "kindVersion": {"kind": "hashedrekord", "version": "0.0.1"},
        "integratedTime": str(INTEGRATED_TIME),
        "inclusionPromise": {"signedEntryTimestamp": enc(promise)},
        "inclusionProof": {
            "logIndex": str(index),
            "rootHash": enc(root),
            "treeSize": str(size),
            "hashes": [enc(h) for h in inclusion_proof(index, size, tree)],
            "checkpoint": {"envelope": envelope},
        },
        "canonicalizedBody": enc(body),
    }


def sigstore_verifies(entry: dict[str, Any], public_key: ec.EllipticCurvePublicKey) -> None:
    """sigstore-python's TransparencyLogEntry._verify: inclusion proof, checkpoint, SET."""
    TransparencyLogEntry(InnerEntry.from_dict(entry))._verify(rekor_keyring(public_key))


def test_sigstore_python_verifies_an_entry_we_built(
    log_key: ec.EllipticCurvePrivateKey, signed: tuple[x509.Certificate, bytes, bytes]
) -> None:
    cert, digest, signature = signed
    body = hashedrekord_body(digest, signature, pem(cert))
    sigstore_verifies(our_entry(log_key, log_key, body), log_key.public_key())


def test_sigstore_python_refuses_tampered_entries(
    log_key: ec.EllipticCurvePrivateKey,
    other_key: ec.EllipticCurvePrivateKey,
    signed: tuple[x509.Certificate, bytes, bytes],
) -> None:
    cert, digest, signature = signed
    body = hashedrekord_body(digest, signature, pem(cert))
    public = log_key.public_key()

    other_body = our_entry(log_key, log_key, body)
    other_body["canonicalizedBody"] = base64.b64encode(body.replace(b"sha256", b"sha257")).decode()
    foreign_checkpoint = our_entry(log_key, other_key, body)
    bad_proof = our_entry(log_key, log_key, body)
    first = b64(bad_proof["inclusionProof"]["hashes"][0])
    bad_proof["inclusionProof"]["hashes"][0] = base64.b64encode(
        bytes([first[0] ^ 1]) + first[1:]
    ).decode()
    bad_promise = our_entry(log_key, log_key, body)
    bad_promise["integratedTime"] = str(INTEGRATED_TIME + 1)

    for entry in (other_body, foreign_checkpoint, bad_proof, bad_promise):
        with pytest.raises(VerificationError):
            sigstore_verifies(entry, public)


@pytest.mark.parametrize(("integrated_time", "log_index"), [
    (INTEGRATED_TIME, 7), (0, 0), (-1, 2**53 - 1), (2**53 - 1, -(2**53 - 1)),
    (U64(INTEGRATED_TIME), U64(7)), (True, False)])
def test_signed_entry_timestamp_payload_is_rfc8785(integrated_time: int, log_index: int) -> None:
    """The payload is written out by hand; it must be what rfc8785 makes of the object."""
    body = b'{"apiVersion":"0.0.1"}\x00\xff'
    log = hashlib.sha256(b"log").digest()
    assert signed_entry_timestamp_payload(body, integrated_time, log, log_index) == rfc8785.dumps(
        {"body": base64.b64encode(body).decode(), "integratedTime": integrated_time,
         "logID": log.hex(), "logIndex": log_index})


def test_signed_entry_timestamp_payload_refuses_what_rfc8785_refuses() -> None:
    with pytest.raises(rfc8785.IntegerDomainError):
        signed_entry_timestamp_payload(b"{}", 2**53, b"\x00" * 32, 1)

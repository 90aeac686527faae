"""Signed-note checkpoints: round trip, real Rekor checkpoints, sigstore-python's verifier."""

from __future__ import annotations

import base64
from types import SimpleNamespace

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sigstore._internal.rekor.checkpoint import SignedCheckpoint
from sigstore._internal.rekor.checkpoint import verify_checkpoint as sigstore_verify_checkpoint
from sigstore._internal.trust import Keyring, RekorKeyring
from sigstore.errors import VerificationError
from sigstore_models.common import v1 as common_v1

from signer.service.keys import FileKey
from signer.transparency.checkpoint import (
    Checkpoint,
    CheckpointError,
    key_hint,
    sign_checkpoint,
    verify_checkpoint,
)
from signer.transparency.merkle import leaf_hash
from signer.transparency.sct import log_id

NAME = "signer.example:8443"
ORIGIN = "signer.example:8443 - 1"
ROOT = leaf_hash(b"root")

# Real Rekor v1 checkpoints with the keys that signed them, as in sigstore-js's
# packages/verify/src/__tests__/tlog/checkpoint.test.ts.
REKOR_KEY = (
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE2G2Y+2tabdTV5BcGiBIx0a9fAFwrkBbmLSGtks4L3qX6yYY0zufBnhC8"
    "Ur/iy55GhWP/9A/bY2LhC30M9+RYtw=="
)
REKOR_CHECKPOINT = (
    "rekor.sigstore.dev - 2605736670972794746\n21428036\n"
    "rxnoKyFZlJ7/R6bMh/d3lcqwKqAy5CL1LcNBJP17kgQ=\nTimestamp: 1688058656037355364\n\n"
    "\u2014 rekor.sigstore.dev wNI9ajBFAiEAuDk7uu5Ae8Own/MjhSZNuVzbLuYH2jBMxbSA0WaNDNACIDV4reKp"
    "YiOpkwtvazCClnpUuduF2o/th2xR3gRZAUU4\n"
)
STAGING_KEY = (
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEDODRU688UYGuy54mNUlaEBiQdTE9nYLr0lg6RXowI/QV/RE1azBn4Eg5"
    "/2uTOMbhB1/gfcHzijzFi9Tk+g1Prg=="
)
STAGING_CHECKPOINT = (
    "rekor.sigstage.dev - 8050909264565447525\n23003647\n"
    "WBwYpazawqUG5iErvDptvf7mpt84WIpmm+zfshgHhJs=\n\n"
    "\u2014 rekor.sigstage.dev 0y8wozBGAiEA2kq45YWfHHiDCJHH2+m9l+TVMtPBpOVu+VtVaj62V2MCIQDflbM2N7"
    "M/JTIV/spr9qYUI3gf4bO0qqSeiEWJ5xLgPA==\n"
)


def load_key(b64: str) -> ec.EllipticCurvePublicKey:
    key = serialization.load_der_public_key(base64.b64decode(b64))
    assert isinstance(key, ec.EllipticCurvePublicKey)
    return key


@pytest.fixture(scope="module")
def log_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def other_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def checkpoint() -> Checkpoint:
    return Checkpoint(ORIGIN, 42, ROOT, ("Timestamp: 1700000000000000000",))


def rekor_keyring(public_key: ec.EllipticCurvePublicKey) -> RekorKeyring:
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    entry = common_v1.PublicKey(
        raw_bytes=base64.b64encode(der).decode(),  # type: ignore[arg-type]
        key_details=common_v1.PublicKeyDetails.PKIX_ECDSA_P256_SHA_256,
    )
    return RekorKeyring(Keyring([entry]))


def sigstore_accepts(
    envelope: str, root: bytes, keyring_key: ec.EllipticCurvePublicKey, entry_log_id: bytes
) -> None:
    """sigstore-python's checkpoint step; it reads only these attributes of the entry."""
    entry = SimpleNamespace(
        _inner=SimpleNamespace(
            log_id=SimpleNamespace(key_id=entry_log_id),
            inclusion_proof=SimpleNamespace(
                checkpoint=SimpleNamespace(envelope=envelope), root_hash=root
            ),
        )
    )
    sigstore_verify_checkpoint(rekor_keyring(keyring_key), entry)  # type: ignore[arg-type]


def test_round_trip(log_key: ec.EllipticCurvePrivateKey, checkpoint: Checkpoint) -> None:
    envelope = sign_checkpoint(checkpoint, NAME, FileKey(log_key))
    assert verify_checkpoint(envelope, NAME, log_key.public_key()) == checkpoint


def test_envelope_layout(log_key: ec.EllipticCurvePrivateKey, checkpoint: Checkpoint) -> None:
    envelope = sign_checkpoint(checkpoint, NAME, FileKey(log_key))
    body, signature_line = envelope.split("\n\n")
    assert body.split("\n") == [
        ORIGIN,
        "42",
        base64.b64encode(ROOT).decode(),
        "Timestamp: 1700000000000000000",
    ]
    prefix = f"\u2014 {NAME} "
    assert signature_line.startswith(prefix)
    assert signature_line.endswith("\n")
    blob = base64.b64decode(signature_line[len(prefix) : -1])
    assert blob[:4] == log_id(log_key.public_key())[:4] == key_hint(log_key.public_key())
    log_key.public_key().verify(blob[4:], (body + "\n").encode(), ec.ECDSA(hashes.SHA256()))


def test_real_rekor_checkpoints_verify() -> None:
    production = verify_checkpoint(REKOR_CHECKPOINT, "rekor.sigstore.dev", load_key(REKOR_KEY))
    assert production.origin == "rekor.sigstore.dev - 2605736670972794746"
    assert production.size == 21428036
    assert production.root_hash == base64.b64decode("rxnoKyFZlJ7/R6bMh/d3lcqwKqAy5CL1LcNBJP17kgQ=")
    assert production.other_lines == ("Timestamp: 1688058656037355364",)
    staging = verify_checkpoint(STAGING_CHECKPOINT, "rekor.sigstage.dev", load_key(STAGING_KEY))
    assert (staging.size, staging.other_lines) == (23003647, ())


def test_our_body_is_what_rekor_signs() -> None:
    """Re-serialising Rekor's parsed body gives its exact signed bytes."""
    parsed = verify_checkpoint(REKOR_CHECKPOINT, "rekor.sigstore.dev", load_key(REKOR_KEY))
    assert parsed.body() == REKOR_CHECKPOINT.partition("\n\n")[0] + "\n"


def test_sigstore_python_accepts_our_envelope(
    log_key: ec.EllipticCurvePrivateKey, checkpoint: Checkpoint
) -> None:
    public = log_key.public_key()
    envelope = sign_checkpoint(checkpoint, NAME, FileKey(log_key))
    sigstore_accepts(envelope, ROOT, public, log_id(public))
    parsed = SignedCheckpoint.from_text(envelope)
    assert parsed.checkpoint.origin == ORIGIN
    assert parsed.checkpoint.log_size == 42
    assert parsed.checkpoint.log_hash == ROOT.hex()
    assert [s.name for s in parsed.signed_note.signatures] == [NAME]


def test_sigstore_python_refuses_other_key_and_edits(
    log_key: ec.EllipticCurvePrivateKey,
    other_key: ec.EllipticCurvePrivateKey,
    checkpoint: Checkpoint,
) -> None:
    public = log_key.public_key()
    envelope = sign_checkpoint(checkpoint, NAME, FileKey(log_key))
    forged = sign_checkpoint(checkpoint, NAME, FileKey(other_key))
    with pytest.raises(VerificationError):
        sigstore_accepts(forged, ROOT, public, log_id(public))
    with pytest.raises(VerificationError):
        sigstore_accepts(envelope, ROOT, other_key.public_key(), log_id(other_key.public_key()))
    edited = envelope.replace("\n42\n", "\n43\n")
    with pytest.raises(VerificationError):
        sigstore_accepts(edited, ROOT, public, log_id(public))
    with pytest.raises(VerificationError):
        sigstore_accepts(envelope, leaf_hash(b"other root"), public, log_id(public))


def test_wrong_key_fails(
    log_key: ec.EllipticCurvePrivateKey,
    other_key: ec.EllipticCurvePrivateKey,
    checkpoint: Checkpoint,
) -> None:
    envelope = sign_checkpoint(checkpoint, NAME, FileKey(log_key))
    with pytest.raises(CheckpointError, match="no signature by"):
        verify_checkpoint(envelope, NAME, other_key.public_key())


def test_signature_with_our_key_hint_but_another_key_fails(
    log_key: ec.EllipticCurvePrivateKey,
    other_key: ec.EllipticCurvePrivateKey,
    checkpoint: Checkpoint,
) -> None:
    body = checkpoint.body()
    signature = other_key.sign(body.encode(), ec.ECDSA(hashes.SHA256()))
    blob = base64.b64encode(key_hint(log_key.public_key()) + signature).decode()
    envelope = f"{body}\n\u2014 {NAME} {blob}\n"
    with pytest.raises(CheckpointError, match="does not verify"):
        verify_checkpoint(envelope, NAME, log_key.public_key())


def test_wrong_name_fails(log_key: ec.EllipticCurvePrivateKey, checkpoint: Checkpoint) -> None:
    envelope = sign_checkpoint(checkpoint, NAME, FileKey(log_key))
    with pytest.raises(CheckpointError, match=r"no signature by rekor\.example"):
        verify_checkpoint(envelope, "rekor.example", log_key.public_key())


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("\n42\n", "\n43\n"),  # size
        (base64.b64encode(ROOT).decode(), base64.b64encode(leaf_hash(b"x")).decode()),  # root
        (ORIGIN, "elsewhere - 1"),  # origin
        ("Timestamp: 17", "Timestamp: 18"),  # extra line
    ],
)
def test_edited_body_fails(
    log_key: ec.EllipticCurvePrivateKey, checkpoint: Checkpoint, old: str, new: str
) -> None:
    envelope = sign_checkpoint(checkpoint, NAME, FileKey(log_key))
    assert old in envelope
    with pytest.raises(CheckpointError, match="does not verify"):
        verify_checkpoint(envelope.replace(old, new, 1), NAME, log_key.public_key())


@pytest.mark.parametrize(
    ("envelope", "message"),
    [
        ("origin\n1\nAAAA\n", "exactly one blank line"),
        ("origin\n\n1\n\n\u2014 a AAAAAAAA\n", "exactly one blank line"),
        ("origin\n1\nAAAA\n\n\u2014 a AAAAAAAA", "end with a newline"),
        ("origin\n1\nAAAA\n\n- a AAAAAAAA\n", "malformed checkpoint signature line"),
        ("origin\n1\nAAAA\n\n\u2014 a AAAA\n", "too short"),
        ("origin\n1\nAAAA\n\n\u2014 a AAAAA\n", "not base64"),
    ],
)
def test_malformed_envelopes_fail(
    log_key: ec.EllipticCurvePrivateKey, envelope: str, message: str
) -> None:
    with pytest.raises(CheckpointError, match=message):
        verify_checkpoint(envelope, "a", log_key.public_key())


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("origin\n42\n", "needs origin, size and root"),
        ("origin\n-1\n" + base64.b64encode(ROOT).decode() + "\n", "not a number"),
        ("origin\n042\n" + base64.b64encode(ROOT).decode() + "\n", "not a number"),
        ("origin\n42\nnot base64!\n", "not base64"),
        ("origin\n42\n" + base64.b64encode(b"short").decode() + "\n", "5 bytes"),
    ],
)
def test_malformed_signed_body_fails(
    log_key: ec.EllipticCurvePrivateKey, body: str, message: str
) -> None:
    signature = log_key.sign(body.encode(), ec.ECDSA(hashes.SHA256()))
    blob = base64.b64encode(key_hint(log_key.public_key()) + signature).decode()
    envelope = f"{body}\n\u2014 {NAME} {blob}\n"
    with pytest.raises(CheckpointError, match=f"malformed checkpoint body: .*{message}"):
        verify_checkpoint(envelope, NAME, log_key.public_key())


def test_refuses_to_sign_what_clients_cannot_read(
    log_key: ec.EllipticCurvePrivateKey,
) -> None:
    with pytest.raises(ValueError, match="extra lines"):
        sign_checkpoint(Checkpoint(ORIGIN, 1, ROOT, ("",)), NAME, FileKey(log_key))
    with pytest.raises(ValueError, match="origin"):
        sign_checkpoint(Checkpoint("two\nlines", 1, ROOT), NAME, FileKey(log_key))
    with pytest.raises(ValueError, match="root hash"):
        sign_checkpoint(Checkpoint(ORIGIN, 1, b"short"), NAME, FileKey(log_key))
    with pytest.raises(ValueError, match="one token"):
        sign_checkpoint(Checkpoint(ORIGIN, 1, ROOT), "two words", FileKey(log_key))
    with pytest.raises(TypeError, match="P-256"):
        sign_checkpoint(Checkpoint(ORIGIN, 1, ROOT), NAME,
                        FileKey(ec.generate_private_key(ec.SECP384R1())))

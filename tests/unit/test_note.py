"""signer.transparency.note against Go's sumdb/note vectors and real Rekor checkpoints.

Vectors: golang/mod sumdb/note/note_test.go (Ed25519 keys PeterNeumann and EnochRoot, their
signatures of the same text). Checkpoints: Sigstore staging's Rekor v2 log (Ed25519, from the
sigstore-python assets; key from that repository's
test/assets/trust_config/staging-but-sign-with-rekor-v2.json) and staging's Rekor v1 log
(ECDSA P-256, from the model-transparency asset; key from the same trust config).
"""

from __future__ import annotations

import base64
import re

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from signer.sigstore_json import Bundle
from signer.transparency import checkpoint as v1_checkpoint
from signer.transparency import note, sct
from signer.transparency.checkpoint import CheckpointError
from tests.adversarial.builders import asset_text

TEXT = ("If you think cryptography is the answer to your problem,\n"
        "then you don't know what your problem is.\n")
PETER_KEY = base64.b64decode("ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")[1:]
PETER_SEED = base64.b64decode("AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz")[1:]
ENOCH_KEY = base64.b64decode("ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop")[1:]
PETER_SIG = ("— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZ"
             "SNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n")
ENOCH_SIG = ("— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovT"
             "G01oOTGwnWLox33WWd1RvMc+QQ=\n")
PETER = note.NoteVerifier("PeterNeumann", ed25519.Ed25519PublicKey.from_public_bytes(PETER_KEY))
ENOCH = note.NoteVerifier("EnochRoot", ed25519.Ed25519PublicKey.from_public_bytes(ENOCH_KEY))

REKOR_V2_NAME = "log2025-alpha1.rekor.sigstage.dev"
REKOR_V2_KEY = serialization.load_der_public_key(
    base64.b64decode("MCowBQYDK2VwAyEAPn+AREHoBaZ7wgS1zBqpxmLSGnyhxXj4lFxSdWVB8o8="))
REKOR_V1_KEY = serialization.load_der_public_key(base64.b64decode(
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEDODRU688UYGuy54mNUlaEBiQdTE9nYLr0lg6RXowI/QV/RE1azBn4E"
    "g5/2uTOMbhB1/gfcHzijzFi9Tk+g1Prg=="))
# sigstore/sigstore-go pkg/root/trusted-root-public-good.json: Rekor v1 production's key.
REKOR_PUBLIC_KEY = serialization.load_der_public_key(base64.b64decode(
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE2G2Y+2tabdTV5BcGiBIx0a9fAFwrkBbmLSGtks4L3qX6yYY0zufBnh"
    "C8Ur/iy55GhWP/9A/bY2LhC30M9+RYtw=="))
V2_BUNDLES = ["sigstore-python/staging-rekor-v2.txt.sigstore.json",
              "sigstore-python/a.dsse.staging-rekor-v2.txt.sigstore.json"]


class _Ed25519Signer:
    def __init__(self, key: ed25519.Ed25519PrivateKey) -> None:
        self._key = key
        self.public_key = key.public_key()

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data)


class _EcdsaSigner:
    def __init__(self) -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        self.public_key = self._key.public_key()

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data, ec.ECDSA(hashes.SHA256()))


def test_key_ids_are_gos() -> None:
    assert PETER.key_id.hex() == "c74f20a3"
    assert ENOCH.key_id.hex() == "af0cfe78"


def test_signing_reproduces_gos_signed_note() -> None:
    signer = _Ed25519Signer(ed25519.Ed25519PrivateKey.from_private_bytes(PETER_SEED))
    assert signer.public_key.public_bytes_raw() == PETER_KEY
    assert note.sign_note(TEXT, "PeterNeumann", signer) == TEXT + "\n" + PETER_SIG


@pytest.mark.parametrize("signatures", [PETER_SIG + ENOCH_SIG, ENOCH_SIG + PETER_SIG])
def test_several_signatures_in_any_order(signatures: str) -> None:
    envelope = TEXT + "\n" + signatures
    assert note.open_note(envelope, [PETER]).verified_by == (PETER,)
    both = note.open_note(envelope, [ENOCH, PETER])
    assert sorted(v.name for v in both.verified_by) == ["EnochRoot", "PeterNeumann"]
    assert both.note.text == TEXT


def test_unknown_keys_are_ignored_and_a_bad_known_signature_refuses_the_note() -> None:
    with pytest.raises(note.NoteError, match="no signature by EnochRoot"):
        note.open_note(TEXT + "\n" + PETER_SIG, [ENOCH])
    # Same name, another key (so another key ID): unknown, ignored.
    stranger = note.NoteVerifier("PeterNeumann", ENOCH.public_key)
    with pytest.raises(note.NoteError, match="it is signed by PeterNeumann \\(key ID c74f20a3\\)"):
        note.open_note(TEXT + "\n" + PETER_SIG, [stranger])
    forged = PETER_SIG[:60] + "ABCD" + PETER_SIG[64:]
    with pytest.raises(note.NoteError, match="by PeterNeumann \\(key ID c74f20a3\\) does not"):
        note.open_note(TEXT + "\n" + forged + ENOCH_SIG, [PETER, ENOCH])
    with pytest.raises(note.NoteError, match="ambiguous key EnochRoot"):
        note.open_note(TEXT + "\n" + ENOCH_SIG, [ENOCH, PETER, ENOCH])


@pytest.mark.parametrize(("envelope", "message"), [  # Go's malformed notes, and ours
    (TEXT, "no blank line"),
    (TEXT + "\n", "signature lines must each end"),
    (TEXT + "\n" + PETER_SIG[:-1], "signature lines must each end"),
    ("\x01" + TEXT + "\n" + PETER_SIG, "control character"),
    (TEXT + "\n" + PETER_SIG.replace("PeterNeumann", "Bad Name"), "signature line"),
    (TEXT + "\n" + PETER_SIG + "Unexpected line.\n", "signature line 'Unexpected line.'"),
    (TEXT + "\n" + PETER_SIG.replace("PeterNeumann", "a+b"), "without spaces or '+'"),
    (TEXT + "\n" + "— PeterNeumann AAAA\n", "too short"),
    (TEXT + "\n" + "— PeterNeumann not*base64\n", "signature line of 'PeterNeumann'"),
    (TEXT + "\n" + PETER_SIG * 101, "more than 100 signatures"),
    (b"\xff" + TEXT.encode() + b"\n" + PETER_SIG.encode(), "not UTF-8"),
])
def test_malformed_notes_are_refused(envelope: str | bytes, message: str) -> None:
    with pytest.raises(note.NoteError, match="malformed note") as refused:
        note.open_note(envelope, [PETER])
    assert message in str(refused.value)


def test_the_text_ends_at_the_last_blank_line() -> None:
    text = "first\n\nsecond\n"
    signer = _Ed25519Signer(ed25519.Ed25519PrivateKey.generate())
    line = note.NoteSignature("k", note.key_id("k", signer.public_key),
                              signer.sign(text.encode())).line()
    opened = note.open_note(text + "\n" + line, [note.NoteVerifier("k", signer.public_key)])
    assert opened.note.text == text


@pytest.mark.parametrize("name", V2_BUNDLES)
def test_rekor_v2_checkpoints_verify_with_the_trust_roots_ed25519_key(name: str) -> None:
    assert isinstance(REKOR_V2_KEY, ed25519.Ed25519PublicKey)
    entry = Bundle.from_json(asset_text(name)).verification_material.tlog_entries[0]
    assert entry.inclusion_proof.checkpoint is not None
    verifier = note.NoteVerifier(REKOR_V2_NAME, REKOR_V2_KEY)
    checkpoint = note.verify_checkpoint(entry.inclusion_proof.checkpoint.envelope, verifier,
                                        origin=REKOR_V2_NAME)
    assert (checkpoint.size, checkpoint.root_hash) == (
        entry.inclusion_proof.tree_size, entry.inclusion_proof.root_hash)
    # A Rekor v2 bundle names its log by the full hash whose first 4 bytes are the key ID.
    assert note.log_id(REKOR_V2_NAME, REKOR_V2_KEY) == entry.log_id.key_id
    with pytest.raises(note.NoteError, match=re.escape(f"origin is '{REKOR_V2_NAME}'")):
        note.verify_checkpoint(entry.inclusion_proof.checkpoint.envelope, verifier, origin="x")


def test_a_rekor_v1_checkpoint_verifies_with_its_ecdsa_key() -> None:
    assert isinstance(REKOR_V1_KEY, ec.EllipticCurvePublicKey)
    bundle = Bundle.from_json(asset_text("model-transparency/model.sig.sigstore.json"))
    entry = bundle.verification_material.tlog_entries[0]
    assert entry.inclusion_proof.checkpoint is not None
    envelope = entry.inclusion_proof.checkpoint.envelope
    verifier = note.NoteVerifier("rekor.sigstage.dev", REKOR_V1_KEY)
    # The ECDSA key ID is the log ID's start, the rule checkpoint.py applies for Rekor v1.
    assert verifier.key_id == v1_checkpoint.key_hint(REKOR_V1_KEY) == entry.log_id.key_id[:4]
    checkpoint = note.verify_checkpoint(envelope, verifier)
    assert checkpoint == v1_checkpoint.verify_checkpoint(envelope, "rekor.sigstage.dev",
                                                         REKOR_V1_KEY)
    assert checkpoint.origin == "rekor.sigstage.dev - 8202293616175992157"


def test_a_production_rekor_checkpoint_with_an_extension_line() -> None:
    assert isinstance(REKOR_PUBLIC_KEY, ec.EllipticCurvePublicKey)
    entry = Bundle.from_json(asset_text("sigstore-go/bundle-v02.json")) \
        .verification_material.tlog_entries[0]
    assert entry.inclusion_proof.checkpoint is not None
    checkpoint = note.verify_checkpoint(entry.inclusion_proof.checkpoint.envelope,
                                        note.NoteVerifier("rekor.sigstore.dev", REKOR_PUBLIC_KEY))
    assert checkpoint.other_lines == ("Timestamp: 1689177396617352539",)
    assert note.log_id("rekor.sigstore.dev", REKOR_PUBLIC_KEY) == entry.log_id.key_id


def test_an_ecdsa_log_id_is_the_keys_spki_hash_whatever_its_name() -> None:
    key = _EcdsaSigner().public_key
    assert note.log_id("any.name", key) == note.log_id("other", key) == sct.log_id(key)


def test_a_log_checkpoint_with_a_witness_cosignature() -> None:
    log, witness = _EcdsaSigner(), _Ed25519Signer(ed25519.Ed25519PrivateKey.generate())
    body = v1_checkpoint.Checkpoint("example.org/log", 7, b"\x11" * 32, ("ext line",)).body()
    signed = note.sign_note(body, "example.org/log", log)
    cosigned = note.cosign_note(signed, "witness.example", witness)
    assert note.cosign_note(cosigned, "witness.example", witness).count("\u2014") == 2
    log_key = note.NoteVerifier("example.org/log", log.public_key)
    witness_key = note.NoteVerifier("witness.example", witness.public_key)
    checkpoint = note.verify_checkpoint(cosigned, log_key)
    assert (checkpoint.size, checkpoint.other_lines) == (7, ("ext line",))
    assert note.open_note(cosigned, [log_key, witness_key]).verified_by == (log_key, witness_key)
    # What checkpoint.py's reader (sigstore-python's rule: one blank line) makes of it.
    assert v1_checkpoint.verify_checkpoint(signed, "example.org/log", log.public_key) == checkpoint


@pytest.mark.parametrize(("body", "message"), [
    ("example.org/log\n", "needs origin, size and root hash lines"),
    ("\n7\n" + base64.b64encode(b"\0" * 32).decode() + "\n", "empty origin"),
    ("example.org/log\nseven\n" + base64.b64encode(b"\0" * 32).decode() + "\n", "size 'seven'"),
    ("example.org/log\n07\n" + base64.b64encode(b"\0" * 32).decode() + "\n", "size '07'"),
    ("example.org/log\n7\nAAAA\n", "root hash is 3 bytes"),
])
def test_checkpoints_missing_origin_size_or_root_are_refused(body: str, message: str) -> None:
    log = _EcdsaSigner()  # signed by hand: sign_note refuses an empty first line
    line = note.NoteSignature("example.org/log", note.key_id("example.org/log", log.public_key),
                              log.sign(body.encode())).line()
    with pytest.raises(CheckpointError, match=message):
        note.verify_checkpoint(body + "\n" + line,
                               note.NoteVerifier("example.org/log", log.public_key))


def test_signing_refuses_what_no_reader_could_split() -> None:
    signer = _EcdsaSigner()
    for text in ("no newline", "a\n\nb\n", "\nb\n", "tab\there\n"):
        with pytest.raises(ValueError):
            note.sign_note(text, "k", signer)
    with pytest.raises(ValueError, match="without spaces"):
        note.sign_note("a\n", "two words", signer)

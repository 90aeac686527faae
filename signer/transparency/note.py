"""C2SP signed notes (https://c2sp.org/signed-note): parse, verify, sign, cosign.

A note is UTF-8 text ending in a newline, a blank line, then one or more signature lines::

    <text, each line ending in \\n>
    \\n
    — <key name> base64(key ID[4] ‖ signature)\\n

The text ends at the *last* blank line. A key is known by (name, key ID): signatures by
unknown keys are ignored (witness cosignatures, another log's key), a signature by a known key
must verify, and at least one must. Key IDs, as the logs that sign our bundles compute them:

- Ed25519 (C2SP type 0x01; Rekor v2 / rekor-tiles, Go's sumdb): SHA-256(name ‖ 0x0A ‖ 0x01 ‖
  32-byte key)[:4].
- ECDSA (C2SP type 0x02, as transparency-dev/witness, rekor-tiles ``ecdsaKeyHash`` and Rekor
  v1 do it): SHA-256(DER SubjectPublicKeyInfo)[:4]; the name takes no part. For Rekor v1 this
  is the start of the log ID, the rule `signer.transparency.checkpoint` uses.

The full 32-byte hash (`log_id`) is what a Rekor v2 bundle's ``logId.keyId`` and a trust root's
``checkpointKeyId`` hold. A C2SP tlog-checkpoint is a note whose text is the
`signer.transparency.checkpoint.Checkpoint` body; `verify_checkpoint` opens one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Final, Protocol
from urllib.parse import urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from signer.key_details import ecdsa_hash
from signer.transparency.checkpoint import Checkpoint, CheckpointError

KEY_ID_BYTES: Final = 4
ED25519_TYPE: Final = b"\x01"
# Go's sumdb/note refuses more; C2SP asks verifiers to accept at least 16.
MAX_SIGNATURES: Final = 100
_DASH: Final = "\u2014 "
_CONTROL: Final = re.compile(r"[\x00-\x09\x0b-\x1f]")  # below " ", but newline
_SPACE: Final = re.compile(r"\s")  # what str.isspace() says is a space (Py_UNICODE_ISSPACE)

NoteKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey


class NoteError(CheckpointError):
    """A note is malformed, carries no signature by a known key, or a known key's fails."""


class NoteSigner(Protocol):
    """A log or witness key: its public half and ``sign(data)`` (raw Ed25519, DER ECDSA)."""

    @property
    def public_key(self) -> NoteKey: ...

    def sign(self, data: bytes) -> bytes: ...


@dataclass(frozen=True)
class NoteSignature:
    name: str
    key_id: bytes
    signature: bytes

    def line(self) -> str:
        return f"{_DASH}{self.name} {base64.b64encode(self.key_id + self.signature).decode()}\n"


@dataclass(frozen=True)
class SignedNote:
    text: str  # ends in a newline
    signatures: tuple[NoteSignature, ...]

    def render(self) -> str:
        return self.text + "\n" + "".join(s.line() for s in self.signatures)


def log_id(name: str, key: NoteKey) -> bytes:
    """The full 32-byte hash whose first 4 bytes are the key ID."""
    if isinstance(key, ed25519.Ed25519PublicKey):
        raw = key.public_bytes(Encoding.Raw, PublicFormat.Raw)
        return hashlib.sha256(name.encode() + b"\n" + ED25519_TYPE + raw).digest()
    der = key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).digest()


def sigstore_log_name(base_url: str) -> str:
    """The origin and key name of a Rekor v2 log whose trust-root ``baseUrl`` is ``base_url``:
    its host name, without port or path. sigstore-go verifies a v2 checkpoint with a note
    verifier named ``url.Hostname()`` of the baseUrl and requires the origin line to equal
    it (rekor-tiles names its logs so); sigstore-python reads neither."""
    host = urlsplit(base_url).hostname
    if not host:
        raise ValueError(f"a log's base URL needs a host, got {base_url!r}")
    return host


def key_id(name: str, key: NoteKey) -> bytes:
    """The 4-byte key ID a signature line by ``key`` as ``name`` starts with."""
    return log_id(name, key)[:KEY_ID_BYTES]


@dataclass(frozen=True)
class NoteVerifier:
    """A known key: the name it signs as and its public key."""

    name: str
    public_key: NoteKey

    def __post_init__(self) -> None:
        _check_name(self.name)

    @cached_property  # a hash of the key's encoding: once per verifier, not per signature
    def key_id(self) -> bytes:
        return key_id(self.name, self.public_key)

    @cached_property  # ~2 us to make, and the same for every note this key signs
    def _ecdsa(self) -> ec.ECDSA:
        assert isinstance(self.public_key, ec.EllipticCurvePublicKey)
        return ec.ECDSA(ecdsa_hash(self.public_key.curve))

    def verify(self, text: str, signature: bytes) -> bool:
        try:
            if isinstance(self.public_key, ed25519.Ed25519PublicKey):
                self.public_key.verify(signature, text.encode())
            else:
                self.public_key.verify(signature, text.encode(), self._ecdsa)
        except InvalidSignature:
            return False
        return True

    def describe(self) -> str:
        return f"{self.name} (key ID {self.key_id.hex()})"


def parse_note(envelope: str | bytes) -> SignedNote:
    """The text and signature lines of a note, unverified; raises `NoteError`."""
    if isinstance(envelope, bytes):
        try:
            envelope = envelope.decode()
        except UnicodeDecodeError:
            raise NoteError("malformed note: it is not UTF-8") from None
    if _CONTROL.search(envelope):
        raise NoteError("malformed note: it holds a control character other than newline")
    split = envelope.rfind("\n\n")
    if split < 0:
        raise NoteError("malformed note: no blank line between the text and the signatures")
    text, block = envelope[:split + 1], envelope[split + 2:]
    if not block.endswith("\n"):
        raise NoteError("malformed note: signature lines must each end with a newline")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(f"malformed note: more than {MAX_SIGNATURES} signatures")
    return SignedNote(text, tuple(_signature(line) for line in lines))


def _signature(line: str) -> NoteSignature:
    parts = line.removeprefix(_DASH).split(" ")
    if not line.startswith(_DASH) or len(parts) != 2:
        raise NoteError(f"malformed note signature line {line[:80]!r}: expected "
                        f"'\u2014 <name> <base64>'")
    name, blob = parts
    try:
        _check_name(name)
        raw = base64.b64decode(blob, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise NoteError(f"malformed note signature line of {name!r}: {exc}") from None
    if len(raw) <= KEY_ID_BYTES:
        raise NoteError(f"malformed note signature line of {name!r}: too short")
    return NoteSignature(name, raw[:KEY_ID_BYTES], raw[KEY_ID_BYTES:])


def _check_name(name: str) -> None:
    if not name or "+" in name or _SPACE.search(name):
        raise ValueError(f"a key name is non-empty, without spaces or '+', got {name!r}")


@dataclass(frozen=True)
class OpenedNote:
    note: SignedNote
    verified_by: tuple[NoteVerifier, ...]  # the known keys whose signatures verified


def open_note(envelope: str | bytes | SignedNote, verifiers: Sequence[NoteVerifier]
              ) -> OpenedNote:
    """Verify a note (or one `parse_note` read already) against known keys, as C2SP
    signed-note says; raises `NoteError`."""
    note = envelope if isinstance(envelope, SignedNote) else parse_note(envelope)
    verified: list[NoteVerifier] = []
    for signature in note.signatures:
        known = [v for v in verifiers
                 if v.name == signature.name and v.key_id == signature.key_id]
        if len(known) > 1:
            raise NoteError(f"ambiguous key {known[0].describe()}: given twice")
        if not known:
            continue  # another key's signature: a witness's, or another log's
        if not known[0].verify(note.text, signature.signature):
            raise NoteError(f"note signature by {known[0].describe()} does not verify")
        if known[0] not in verified:
            verified.append(known[0])
    if not verified:
        wanted = ", ".join(v.describe() for v in verifiers) or "no key"
        found = ", ".join(f"{s.name} (key ID {s.key_id.hex()})" for s in note.signatures)
        raise NoteError(f"note has no signature by {wanted}; it is signed by {found}")
    return OpenedNote(note, tuple(verified))


def verify_checkpoint(envelope: str | bytes | SignedNote, verifier: NoteVerifier,
                      origin: str | None = None) -> Checkpoint:
    """The checkpoint a note signed by ``verifier`` holds; raises `CheckpointError`.

    ``origin``, when given, must be the checkpoint's first line (the log's identity).
    """
    checkpoint = Checkpoint.from_body(open_note(envelope, [verifier]).note.text)
    if origin is not None and checkpoint.origin != origin:
        raise NoteError(f"checkpoint origin is {checkpoint.origin!r}, not {origin!r}")
    return checkpoint


def sign_note(text: str, name: str, signer: NoteSigner) -> str:
    """A note of ``text`` with one signature by ``signer`` as ``name``."""
    if not text.endswith("\n") or "\n\n" in "\n" + text:
        raise ValueError("note text must end with a newline and hold no blank line")
    if any(c < " " and c != "\n" for c in text):
        raise ValueError("note text must not hold control characters other than newline")
    return SignedNote(text, (_sign(text, name, signer),)).render()


def cosign_note(envelope: str, name: str, signer: NoteSigner) -> str:
    """``envelope`` with ``signer``'s signature added (replacing one by the same key)."""
    note = parse_note(envelope)
    line = _sign(note.text, name, signer)
    kept = tuple(s for s in note.signatures if (s.name, s.key_id) != (name, line.key_id))
    return SignedNote(note.text, (*kept, line)).render()


def _sign(text: str, name: str, signer: NoteSigner) -> NoteSignature:
    _check_name(name)
    key = signer.public_key
    if not isinstance(key, ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey):
        raise TypeError(f"note keys are Ed25519 or ECDSA, got {type(key).__name__}")
    return NoteSignature(name, key_id(name, key), signer.sign(text.encode()))

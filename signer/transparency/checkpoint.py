"""Signed-note checkpoints, as Rekor v1 writes them and Sigstore clients verify them.

Envelope (https://github.com/transparency-dev/formats/blob/main/log/README.md)::

    <origin>\\n<size>\\n<base64 root hash>\\n[<other line>\\n ...]
    \\n
    — <name> <base64(key hint ‖ DER ECDSA-SHA256 signature over the body)>\\n

The key hint is the first 4 bytes of the log id (SHA-256 of the log key's DER SPKI).

What the peers expect, from their sources:

- Rekor v1 writes origin ``"<host> - <tree id>"`` (``rekor.sigstore.dev - 1193050959916656506``)
  and signs as name ``<host>``; its checkpoints until 2023 also carried a ``Timestamp: <unix ns>``
  line, which clients ignore.
- sigstore-python 4.x (``_internal/rekor/checkpoint.py``) needs exactly one blank line in the
  envelope, picks the signature whose key hint matches the entry's ``logId`` and verifies it
  with that log's key; it reads neither the name nor the origin, and only compares the root.
- sigstore-js (``@sigstore/verify`` ``tlog/checkpoint``, every version we read) parses the same
  way, finds the trusted log by key hint alone, and requires *every* signature line to verify,
  so an envelope carries only our log's signature. The name must be one token (``\\S+``).
  Some verifiers derived from it also look for the name inside the tlog's ``baseUrl``, so we
  sign as the log's ``host[:port]`` from that ``baseUrl``, which is also what Rekor does.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from signer.transparency.sct import check_log_key, log_id

if TYPE_CHECKING:  # the protocol's home is the service's keys module; no import at run time
    from signer.service.keys import KeySigner, PublicKey

_ROOT_SIZE = 32
_SIGNATURE_LINE = re.compile(r"\u2014 (\S+) ([A-Za-z0-9+/=]+)")
# C2SP signed-note: a key name is non-empty, without whitespace or "+".
_NAME = re.compile(r"[^\s+]+")
_SIZE = re.compile(r"0|[1-9][0-9]*")


class CheckpointError(ValueError):
    """A checkpoint is malformed, or not signed by the expected log key."""


@dataclass(frozen=True)
class Checkpoint:
    """The body of a checkpoint: which log, how many leaves, and their root hash."""

    origin: str
    size: int
    root_hash: bytes
    other_lines: tuple[str, ...] = ()

    def body(self) -> str:
        """The signed text, each line ending in a newline."""
        if not self.origin or "\n" in self.origin:
            raise ValueError(f"origin must be one non-empty line, got {self.origin!r}")
        if self.size < 0:
            raise ValueError(f"size must not be negative, got {self.size}")
        if len(self.root_hash) != _ROOT_SIZE:
            raise ValueError(f"root hash must be {_ROOT_SIZE} bytes, got {len(self.root_hash)}")
        for line in self.other_lines:
            # An empty line would end the body early: clients split at the first blank line.
            if not line or "\n" in line:
                raise ValueError(f"extra lines must be non-empty single lines, got {line!r}")
        lines = [self.origin, str(self.size), base64.b64encode(self.root_hash).decode()]
        return "".join(f"{line}\n" for line in [*lines, *self.other_lines])

    @classmethod
    def from_body(cls, body: str) -> Checkpoint:
        """Parse the signed text of a checkpoint; raises `CheckpointError`."""
        if not body.endswith("\n"):
            raise CheckpointError("malformed checkpoint body: it must end with a newline")
        lines = body[:-1].split("\n")
        if len(lines) < 3:
            raise CheckpointError(
                "malformed checkpoint body: needs origin, size and root hash lines"
            )
        origin, size, root, *other = lines
        if not origin:
            raise CheckpointError("malformed checkpoint body: empty origin")
        if not _SIZE.fullmatch(size):
            raise CheckpointError(f"malformed checkpoint body: size {size!r} is not a number")
        try:
            root_hash = base64.b64decode(root, validate=True)
        except binascii.Error:
            raise CheckpointError(
                f"malformed checkpoint body: root hash {root!r} is not base64"
            ) from None
        if len(root_hash) != _ROOT_SIZE:
            raise CheckpointError(
                f"malformed checkpoint body: root hash is {len(root_hash)} bytes, not {_ROOT_SIZE}"
            )
        if any(not line for line in other):
            raise CheckpointError("malformed checkpoint body: empty extra line")
        return cls(origin, int(size), root_hash, tuple(other))


KEY_HINT_BYTES = 4


def key_hint(public_key: PublicKey) -> bytes:
    """The 4 bytes that prefix the log's signature: the start of its log id."""
    return log_id(public_key)[:KEY_HINT_BYTES]


def sign_checkpoint(checkpoint: Checkpoint, name: str, signer: KeySigner) -> str:
    """The signed-note envelope of ``checkpoint``, signed by the log key as ``name``."""
    if not _NAME.fullmatch(name):
        raise ValueError(f"signer name must be one token without '+', got {name!r}")
    public_key = check_log_key(signer.public_key)
    body = checkpoint.body()
    signature = signer.sign(body.encode())
    blob = base64.b64encode(key_hint(public_key) + signature).decode()
    return f"{body}\n\u2014 {name} {blob}\n"


def _split_envelope(envelope: str) -> tuple[str, list[tuple[str, bytes]]]:
    """(body, [(name, key hint ‖ signature)]) of a signed note."""
    # sigstore-python refuses anything but exactly one blank line; so do we.
    if envelope.count("\n\n") != 1:
        raise CheckpointError(
            "malformed checkpoint: it must hold exactly one blank line, between the body "
            "and the signatures"
        )
    body, _, block = envelope.partition("\n\n")
    if not block.endswith("\n"):
        raise CheckpointError("malformed checkpoint: signature lines must end with a newline")
    signatures = []
    for line in block[:-1].split("\n"):
        match = _SIGNATURE_LINE.fullmatch(line)
        if match is None:
            raise CheckpointError(f"malformed checkpoint signature line {line!r}")
        try:
            blob = base64.b64decode(match[2], validate=True)
        except binascii.Error:
            raise CheckpointError(f"checkpoint signature of {match[1]!r} is not base64") from None
        if len(blob) < 5:
            raise CheckpointError(f"checkpoint signature of {match[1]!r} is too short")
        signatures.append((match[1], blob))
    return body + "\n", signatures


def signature_key_hints(envelope: str) -> list[bytes]:
    """The key hints of an envelope's signatures (which log keys signed it), unverified."""
    try:
        return [blob[:KEY_HINT_BYTES] for _, blob in _split_envelope(envelope)[1]]
    except CheckpointError:
        return []


def hinted_log_id(envelope: str, log_ids: Iterable[bytes]) -> bytes | None:
    """Which of ``log_ids`` an envelope's signature names by its key hint, unverified."""
    hints = signature_key_hints(envelope)
    return next((i for i in log_ids if i[:KEY_HINT_BYTES] in hints), None)


def verify_checkpoint(
    envelope: str, name: str, public_key: ec.EllipticCurvePublicKey
) -> Checkpoint:
    """Check that ``name`` signed ``envelope`` with ``public_key``; return its body.

    Raises `CheckpointError` saying whether the envelope is malformed, carries no signature
    by that name and key, carries a bad one, or has a malformed body.
    """
    body, signatures = _split_envelope(envelope)
    hint = key_hint(public_key)
    candidates = [blob[KEY_HINT_BYTES:] for signer, blob in signatures
                  if signer == name and blob[:KEY_HINT_BYTES] == hint]
    if not candidates:
        found = ", ".join(f"{signer} (key hint {blob[:KEY_HINT_BYTES].hex()})"
                          for signer, blob in signatures)
        raise CheckpointError(
            f"checkpoint has no signature by {name} with key hint {hint.hex()}; found {found}"
        )
    for signature in candidates:
        try:
            public_key.verify(signature, body.encode(), ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            continue
        return Checkpoint.from_body(body)
    raise CheckpointError(f"checkpoint signature by {name} does not verify with the log key")

"""Which pinned log key signed a checkpoint, and whether it was allowed to sign then.

A rotated log keeps its tree and changes its key: the trust root lists the log once per key,
each with its validFor, and every checkpoint names its key by the key hint of its signature.
The monitor and the log API both ask here instead of picking a key themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.serialization import load_der_public_key

from signer.sigstore_json import TransparencyLogInstance
from signer.transparency import note
from signer.transparency.checkpoint import (
    Checkpoint,
    CheckpointError,
    hinted_log_id,
    verify_checkpoint,
)
from signer.trust import TrustMaterial
from signer.verification.transparency import log_keys, outside_window


class RetiredLogKey(CheckpointError):
    """The checkpoint verifies, but with a log key the trust root no longer allows then."""

    def __init__(self, log: TransparencyLogInstance, reason: str) -> None:
        super().__init__(f"signed by log key {log.log_id.key_id.hex()}, {reason}")
        self.log = log
        self.reason = reason


def verify_log_checkpoint(envelope: str, trust: TrustMaterial, at: datetime | None = None
                          ) -> tuple[Checkpoint, TransparencyLogInstance]:
    """The checkpoint, and the pinned log key that signed it: any key the trust root lists
    for the log, old or new (rotation changes the key, not the tree). With ``at``, the key
    must also be valid then (its validFor, both ends included), else `RetiredLogKey`."""
    errors = []
    for key, log in log_keys(trust.rekor_v1_tlogs).values():
        try:
            checkpoint = verify_checkpoint(envelope, urlsplit(log.base_url).netloc, key)
        except CheckpointError as exc:
            errors.append(str(exc))
            continue
        outside = None if at is None else outside_window(log, at)
        if outside:
            raise RetiredLogKey(log, outside)
        return checkpoint, log
    raise CheckpointError("; ".join(errors) or "the trust root lists no transparency log")


def verify_tile_checkpoint(envelope: str, trust: TrustMaterial, at: datetime | None = None
                           ) -> tuple[Checkpoint, TransparencyLogInstance]:
    """A Rekor v2 log's checkpoint (a C2SP signed note), and the pinned key that signed it.

    The v2 logs are the trust root's instances with a checkpointKeyId; each signs as the host
    of its baseUrl, which is also the checkpoint's origin (`note.sigstore_log_name`, as
    sigstore-go checks it). With ``at``, the key must be valid then, else `RetiredLogKey`."""
    errors = []
    for log in trust.tlogs:
        if log.checkpoint_key_id is None or log.public_key.raw_bytes is None:
            continue
        key = load_der_public_key(log.public_key.raw_bytes)
        if not isinstance(key, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey):
            continue
        name = note.sigstore_log_name(log.base_url)
        try:
            checkpoint = note.verify_checkpoint(envelope, note.NoteVerifier(name, key), name)
        except CheckpointError as exc:
            errors.append(str(exc))
            continue
        outside = None if at is None else outside_window(log, at)
        if outside:
            raise RetiredLogKey(log, outside)
        return checkpoint, log
    raise CheckpointError("; ".join(errors) or "the trust root lists no Rekor v2 log "
                          "(a tlog with a checkpointKeyId)")


def signing_log_key(envelope: str, tlogs: Sequence[TransparencyLogInstance]) -> bytes | None:
    """The log id of the pinned key a checkpoint names by its key hint (unverified: the
    caller serves it, the client verifies it), or None."""
    return hinted_log_id(envelope, (t.log_id.key_id for t in tlogs))


@dataclass(frozen=True)
class SignedTree:
    """A signed checkpoint the log holds: its size, root and envelope."""

    size: int
    root_hash: bytes
    envelope: str


def inclusion_checkpoint(tlogs: Sequence[TransparencyLogInstance], current_log_id: bytes,
                         head: SignedTree, batch: Callable[[], SignedTree]
                         ) -> tuple[bytes, SignedTree]:
    """The checkpoint to prove an entry's inclusion in, and the log key that signed it.

    The head, signed by the current key, unless the entry's own batch checkpoint (``batch``,
    read only after a rotation) names a retired key: then that one, so that the entry's
    logID, its promise and its checkpoint all name one key.
    """
    if len(tlogs) <= 1:
        return current_log_id, head
    signed = batch()
    signed_by = signing_log_key(signed.envelope, tlogs) or current_log_id
    if signed_by == current_log_id:
        return current_log_id, head
    return signed_by, signed

"""``signer log verify``: a log monitor. The log must only ever grow, signed by a pinned key.

Across a key rotation the tree stays: a checkpoint signed by the old key and one signed by the
new key are compared by a consistency proof like any two others.

Two logs: the Rekor v1 log (`check`: its tree head, consistency proofs from the service) and
the Rekor v2 tile log (`check_tiles`: its C2SP checkpoint; the monitor fetches the tiles and
computes the root and the consistency proof itself, trusting only the signed roots)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from signer.client import Client
from signer.errors import SignerError
from signer.transparency import merkle, tiles
from signer.transparency.checkpoint import Checkpoint, CheckpointError
from signer.trust import TrustMaterial
from signer.verification.checkpoints import (
    RetiredLogKey,
    verify_log_checkpoint,
    verify_tile_checkpoint,
)

Consistency = Callable[[int, int], list[bytes]]  # (old size, new size) → the proof


@dataclass(frozen=True)
class MonitorResult:
    ok: bool
    message: str
    size: int | None = None
    root_hash: bytes | None = None
    previous_size: int | None = None

    def explain(self) -> str:
        return self.message

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "message": self.message, "tree_size": self.size,
                "root_hash": self.root_hash.hex() if self.root_hash else None,
                "previous_size": self.previous_size}


def check(client: Client, trust: TrustMaterial, state: Path) -> MonitorResult:
    info = client.log_info()
    try:
        # The latest checkpoint must come from a key the log may sign with now.
        latest, _ = verify_log_checkpoint(info["signedTreeHead"], trust, datetime.now(UTC))
    except RetiredLogKey as exc:
        return MonitorResult(False, f"the log's latest checkpoint is {exc}; restart the "
                                    "service's replicas after 'signer server rotate-key'")
    except CheckpointError as exc:
        return MonitorResult(False, f"the log's checkpoint is not signed by the pinned log key: "
                                    f"{exc}")
    if (latest.size, latest.root_hash.hex()) != (info["treeSize"], info["rootHash"]):
        return MonitorResult(False, "the log's signed checkpoint disagrees with its tree head")

    def consistency(first: int, last: int) -> list[bytes]:
        return [bytes.fromhex(h) for h in client.log_consistency(first, last)]

    return _extends(state, info["signedTreeHead"], latest,
                    lambda saved: verify_log_checkpoint(saved, trust)[0], consistency)


def check_tiles(client: Client, trust: TrustMaterial, state: Path) -> MonitorResult:
    """The Rekor v2 log: its checkpoint is signed by a pinned v2 key, its tiles hash to the
    checkpoint's root, and it extends the saved checkpoint (a proof from the tiles)."""
    envelope = client.tile_checkpoint()
    try:
        latest, _ = verify_tile_checkpoint(envelope, trust, datetime.now(UTC))
    except RetiredLogKey as exc:
        return MonitorResult(False, f"the v2 log's latest checkpoint is {exc}; restart the "
                                    "service's replicas after 'signer server rotate-key'")
    except CheckpointError as exc:
        return MonitorResult(False, f"the v2 log's checkpoint is not signed by a pinned v2 log "
                                    f"key: {exc}")

    def fetch(tile: tiles.Tile) -> bytes:
        return client.tile(tile.path())

    try:
        root = tiles.root_from_tiles(latest.size, fetch)
    except (tiles.TileError, merkle.MerkleError, SignerError) as exc:
        return MonitorResult(False, f"the v2 log's tiles for size {latest.size} cannot be "
                                    f"read: {exc}")
    if root != latest.root_hash:
        return MonitorResult(False, f"the v2 log's tiles hash to {root.hex()}, not to the "
                                    f"root its checkpoint signs ({latest.root_hash.hex()})")

    def consistency(first: int, last: int) -> list[bytes]:
        return tiles.consistency_proof_from_tiles(first, last, fetch)

    return _extends(state, envelope, latest,
                    lambda saved: verify_tile_checkpoint(saved, trust)[0], consistency)


def _extends(state: Path, envelope: str, latest: Checkpoint,
             verify_saved: Callable[[str], Checkpoint], consistency: Consistency
             ) -> MonitorResult:
    """``latest`` extends the checkpoint saved in ``state``; then it is saved instead."""
    previous = None
    if state.exists():
        try:
            previous = verify_saved(state.read_text())
        except CheckpointError as exc:
            return MonitorResult(False, f"the saved checkpoint {state} does not verify: {exc}")
        try:
            fork = _fork(consistency, previous, latest)
        except (tiles.TileError, merkle.MerkleError, SignerError) as exc:
            fork = f"no consistency proof from size {previous.size} to {latest.size}: {exc}"
        if fork:
            return MonitorResult(False, fork, latest.size, latest.root_hash, previous.size)
    tmp = state.with_name(state.name + ".tmp")
    tmp.write_text(envelope)
    os.replace(tmp, state)  # atomic: a crash never leaves half a checkpoint
    grown = f" (was {previous.size})" if previous else " (first run, saved)"
    return MonitorResult(True, f"log consistent at size {latest.size}{grown}; root "
                               f"{latest.root_hash.hex()}", latest.size, latest.root_hash,
                         previous.size if previous else None)


def _fork(consistency: Consistency, old: Checkpoint, new: Checkpoint) -> str | None:
    if new.size < old.size:
        return f"the log shrank from {old.size} to {new.size} entries: a fork or a rollback"
    if new.size == old.size:
        return None if new.root_hash == old.root_hash else \
            f"two different roots for size {new.size}: the log forked"
    if old.size == 0:
        return None
    proof = consistency(old.size, new.size)
    try:
        merkle.verify_consistency(old.size, new.size, old.root_hash, new.root_hash, proof)
    except merkle.MerkleError as exc:
        return f"the log at size {new.size} does not extend the saved size {old.size}: {exc}"
    return None

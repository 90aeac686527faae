"""``signer log verify``: a log monitor. The log must only ever grow, signed by a pinned key.

Across a key rotation the tree stays: a checkpoint signed by the old key and one signed by the
new key are compared by a consistency proof like any two others."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from signer.client import Client
from signer.transparency import merkle
from signer.transparency.checkpoint import Checkpoint, CheckpointError
from signer.trust import TrustMaterial
from signer.verification.checkpoints import RetiredLogKey, verify_log_checkpoint


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
    previous = None
    if state.exists():
        try:
            previous, _ = verify_log_checkpoint(state.read_text(), trust)
        except CheckpointError as exc:
            return MonitorResult(False, f"the saved checkpoint {state} does not verify: {exc}")
        fork = _fork(client, previous, latest)
        if fork:
            return MonitorResult(False, fork, latest.size, latest.root_hash, previous.size)
    tmp = state.with_name(state.name + ".tmp")
    tmp.write_text(info["signedTreeHead"])
    os.replace(tmp, state)  # atomic: a crash never leaves half a checkpoint
    grown = f" (was {previous.size})" if previous else " (first run, saved)"
    return MonitorResult(True, f"log consistent at size {latest.size}{grown}; root "
                               f"{latest.root_hash.hex()}", latest.size, latest.root_hash,
                         previous.size if previous else None)


def _fork(client: Client, old: Checkpoint, new: Checkpoint) -> str | None:
    if new.size < old.size:
        return f"the log shrank from {old.size} to {new.size} entries: a fork or a rollback"
    if new.size == old.size:
        return None if new.root_hash == old.root_hash else \
            f"two different roots for size {new.size}: the log forked"
    if old.size == 0:
        return None
    proof = [bytes.fromhex(h) for h in client.log_consistency(old.size, new.size)]
    try:
        merkle.verify_consistency(old.size, new.size, old.root_hash, new.root_hash, proof)
    except merkle.MerkleError as exc:
        return f"the log at size {new.size} does not extend the saved size {old.size}: {exc}"
    return None

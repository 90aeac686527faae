"""The service's transparency logs, behind one interface.

Three logs run: ``tlog`` (every signature as a Rekor ``hashedrekord`` entry, and every
revocation) and ``ctlog`` (every precertificate, RFC 6962), both ``rfc6962.Rfc6962Log``: the
tree's nodes in the database, proofs computed by the service; and ``tlog2``, the Rekor v2
log, a ``tiles.TileLog``: the same storage, published as a C2SP tile log (``checkpoint``,
``tile/<L>/<N>``, ``tile/entries/<N>``). ``TransparencyLog`` is what the signing service and
the routes rely on.

Whatever the kind, an appended entry and its caller's rows commit in one transaction, and
every checkpoint extends the one before it (the log never forks).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar

from signer.errors import Unavailable
from signer.service.keys import KeySigner
from signer.service.store import Transaction

T = TypeVar("T")


@dataclass(frozen=True)
class Sequenced:
    """A committed log entry, with the proof of its inclusion in the checkpoint it created."""

    index: int
    integrated_time: int
    body: bytes
    tree_size: int
    root_hash: bytes
    proof: list[bytes]
    checkpoint: str
    signed_entry_timestamp: bytes | None


@dataclass
class LogItem(Generic[T]):
    """Something to log, and the caller's own rows to write in the same transaction."""

    kind: str
    version: str
    body: bytes
    write: Callable[[Transaction, Sequenced], T]
    namespace: str | None = None
    extra: bytes | None = None


def stored_results(tx: Transaction, writes: Sequence[Callable[..., Any]]) -> list[Any]:
    """For each write, what it would return if its rows are stored already (a retried
    upload), else None: asked of each kind of writer whose class has a ``stored(tx,
    writers)``, once for the batch."""
    results: list[Any] = [None] * len(writes)
    for stored, positions in _kinds(writes, "stored"):
        for position, result in zip(positions, stored(tx, [writes[p] for p in positions]),
                                    strict=True):
            results[position] = result
    return results


def prepare_writes(tx: Transaction, writes: Sequence[Callable[..., Any]]) -> None:
    """Before any of a batch's rows is written, each kind of writer whose class has a
    ``prepare(tx, writers)`` does what its rows share in one go: a signature's artifact, for
    example, resolved with the batch's others in one statement instead of one each."""
    for prepare, positions in _kinds(writes, "prepare"):
        prepare(tx, [writes[p] for p in positions])


def _kinds(writes: Sequence[Callable[..., Any]], method: str
           ) -> list[tuple[Callable[..., Any], list[int]]]:
    """(the class's ``method``, the positions of its writes) for each kind of writer that
    has it: writers of one class are asked together."""
    kinds: dict[type, list[int]] = {}
    for position, write in enumerate(writes):
        kinds.setdefault(type(write), []).append(position)
    return [(getattr(kind, method), positions) for kind, positions in kinds.items()
            if hasattr(kind, method)]


class Duplicate(Unavailable):
    """The item's rows conflict with rows already stored (the same upload, raced): nothing
    was logged. Callers that know what the item duplicates look it up; to the others it is a
    retryable 503."""

    def __init__(self, detail: str = "A concurrent write conflicted with this one; nothing "
                 "was stored.", fix: str = "Retry the request.") -> None:
        super().__init__(detail, fix)


@dataclass(frozen=True, slots=True)
class TreeHead:
    """The tree as it is now: its size, root and the checkpoint that signs them."""

    tree_id: int
    size: int
    root_hash: bytes
    checkpoint: str  # the signed note
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class LogEntryRecord:
    idx: int  # the entry's index in the tree
    kind: str
    version: str
    namespace: str | None  # whose entry it is; None for no tenant's
    body: bytes  # the leaf's data, as hashed into the tree
    leaf_hash: bytes
    integrated_time: int  # seconds since the epoch
    signed_entry_timestamp: bytes | None  # the promise, when the log signs entries
    extra: bytes | None  # what the leaf does not hold (a CT entry's precertificate)


@dataclass(frozen=True, slots=True)
class CheckpointRecord:
    """A checkpoint the log signed, at the size it was signed for."""

    size: int
    root_hash: bytes
    envelope: str  # the signed note
    created_at: datetime


class TransparencyLog(Protocol):
    """An append-only Merkle tree (RFC 6962 hashing) with signed checkpoints."""

    name: str  # tlog, ctlog or tlog2
    base_url: str  # where clients find the log (the trust root's baseUrl)
    log_id: bytes  # SHA-256 of the active key (DER); a tile log: its C2SP checkpoint key id
    signer: KeySigner  # the active key

    def create(self) -> None:
        """The empty tree and its first checkpoint (size 0), once."""
        ...

    def append(self, item: LogItem[T],
               also: Sequence[tuple[TransparencyLog, LogItem[Any]]] = ()) -> T:
        """Log one item and write its rows; returns once both are committed. ``also``: items
        of other logs (in the same database) appended and written in the same transaction,
        each before this one's rows."""
        ...

    def resign_head(self) -> bool:
        """Sign the head again if the active key did not sign it (after a key rotation);
        the head's size and root stay. True if it did."""
        ...

    def head(self) -> TreeHead: ...

    def entry(self, index: int) -> LogEntryRecord:
        """Raises NotFound past the end."""
        ...

    def entries_by_leaf(self, leaf_hashes: Sequence[bytes]) -> list[LogEntryRecord]: ...

    def entries_range(self, start: int, end: int) -> list[LogEntryRecord]:
        """Entries ``start`` to ``end``, both included."""
        ...

    def inclusion_proof(self, index: int, size: int) -> list[bytes]: ...

    def consistency_proof(self, first: int, last: int) -> list[bytes]: ...

    def checkpoint_at(self, size: int) -> CheckpointRecord:
        """Raises NotFound for a size the log signed no checkpoint at."""
        ...

    def batch_checkpoint(self, index: int) -> CheckpointRecord:
        """The first checkpoint that includes entry ``index`` (signed by the key that
        signed the entry's promise)."""
        ...

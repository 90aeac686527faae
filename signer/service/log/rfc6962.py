"""A transparency log whose RFC 6962 tree lives in the database, node by node.

Both of today's logs (``tlog``, ``ctlog``) are this kind: the service computes inclusion
and consistency proofs from the stored nodes (the Rekor v1 and RFC 6962 APIs).

One sequencer at a time appends to a tree: the tree's row is locked (``FOR UPDATE`` on
PostgreSQL; SQLite's write transactions are exclusive), so indices stay dense and unique
across replicas, and every checkpoint extends the previous one. Appends are batched (group
commit): one transaction, one checkpoint signature and one fsync for all requests that
arrived meanwhile, and each request's own rows are written in that same transaction. An
item may bring another log's item along (``append(item, also=…)``: a signing's precertificate
for the CT log), appended to that log's tree in the same transaction; the trees' row locks are
taken in one order (this log, then the other), so the two sequencers never deadlock.
"""

from __future__ import annotations

import queue
import secrets
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar, cast
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from signer.errors import NotFound, Unavailable, UsageError
from signer.service.database import KeptWriter, defer, deferring
from signer.service.keys import KeySigner
from signer.service.log import (
    CheckpointRecord,
    Duplicate,
    LogEntryRecord,
    LogItem,
    Sequenced,
    TransparencyLog,
    TreeHead,
    prepare_writes,
    stored_results,
)
from signer.service.schema import log_checkpoints, log_entries, log_nodes, log_trees
from signer.transparency import merkle
from signer.transparency.checkpoint import (
    Checkpoint,
    key_hint,
    sign_checkpoint,
    signature_key_hints,
)
from signer.transparency.rekor import signed_entry_timestamp
from signer.transparency.sct import log_id

if TYPE_CHECKING:  # the handoff runs batches through this module's Rfc6962Log.commit
    from signer.service.log.handoff import Handoff

T = TypeVar("T")
# Requests that arrive while a batch commits join the next one, up to this many.
MAX_BATCH = 256
# A request waits at most this long for its batch; past it the caller gets a 503.
SEQUENCE_TIMEOUT_SECONDS = 30.0


class Pending(NamedTuple):
    """One append of a batch: the item, and other logs' items to append with it."""

    item: LogItem[Any]
    also: tuple[tuple[Rfc6962Log, LogItem[Any]], ...]


# What a batch answers for each of its appends: (True, the writer's result) or (False, the
# error that refused it).
Outcome = tuple[bool, Any]


# Built once: statement construction is a large part of a batch's cost otherwise.
_LOCK_TREE = sa.select(log_trees).where(log_trees.c.name == sa.bindparam("tree")
                                         ).with_for_update()
_MOVE_HEAD = log_trees.update().where(log_trees.c.name == sa.bindparam("tree")).values(
    size=sa.bindparam("new_size"), root_hash=sa.bindparam("new_root"),
    checkpoint=sa.bindparam("new_checkpoint"), updated_at=sa.bindparam("at"))
_INSERT_NODE = log_nodes.insert()
_INSERT_CHECKPOINT = log_checkpoints.insert()
_INSERT_ENTRY = log_entries.insert()
_HEAD = sa.select(log_trees).where(log_trees.c.name == sa.bindparam("tree"))


def _head(row: sa.Row[Any]) -> TreeHead:
    return TreeHead(int(row.tree_id), int(row.size), bytes(row.root_hash), row.checkpoint,
                    row.updated_at)


def _entry(row: sa.Row[Any]) -> LogEntryRecord:
    return LogEntryRecord(
        int(row.idx), row.kind, row.version, row.namespace, bytes(row.body),
        bytes(row.leaf_hash), int(row.integrated_time),
        None if row.signed_entry_timestamp is None else bytes(row.signed_entry_timestamp),
        None if row.extra is None else bytes(row.extra))


def _checkpoint(row: sa.Row[Any]) -> CheckpointRecord:
    return CheckpointRecord(int(row.size), bytes(row.root_hash), row.envelope, row.created_at)


# Committed nodes the sequencer keeps in memory: a node is a perfect subtree's hash, fixed
# once written, so the cache is never stale; it spares a batch the reads of its proofs.
NODE_CACHE_SIZE = 65_536


class TreeNodes:
    """A merkle.NodeReader over the tree's stored nodes, plus nodes not yet committed (the
    tile log reads its tiles through it too)."""

    def __init__(self, tx: sa.Connection, tree: str,
                 committed: Mapping[merkle.NodeKey, bytes] | None = None) -> None:
        self.tx, self.tree = tx, tree
        self.committed = committed or {}
        self.cache: dict[merkle.NodeKey, bytes] = {}  # read or written in this transaction

    def get_nodes(self, keys: Sequence[merkle.NodeKey]) -> Mapping[merkle.NodeKey, bytes]:
        for key in keys:
            if key not in self.cache and key in self.committed:
                self.cache[key] = self.committed[key]
        missing = [k for k in keys if k not in self.cache]
        if missing:
            rows = self.tx.execute(
                sa.select(log_nodes.c.level, log_nodes.c.idx, log_nodes.c.hash).where(
                    log_nodes.c.tree == self.tree,
                    sa.tuple_(log_nodes.c.level, log_nodes.c.idx).in_(missing)))
            for level, idx, digest in rows:
                self.cache[(level, idx)] = bytes(digest)
        return {k: self.cache[k] for k in keys if k in self.cache}


class Rfc6962Log:
    """signer.service.log.TransparencyLog over the log_trees, log_nodes, log_entries and
    log_checkpoints rows of one tree."""

    def __init__(self, name: str, engine: sa.Engine, signer: KeySigner,
                 base_url: str, signs_entries: bool) -> None:
        self.name = name
        self.engine = engine
        self._writer = engine.execution_options(write=True)
        self.signer = signer
        self.log_id = log_id(signer.public_key)
        self.base_url = base_url.rstrip("/")
        # Sigstore clients find the log by its host; Rekor signs checkpoints as the host.
        self.signer_name = urlsplit(self.base_url).netloc
        self.signs_entries = signs_entries
        self._queue: queue.Queue[tuple[Pending, Future[Any]]] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        # Written after each commit by this log's sequencer, or by another log's sequencer
        # that appended to this tree in its transaction (``also``).
        self._committed: dict[merkle.NodeKey, bytes] = {}
        self._committed_lock = threading.Lock()
        self._batches = KeptWriter(engine)  # the sequencer's transactions
        # Set in a worker of 'signer server start': appends go to the sequencer process.
        self.handoff: Handoff | None = None

    # -- creation -----------------------------------------------------------------------------
    def create(self) -> None:
        """The empty tree and its first checkpoint (size 0), once."""
        tree_id = secrets.randbits(62)
        empty = merkle.EMPTY_ROOT
        envelope = self._sign(tree_id, 0, empty)
        with self._writer.begin() as tx:
            if tx.execute(sa.select(log_trees.c.name).where(log_trees.c.name == self.name)
                          ).first():
                return
            now = datetime.now(UTC)
            tx.execute(log_trees.insert().values(name=self.name, tree_id=tree_id, size=0,
                                                 root_hash=empty, checkpoint=envelope,
                                                 updated_at=now))
            tx.execute(log_checkpoints.insert().values(tree=self.name, size=0, root_hash=empty,
                                                       envelope=envelope, created_at=now))

    def origin(self, tree_id: int) -> str:
        return f"{self.signer_name} - {tree_id}"

    def _sign(self, tree_id: int, size: int, root: bytes) -> str:
        return sign_checkpoint(Checkpoint(self.origin(tree_id), size, root), self.signer_name,
                               self.signer)

    def _signed_by_active_key(self, envelope: str) -> bool:
        return key_hint(self.signer.public_key) in signature_key_hints(envelope)

    def resign_head(self) -> bool:
        """Sign the tree head again when the log's active key did not sign it (after a
        rotation).

        Runs under the tree's row lock, like appends; the head's size and root do not change.
        """
        with self.engine.connect() as conn:  # the usual case, at every start: no write lock
            current = conn.execute(sa.select(log_trees.c.checkpoint)
                                   .where(log_trees.c.name == self.name)).scalar()
        if current is None or self._signed_by_active_key(current):
            return False
        with self._writer.begin() as tx:
            head = tx.execute(_LOCK_TREE, {"tree": self.name}).first()
            if head is None or self._signed_by_active_key(head.checkpoint):
                return False
            envelope = self._sign(int(head.tree_id), int(head.size), bytes(head.root_hash))
            tx.execute(log_trees.update().where(log_trees.c.name == self.name).values(
                checkpoint=envelope, updated_at=datetime.now(UTC)))
        return True

    # -- appending ----------------------------------------------------------------------------
    def append(self, item: LogItem[T],
               also: Sequence[tuple[TransparencyLog, LogItem[Any]]] = ()) -> T:
        """Log one item and write its rows; returns once both are committed. ``also``: other
        logs' items (Rfc6962Logs on the same database), in the same transaction."""
        for other, _ in also:
            if not isinstance(other, Rfc6962Log) or other.engine is not self.engine:
                raise TypeError("append(also=…) takes Rfc6962Logs on the same database")
        self.admit(item)
        if self.handoff is not None:
            return cast(T, self.handoff.append(self.name, item, [(o.name, i) for o, i in also]))
        self._ensure_sequencer()
        future: Future[T] = Future()
        self._queue.put((Pending(item, tuple((cast(Rfc6962Log, o), i) for o, i in also)),
                         future))
        try:
            return future.result(timeout=SEQUENCE_TIMEOUT_SECONDS)
        except TimeoutError as exc:
            raise Unavailable("The transparency log is too busy to take the entry now; "
                              "nothing was stored.", "Retry in a few seconds.") from exc

    def _ensure_sequencer(self) -> None:
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._sequence_forever,
                                                name=f"{self.name}-sequencer", daemon=True)
                self._thread.start()

    def admit(self, item: LogItem[Any]) -> None:
        """Refuse an item this log cannot take, before it is queued (a UsageError)."""

    def _sequence_forever(self) -> None:
        """The in-process sequencer (no handoff): batches of what queued meanwhile. The
        sequencer process batches the same way without threads (handoff.serve)."""
        while True:
            batch = [self._queue.get()]
            while len(batch) < MAX_BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            outcomes = self.commit([pending for pending, _ in batch])
            for (_, future), (ok, value) in zip(batch, outcomes, strict=True):
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value)

    def commit(self, batch: Sequence[Pending]) -> list[Outcome]:
        """Append ``batch`` in one transaction (with the items' rows and their companions in
        other logs) and answer each append; only the sequencer calls it."""
        try:
            results, nodes = self._append_batch(batch)
        except IntegrityError:
            if len(batch) > 1:
                # One of these was logged already (the same upload raced on two requests or
                # replicas): retry each on its own, so one's duplicate does not fail the others.
                return [outcome for single in batch for outcome in self.commit([single])]
            return [(False, Duplicate())]
        except Exception as exc:
            return [(False, exc)] * len(batch)
        for log, written in nodes:
            log._remember(written)
        return [(True, result) for result in results]

    def _remember(self, nodes: Mapping[merkle.NodeKey, bytes]) -> None:
        """Nodes of a committed transaction (never before: a rolled-back node is no node)."""
        with self._committed_lock:
            committed = self._committed
            committed.update(nodes)
            if len(committed) > NODE_CACHE_SIZE:
                # Keep the newest half (the right border and recent leaves): dicts keep order.
                self._committed = dict(list(committed.items())[-NODE_CACHE_SIZE // 2:])

    def _append_batch(self, batch: Sequence[Pending]
                      ) -> tuple[list[Any], list[tuple[Rfc6962Log, dict[merkle.NodeKey, bytes]]]]:
        # A retried upload whose rows are stored already is answered with them and not logged
        # again (one query for the batch, not one per request before it queued). Two copies
        # of one upload in the same batch: the unique constraints catch the second (_commit).
        items = [queued.item for queued in batch]
        with self._batches.begin() as tx, deferring(tx):
            results = stored_results(tx, [item.write for item in items])
            fresh = [p for p, result in enumerate(results) if result is None]
            if not fresh:
                return results, []
            entries, nodes = self._append_in(tx, [items[p] for p in fresh])
            written = [(self, nodes)]
            # Other logs' items, grouped by log, appended after this tree (one lock order).
            by_log: dict[int, tuple[Rfc6962Log, list[tuple[int, LogItem[Any]]]]] = {}
            for position in fresh:
                for log, item in batch[position].also:
                    by_log.setdefault(id(log), (log, []))[1].append((position, item))
            companions: dict[int, list[tuple[LogItem[Any], Sequenced]]] = {}
            for log, positioned in by_log.values():
                their_entries, their_nodes = log._append_in(tx, [i for _, i in positioned])
                written.append((log, their_nodes))
                for (position, item), entry in zip(positioned, their_entries, strict=True):
                    companions.setdefault(position, []).append((item, entry))
            prepare_writes(tx, [c.write for cs in companions.values() for c, _ in cs]
                           + [items[p].write for p in fresh])
            for position, entry in zip(fresh, entries, strict=True):
                for companion, their_entry in companions.get(position, ()):
                    companion.write(tx, their_entry)
                results[position] = items[position].write(tx, entry)
        return results, written

    def _append_in(self, tx: sa.Connection, items: Sequence[LogItem[Any]]
                   ) -> tuple[list[Sequenced], dict[merkle.NodeKey, bytes]]:
        """Append to this tree in ``tx``: the critical section of the log, kept to the tree,
        the rows and one signature. The items' own rows are the caller's to write."""
        tree = tx.execute(_LOCK_TREE, {"tree": self.name}).one()
        size = int(tree.size)
        nodes = TreeNodes(tx, self.name, self._committed)
        leaves = [merkle.leaf_hash(item.body) for item in items]
        new_nodes = merkle.append_nodes(size, leaves, nodes)
        # The rows are written at the end of the batch (deferring), all in one round trip.
        for level, idx, digest in new_nodes:
            nodes.cache[(level, idx)] = digest
            defer(tx, _INSERT_NODE, {"tree": self.name, "level": level, "idx": idx,
                                     "hash": digest})
        new_size = size + len(items)
        root = merkle.root_hash(new_size, nodes)
        envelope = self._sign(int(tree.tree_id), new_size, root)
        now = datetime.now(UTC)
        defer(tx, _MOVE_HEAD, {"tree": self.name, "new_size": new_size, "new_root": root,
                               "new_checkpoint": envelope, "at": now})
        defer(tx, _INSERT_CHECKPOINT, {
            "tree": self.name, "size": new_size, "root_hash": root, "envelope": envelope,
            "created_at": now})
        integrated = int(time.time())
        entries = []
        for offset, item in enumerate(items):
            index = size + offset
            promise = signed_entry_timestamp(self.signer, item.body, integrated, self.log_id,
                                             index) if self.signs_entries else None
            defer(tx, _INSERT_ENTRY, {
                "tree": self.name, "idx": index, "kind": item.kind, "version": item.version,
                "namespace": item.namespace, "body": item.body, "leaf_hash": leaves[offset],
                "integrated_time": integrated, "signed_entry_timestamp": promise,
                "extra": item.extra})
            entries.append(Sequenced(index, integrated, item.body, new_size, root,
                                     merkle.inclusion_proof(index, new_size, nodes),
                                     envelope, promise))
        return entries, nodes.cache

    # -- reading ------------------------------------------------------------------------------
    def head(self) -> TreeHead:
        with self.engine.connect() as conn:
            return _head(conn.execute(_HEAD, {"tree": self.name}).one())

    def entry(self, index: int) -> LogEntryRecord:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(log_entries).where(
                log_entries.c.tree == self.name, log_entries.c.idx == index)).first()
        if row is None:
            raise NotFound(f"The {self.name} has no entry {index}.",
                           "Indices run from 0 to the tree size minus one (GET /api/v1/log).")
        return _entry(row)

    def entries_by_leaf(self, leaf_hashes: Sequence[bytes]) -> list[LogEntryRecord]:
        with self.engine.connect() as conn:
            return [_entry(r) for r in conn.execute(sa.select(log_entries).where(
                log_entries.c.tree == self.name, log_entries.c.leaf_hash.in_(leaf_hashes))
                .order_by(log_entries.c.idx))]

    def entries_range(self, start: int, end: int) -> list[LogEntryRecord]:
        with self.engine.connect() as conn:
            return [_entry(r) for r in conn.execute(sa.select(log_entries).where(
                log_entries.c.tree == self.name, log_entries.c.idx >= start,
                log_entries.c.idx <= end).order_by(log_entries.c.idx))]

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        self._check_sizes(index + 1, size)
        with self.engine.connect() as conn:
            return merkle.inclusion_proof(index, size, TreeNodes(conn, self.name))

    def consistency_proof(self, first: int, last: int) -> list[bytes]:
        self._check_sizes(first, last)
        with self.engine.connect() as conn:
            return merkle.consistency_proof(first, last, TreeNodes(conn, self.name))

    def checkpoint_at(self, size: int) -> CheckpointRecord:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(log_checkpoints).where(
                log_checkpoints.c.tree == self.name, log_checkpoints.c.size == size)).first()
        if row is None:
            raise NotFound(f"No {self.name} checkpoint at size {size}.")
        return _checkpoint(row)

    def batch_checkpoint(self, index: int) -> CheckpointRecord:
        """The checkpoint signed with entry ``index``'s batch: the first that includes it,
        signed by the same key as the entry's promise."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(log_checkpoints).where(
                log_checkpoints.c.tree == self.name, log_checkpoints.c.size > index)
                .order_by(log_checkpoints.c.size).limit(1)).first()
        if row is None:
            raise NotFound(f"The {self.name} has no entry {index}.")
        return _checkpoint(row)

    def _check_sizes(self, first: int, last: int) -> None:
        size = self.head().size
        if not 0 <= first <= last <= size:
            raise UsageError(f"Sizes {first}..{last} are outside the tree (size {size}).",
                             "Pass 0 <= firstSize <= lastSize <= the current tree size.")

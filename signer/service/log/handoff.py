"""Log appends handed from the service's workers to one sequencer process, over a Unix socket.

Why a process of its own: a sequencer that shares its worker's interpreter waits for the GIL
after each of its blocking calls (lock, statements, commit) while the worker's request threads
compute, and it does so while holding the database's write lock, so every other writer waits
too (docs/benchmarks.md). In a process with nothing else to run, a batch holds the lock for
about its own CPU time, and one sequencer for all workers makes batches larger.

The sequencer process (`serve`, started by ``signer server start``) holds the same
``Rfc6962Log`` objects a worker does and runs their batches exactly as in a worker (group
commit, the caller's rows in the same transaction). A worker's log, given a `Handoff`, sends
each append there and waits for the answer, which comes only after the commit.

Messages are pickles (an item's ``write`` is a module-level dataclass, not a closure), framed
by a 4-byte length. Only the service's own user can connect: the socket lives in a directory
of mode 0700 made for it; the unpickler also refuses any class outside signer's own modules
and a few value types, so a message can only make the objects the protocol carries.
"""

from __future__ import annotations

import io
import logging
import os
import pickle
import queue
import selectors
import socket
import struct
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy.exc import OperationalError

from signer.errors import SignerError, Unavailable
from signer.service.log import LogItem
from signer.service.log.rfc6962 import MAX_BATCH, Outcome, Pending, Rfc6962Log

log = logging.getLogger(__name__)

# Where ``signer server start`` tells its workers the sequencer listens.
SOCKET_ENV = "SIGNER_SEQUENCER_SOCKET"
_LENGTH = struct.Struct(">I")
# How long a worker waits for a sequencer that is (re)starting before it answers 503.
CONNECT_WAIT_SECONDS = 5.0
CONNECT_RETRY_SECONDS = 0.02
# Longer than a batch may wait (rfc6962.SEQUENCE_TIMEOUT_SECONDS): the sequencer answers first.
ANSWER_TIMEOUT_SECONDS = 40.0
_VALUES = {("datetime", "datetime"), ("datetime", "timezone"), ("datetime", "timedelta"),
           ("builtins", "frozenset"), ("builtins", "set"), ("builtins", "bytearray")}


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        found = _ALLOWED.get((module, name))
        if found is None:
            found = super().find_class(module, name) if _may_load(module, name) else None
            # Only a class signer defines (no function, nothing it imported), or a value type.
            if not (isinstance(found, type) and ((module, name) in _VALUES
                                                 or found.__module__ == module)):
                raise pickle.UnpicklingError(
                    f"{module}.{name} is not part of the sequencer protocol")
            _ALLOWED[(module, name)] = found
        return found


def _may_load(module: str, name: str) -> bool:
    # No dotted name: it would walk from an allowed module into whatever that imported.
    return "." not in name and ((module, name) in _VALUES or module == "signer"
                                or module.startswith("signer."))


_ALLOWED: dict[tuple[str, str], Any] = {}  # what find_class allowed and found, by name


def _frame(message: object) -> bytes:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _LENGTH.pack(len(data)) + data


def _receive(sock: socket.socket) -> Any:
    header = _read(sock, _LENGTH.size)
    if header is None:
        return None
    (length,) = _LENGTH.unpack(header)
    data = _read(sock, length)
    if data is None:
        raise ConnectionError("the peer closed the connection mid-message")
    return _Unpickler(io.BytesIO(data)).load()


def _read(sock: socket.socket, n: int) -> bytes | None:
    parts, got = [], 0
    while got < n:
        chunk = sock.recv(n - got)
        if not chunk:
            if got:
                raise ConnectionError("the peer closed the connection mid-message")
            return None
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


# -- the worker's side -----------------------------------------------------------------------------
class Handoff:
    """A worker's connections to the sequencer process; one per request thread at a time."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._idle: queue.SimpleQueue[socket.socket] = queue.SimpleQueue()

    def append(self, log_name: str, item: LogItem[Any],
               also: Sequence[tuple[str, LogItem[Any]]]) -> Any:
        sock = self._sent(_frame((log_name, item, tuple(also))))
        try:
            answer = _receive(sock)
            if answer is None:
                raise ConnectionError("the sequencer closed the connection")
        except (OSError, pickle.PickleError) as exc:
            sock.close()
            # Sent but not answered: the entry may have committed. A retry is safe, as every
            # append is idempotent by its rows' unique keys (a retry finds the stored entry).
            log.warning("log sequencer connection failed: %s", exc.__class__.__name__)
            raise Unavailable("The transparency log's sequencer did not answer; the entry "
                              "may not have been stored.", "Retry in a few seconds.") from exc
        self._idle.put(sock)
        ok, value = answer
        if ok:
            return value
        kind, detail, fix = value  # the sequencer's refusal, raised here as the same error
        raise kind(detail, fix)

    def _sent(self, frame: bytes) -> socket.socket:
        """A connection that took ``frame``: an idle one, else a new one. An idle connection
        to a sequencer that has since died refuses the write (EPIPE): nothing reached anyone,
        so it is dropped and the next one tried."""
        while True:
            try:
                sock = self._idle.get_nowait()
            except queue.Empty:
                break
            try:
                sock.sendall(frame)
                return sock
            except OSError:
                sock.close()
        sock = self._connect()
        try:
            sock.sendall(frame)
        except OSError as exc:
            sock.close()
            raise Unavailable("The transparency log's sequencer closed the connection; "
                              "nothing was stored.", "Retry in a few seconds.") from exc
        return sock

    def _connect(self) -> socket.socket:
        # While the server starts the sequencer (at start-up, or again after it died) the
        # socket is missing or refuses: wait for it a little rather than refuse at once.
        deadline = time.monotonic() + CONNECT_WAIT_SECONDS
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(ANSWER_TIMEOUT_SECONDS)
            try:
                sock.connect(self.path)
                return sock
            except OSError as exc:
                sock.close()
                if time.monotonic() >= deadline:
                    raise Unavailable(
                        "The transparency log's sequencer is not running; nothing was stored.",
                        "Retry in a few seconds; if it persists, restart 'signer server "
                        "start'.") from exc
            time.sleep(CONNECT_RETRY_SECONDS)

    def reachable(self) -> bool:
        """Whether the sequencer takes connections now (the service's readiness)."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(self.path)
                return True
            except OSError:
                return False


# -- the sequencer's side --------------------------------------------------------------------------
class _Peer:
    """A worker's connection: bytes read but not yet a whole message, answers not yet sent."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.inbox = bytearray()
        self.outbox = bytearray()
        self.closed = False


class _Sequencer:
    """One thread for every connection and every log: read whatever arrived, commit it as
    one batch per log, answer, repeat. What arrives while a batch commits waits in the
    sockets and makes the next batch, so there is no queue between threads to pay for (a
    thread per connection cost a dozen context switches per append)."""

    def __init__(self, listener: socket.socket, logs: Mapping[str, Rfc6962Log]) -> None:
        self.listener, self.logs = listener, logs
        self.selector = selectors.DefaultSelector()
        self.selector.register(listener, selectors.EVENT_READ)
        self.received: list[tuple[_Peer, Any]] = []

    def run_forever(self) -> None:
        while True:
            for key, events in self.selector.select():
                if key.fileobj is self.listener:
                    self._accept()
                    continue
                peer: _Peer = key.data
                if events & selectors.EVENT_READ:
                    self._read(peer)
                if events & selectors.EVENT_WRITE and not peer.closed:
                    self._flush(peer)
            if self.received:
                received, self.received = self.received, []
                self._answer(received, self._commit([message for _, message in received]))

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except BlockingIOError:
                return
            sock.setblocking(False)
            self.selector.register(sock, selectors.EVENT_READ, _Peer(sock))

    def _read(self, peer: _Peer) -> None:
        gone = False
        while not gone:
            try:
                chunk = peer.sock.recv(1 << 20)
            except BlockingIOError:
                break
            except OSError:
                chunk = b""
            gone = not chunk
            peer.inbox += chunk
        self._unframe(peer)
        if gone:  # the worker is gone: what it sent whole still commits, unanswered
            self._close(peer)

    def _unframe(self, peer: _Peer) -> None:
        while len(peer.inbox) >= _LENGTH.size:
            (length,) = _LENGTH.unpack_from(peer.inbox)
            end = _LENGTH.size + length
            if len(peer.inbox) < end:
                break
            try:
                message = _Unpickler(io.BytesIO(peer.inbox[_LENGTH.size:end])).load()
                log_name, item, also = message
            except Exception as exc:  # unreadable, or not the protocol: drop the peer
                log.warning("sequencer: dropped a connection: %s", exc)
                self._close(peer)
                return
            del peer.inbox[:end]
            self.received.append((peer, (log_name, item, tuple(also))))

    def _commit(self, messages: Sequence[tuple[str, LogItem[Any], Sequence[tuple[str, Any]]]]
                ) -> list[Outcome]:
        """Each log's appends as one batch (up to MAX_BATCH), in the order they came."""
        outcomes: list[Outcome | None] = [None] * len(messages)
        by_log: dict[Rfc6962Log, list[tuple[int, Pending]]] = {}
        for position, (log_name, item, also) in enumerate(messages):
            # Admitted already: every append passes Rfc6962Log.append, which admits it.
            try:
                target = self.logs[log_name]
                pending = Pending(item, tuple((self.logs[n], i) for n, i in also))
            except Exception as exc:  # not a log it holds, or not the protocol's shape
                outcomes[position] = (False, exc)
                continue
            by_log.setdefault(target, []).append((position, pending))
        for target, positioned in by_log.items():
            for start in range(0, len(positioned), MAX_BATCH):
                chunk = positioned[start:start + MAX_BATCH]
                done = target.commit([pending for _, pending in chunk])
                for (position, _), outcome in zip(chunk, done, strict=True):
                    outcomes[position] = outcome
        return [outcome for outcome in outcomes if outcome is not None]

    def _answer(self, received: Sequence[tuple[_Peer, Any]], outcomes: Sequence[Outcome]
                ) -> None:
        """Answers in the order each peer asked; every refusal goes back to its worker."""
        for (peer, _), (ok, value) in zip(received, outcomes, strict=True):
            if peer.closed:
                continue
            try:
                frame = _frame((True, value) if ok else (False, _refusal(value)))
            except Exception as exc:
                frame = _frame((False, _refusal(exc)))
            peer.outbox += frame
        for peer in {id(p): p for p, _ in received}.values():
            if not peer.closed:
                self._flush(peer)

    def _flush(self, peer: _Peer) -> None:
        try:
            sent = peer.sock.send(peer.outbox)
        except BlockingIOError:
            sent = 0
        except OSError:
            self._close(peer)
            return
        del peer.outbox[:sent]
        # A worker that reads slowly gets the rest when its socket takes it.
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if peer.outbox else 0)
        self.selector.modify(peer.sock, events, peer)

    def _close(self, peer: _Peer) -> None:
        if not peer.closed:
            peer.closed = True
            self.selector.unregister(peer.sock)
            peer.sock.close()


def _refusal(exc: Exception) -> tuple[type[SignerError], str, str]:
    if isinstance(exc, SignerError):
        return type(exc), exc.detail, exc.fix
    if isinstance(exc, OperationalError):
        return Unavailable, "The database is unavailable; nothing was stored.", \
            "Retry in a few seconds."
    log.error("log append failed in the sequencer", exc_info=exc)
    return Unavailable, "The transparency log could not take the entry; nothing was " \
        "stored.", "Retry in a few seconds; the service's log says why."


# Every request thread of every worker may connect at once.
LISTEN_BACKLOG = 256


def serve(path: Path, logs: Mapping[str, Rfc6962Log], ready: threading.Event | None = None
          ) -> None:
    """Take appends for ``logs`` (by name) on the Unix socket ``path`` until the process
    ends. The socket is made with mode 0600 (and should sit in a private directory)."""
    path.unlink(missing_ok=True)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        listener.bind(str(path))
    finally:
        os.umask(old)
    listener.listen(LISTEN_BACKLOG)
    listener.setblocking(False)
    sequencer = _Sequencer(listener, logs)
    if ready is not None:
        ready.set()
    sequencer.run_forever()

"""Log appends handed to a sequencer over its Unix socket (signer.service.log.handoff): the
same logs and rows as an append in process, the same refusals, and nothing but the
protocol's own objects taken off the socket."""

from __future__ import annotations

import io
import os
import pickle
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from signer.errors import Unavailable
from signer.service import database
from signer.service.keys import KeyFiles
from signer.service.log import Duplicate, LogItem, handoff
from signer.service.log.rfc6962 import Rfc6962Log
from signer.service.signing import CertificateRow, RevocationRow, Revoked

AT = datetime(2026, 12, 6, tzinfo=UTC)


@pytest.fixture
def logs(tmp_path: Path) -> Iterator[dict[str, Rfc6962Log]]:
    engine = database.create_engine(f"sqlite:///{tmp_path / 'signer.db'}")
    database.migrate(engine)
    keys = KeyFiles(tmp_path, None)
    made = {"tlog": Rfc6962Log("tlog", engine, keys.generate("tlog"), "https://s.example",
                               signs_entries=True),
            "ctlog": Rfc6962Log("ctlog", engine, keys.generate("ctlog"),
                                "https://s.example/ct", signs_entries=False)}
    for log in made.values():
        log.create()
    try:
        yield made
    finally:
        engine.dispose()


@pytest.fixture
def socket_path(tmp_path: Path, logs: dict[str, Rfc6962Log]) -> Path:
    path = tmp_path / "sequencer.sock"
    ready = threading.Event()
    threading.Thread(target=handoff.serve, args=(path, logs, ready), daemon=True).start()
    assert ready.wait(10)
    return path


def revocation(n: int) -> LogItem[Revoked]:
    body = b'{"kind":"signer-revocation","n":%d}' % n
    return LogItem("signer-revocation", "0.0.1", body,
                   RevocationRow("ns", f"ghcr.io/acme/app{n}", "refs/tags/v1", "bad", "me", AT),
                   namespace="ns")


def certificate(serial: str) -> LogItem[None]:
    return LogItem("precert", "rfc6962", b"leaf-" + serial.encode(),
                   CertificateRow(serial, "ns", "me", "https://issuer", AT, b"der"),
                   namespace="ns")


def test_appends_from_many_threads_commit_as_in_process(
        logs: dict[str, Rfc6962Log], socket_path: Path) -> None:
    worker_tlog = Rfc6962Log("tlog", logs["tlog"].engine, logs["tlog"].signer,
                             "https://s.example", signs_entries=True)
    worker_ctlog = Rfc6962Log("ctlog", logs["ctlog"].engine, logs["ctlog"].signer,
                              "https://s.example/ct", signs_entries=False)
    to = handoff.Handoff(str(socket_path))
    worker_tlog.handoff = worker_ctlog.handoff = to
    with ThreadPoolExecutor(16) as pool:
        revoked = list(pool.map(lambda n: worker_tlog.append(
            revocation(n), also=[(worker_ctlog, certificate(f"s{n}"))]), range(64)))
    # Dense, unique indexes in both trees; every row of every item, in the same commits.
    assert sorted(r.log_index for r in revoked) == list(range(64))
    assert all(isinstance(r, Revoked) and r.count == 0 for r in revoked)
    assert (logs["tlog"].head().size, logs["ctlog"].head().size) == (64, 64)
    with logs["tlog"].engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM revocations")).scalar() == 64
        assert conn.execute(sa.text("SELECT count(*) FROM certificates")).scalar() == 64
    # The entries' promises and proofs are the sequencer's: the worker reads the same tree.
    entry = worker_tlog.entry(63)
    assert entry.signed_entry_timestamp is not None
    assert worker_tlog.inclusion_proof(0, 64) == logs["tlog"].inclusion_proof(0, 64)


def test_a_duplicate_comes_back_as_a_duplicate(logs: dict[str, Rfc6962Log],
                                               socket_path: Path) -> None:
    to = handoff.Handoff(str(socket_path))
    to.append("ctlog", certificate("same"), ())
    with pytest.raises(Duplicate):
        to.append("ctlog", certificate("same"), ())
    assert logs["ctlog"].head().size == 1  # nothing logged for the refused one
    to.append("ctlog", certificate("other"), ())  # the connection still serves
    assert logs["ctlog"].head().size == 2


def test_a_connection_to_a_sequencer_gone_since_is_dropped_not_a_503(
        logs: dict[str, Rfc6962Log], socket_path: Path) -> None:
    to = handoff.Handoff(str(socket_path))
    for _ in range(3):  # idle connections whose sequencer died (its end closed)
        stale, peer = socket.socketpair()
        peer.close()
        to._idle.put(stale)
    assert to.append("tlog", revocation(1), ()).log_index == 0
    assert to.append("tlog", revocation(2), ()).log_index == 1  # the new one went back idle


def test_no_sequencer_is_a_clear_503(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(handoff, "CONNECT_WAIT_SECONDS", 0.2)  # the wait for one starting
    with pytest.raises(Unavailable) as refused:
        handoff.Handoff(str(tmp_path / "none.sock")).append("tlog", revocation(0), ())
    assert "sequencer is not running" in refused.value.detail
    assert "Retry" in refused.value.fix


class _Runs:
    """A pickle that would run a command when loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return os.system, (f"touch {self.marker}",)


def test_the_sequencer_loads_only_the_protocols_objects(
        tmp_path: Path, logs: dict[str, Rfc6962Log], socket_path: Path) -> None:
    marker = tmp_path / "ran"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(str(socket_path))
        sock.sendall(handoff._frame(("tlog", _Runs(marker), ())))
        assert sock.recv(1) == b""  # dropped, unanswered
    assert not marker.exists()
    assert logs["tlog"].head().size == 0
    with pytest.raises(pickle.UnpicklingError, match="system is not part of the sequencer"):
        handoff._Unpickler(io.BytesIO(pickle.dumps(_Runs(marker)))).load()
    # Nor through a signer module: not a name it imported, not a dotted path, not a function.
    for module, name in [("signer.service.sequencer", "os"),
                         ("signer.service.sequencer", "os.system"),
                         ("signer.service.sequencer", "shutil.rmtree"),
                         ("signer.service.sequencer", "main")]:
        with pytest.raises(pickle.UnpicklingError, match="not part of the sequencer"):
            handoff._Unpickler(io.BytesIO(b"")).find_class(module, name)
    assert not marker.exists()


def test_the_socket_is_the_owners_only(socket_path: Path) -> None:
    assert socket_path.stat().st_mode & 0o777 == 0o600


def test_a_worker_waits_for_a_sequencer_that_is_starting(
        tmp_path: Path, logs: dict[str, Rfc6962Log]) -> None:
    path = tmp_path / "late.sock"
    late = threading.Timer(0.5, handoff.serve, args=(path, logs))
    late.daemon = True
    late.start()
    to = handoff.Handoff(str(path))
    assert not to.reachable()
    assert to.append("tlog", revocation(7), ()).log_index == 0
    assert to.reachable()


def test_a_worker_gone_mid_batch_costs_the_others_nothing(
        logs: dict[str, Rfc6962Log], socket_path: Path) -> None:
    gone, half, waiting = (socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) for _ in range(3))
    for sock in (gone, half, waiting):
        sock.settimeout(10)
        sock.connect(str(socket_path))
    # Two whole appends pipelined, then gone before any answer: both were sent whole, so both
    # commit (the worker's retry would find them). Half a message, then gone: nothing.
    gone.sendall(handoff._frame(("tlog", revocation(1), ()))
                 + handoff._frame(("tlog", revocation(2), ())))
    gone.close()
    half.sendall(handoff._frame(("tlog", revocation(3), ()))[:-5])
    half.close()
    # An append to a log the sequencer does not hold is refused to its worker alone.
    waiting.sendall(handoff._frame(("nolog", revocation(4), ())))
    assert handoff._receive(waiting)[0] is False
    waiting.sendall(handoff._frame(("tlog", revocation(5), ())))
    ok, entry = handoff._receive(waiting)
    waiting.close()
    assert ok and isinstance(entry, Revoked)
    assert logs["tlog"].head().size == 3
    with logs["tlog"].engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT name FROM revocations ORDER BY name")).scalars()
        assert list(stored) == ["ghcr.io/acme/app1", "ghcr.io/acme/app2", "ghcr.io/acme/app5"]

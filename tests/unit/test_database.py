"""SQLite writers queue on a lock file (signer.service.database): held for exactly a write
transaction, however it ends, so the next writer (thread or worker process) goes at once."""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from signer.service import database
from signer.service.database import create_engine


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[sa.Engine]:
    engine = create_engine(f"sqlite:///{tmp_path / 'signer.db'}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
    yield engine
    engine.dispose()


def held(tmp_path: Path) -> bool:
    """Whether another writer holds the lock now (as a second worker process would see it)."""
    fd = os.open(tmp_path / "signer.db-writer.lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops a lock taken here
    return False


def test_the_lock_is_held_for_a_write_transaction_only(engine: sa.Engine, tmp_path: Path
                                                        ) -> None:
    writer = engine.execution_options(write=True)
    with writer.begin() as tx:
        tx.exec_driver_sql("INSERT INTO t VALUES (1)")
        assert held(tmp_path)
    assert not held(tmp_path)
    with engine.begin() as tx:  # a reader takes no lock
        tx.exec_driver_sql("SELECT count(*) FROM t")
        assert not held(tmp_path)


def test_a_failed_write_releases_the_lock(engine: sa.Engine, tmp_path: Path) -> None:
    writer = engine.execution_options(write=True)

    def refused() -> None:
        with writer.begin() as tx:
            tx.exec_driver_sql("INSERT INTO t VALUES (1)")
            raise RuntimeError("the caller's check failed")

    with pytest.raises(RuntimeError):
        refused()
    assert not held(tmp_path)
    with pytest.raises(sa.exc.OperationalError), writer.begin() as tx:
        tx.exec_driver_sql("INSERT INTO missing VALUES (1)")
    assert not held(tmp_path)
    with writer.begin() as tx:  # and the next writer goes
        tx.exec_driver_sql("INSERT INTO t VALUES (2)")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT x FROM t").scalars().all() == [2]


def test_a_writer_that_never_lets_go_is_a_timeout_not_a_hang(
        engine: sa.Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(database, "SQLITE_BUSY_TIMEOUT_MS", 200)
    stuck = os.open(tmp_path / "signer.db-writer.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(stuck, fcntl.LOCK_EX)  # another process's writer, stuck mid-transaction
    writer = engine.execution_options(write=True)
    started = time.monotonic()
    with pytest.raises(sa.exc.OperationalError, match="database is locked"), writer.begin():
        pass
    assert 0.2 <= time.monotonic() - started < 5
    os.close(stuck)
    with writer.begin() as tx:
        tx.exec_driver_sql("INSERT INTO t VALUES (3)")

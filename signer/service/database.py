"""Engines for SQLite (WAL, the embedded default) and PostgreSQL, and schema migrations."""

from __future__ import annotations

import fcntl
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

# The handle the store, the logs and the commands share (one pool per process).
Engine = sa.Engine
MIGRATIONS = Path(__file__).with_name("migrations")
# Several writers (threads, worker processes) wait for SQLite's lock instead of failing.
SQLITE_BUSY_TIMEOUT_MS = 10_000


# -- writes deferred to the end of a log batch ----------------------------------------------------
_DEFERRED = "signer.deferred_writes"
_BATCH = "signer.batch_state"


@contextmanager
def deferring(tx: sa.Connection) -> Iterator[None]:
    """Inside, :func:`defer` gathers rows; on the way out (still in the transaction) each
    statement runs once, as one ``executemany``, and on PostgreSQL all of them in one pipeline:
    a log batch's critical section then waits for one round trip for all its writes instead
    of one per statement (each one a GIL release and a wait for the server's process, which
    on a busy machine is the larger part)."""
    info = tx.info  # the pooled connection's: it outlives the transaction
    info[_DEFERRED] = {}
    info[_BATCH] = {}
    try:
        yield
        flush_deferred(tx)
    finally:
        # Not through tx: after a lost connection, tx.info would raise over the real error.
        info.pop(_DEFERRED, None)
        info.pop(_BATCH, None)


def defer(tx: sa.Connection, statement: sa.Insert | sa.Update, row: dict[str, Any]) -> None:
    """Run ``statement`` with ``row`` now, or at the end of the enclosing :func:`deferring`
    block, in the order the statements were first deferred."""
    pending: dict[int, tuple[sa.Insert | sa.Update, list[dict[str, Any]]]] | None = (
        tx.info.get(_DEFERRED))
    if pending is None:
        tx.execute(statement, row)
        return
    pending.setdefault(id(statement), (statement, []))[1].append(row)


def flush_deferred(tx: sa.Connection) -> None:
    """Run the rows deferred so far (before a statement that reads what they write)."""
    pending: dict[int, tuple[sa.Insert | sa.Update, list[dict[str, Any]]]] | None = (
        tx.info.get(_DEFERRED))
    if not pending:
        return
    with _pipeline(tx):
        for statement, rows in pending.values():
            tx.execute(statement, rows)
    pending.clear()


def batch_state(tx: sa.Connection) -> dict[str, Any] | None:
    """A dict that lives as long as the enclosing :func:`deferring` block (None outside one):
    what the writers of one batch share, such as the artifacts they resolved together."""
    state: dict[str, Any] | None = tx.info.get(_BATCH)
    return state


@contextmanager
def _pipeline(tx: sa.Connection) -> Iterator[None]:
    """psycopg's pipeline mode: statements are sent without waiting for each one's result."""
    if tx.dialect.name != "postgresql":
        yield
        return
    import psycopg  # here, not at the top: 0.1 s more at every start on SQLite

    try:
        with tx.connection.dbapi_connection.pipeline():  # type: ignore[union-attr]
            yield
    except psycopg.Error as exc:
        # The last statements' errors surface at the pipeline's sync, past SQLAlchemy, which
        # would have wrapped them: wrap them as it does (a duplicate is an IntegrityError).
        raise sa.exc.DBAPIError.instance("(deferred writes, pipelined)", None, exc,
                                         psycopg.Error) from exc


# A sequencer idle this long has its kept connection checked again (the pool's pre-ping).
KEEP_IDLE_SECONDS = 1.0


class KeptWriter:
    """Write transactions, one after another (a log's sequencer). On PostgreSQL on a
    connection kept while they keep coming: the pool checks each connection it hands out
    (a round trip), which is then spent once per busy spell instead of once per
    transaction; a connection the server dropped meanwhile fails the one transaction that
    finds it and is replaced. SQLite's writer lock goes with the pool's checkout, so there
    each transaction takes a connection of its own."""

    def __init__(self, engine: sa.Engine) -> None:
        self._writer = engine.execution_options(write=True)
        self._keeps = engine.dialect.name != "sqlite"
        self._kept: sa.Connection | None = None
        self._kept_at = 0.0

    @contextmanager
    def begin(self) -> Iterator[sa.Connection]:
        if not self._keeps:
            with self._writer.begin() as tx:
                yield tx
            return
        conn = self._kept
        if conn is None or time.monotonic() - self._kept_at > KEEP_IDLE_SECONDS:
            if conn is not None:
                conn.close()
            conn = self._kept = self._writer.connect()
        try:
            with conn.begin():
                yield conn
        except BaseException:
            self._kept = None  # whatever failed, the next transaction starts from a checked one
            conn.close()
            raise
        finally:
            self._kept_at = time.monotonic()


def database_url(url: str | None, data_dir: Path) -> str:
    if not url:
        return f"sqlite:///{data_dir / 'signer.db'}"
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def create_engine(url: str, pool_size: int = 8) -> sa.Engine:
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 10})

        first = [True]

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            # We issue BEGIN ourselves (below), so the driver must not.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            # NORMAL with WAL is durable against process crashes, which is what we promise;
            # FULL would also survive power loss at a large cost per commit.
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            if first[0]:  # once per engine: at service start-up, for each command
                first[0] = False
                _sqlite_statistics(cursor)
            cursor.close()

        lock_path = _writer_lock_path(url)

        @sa.event.listens_for(engine, "begin")
        def _begin(connection: sa.Connection) -> None:
            # A writing transaction takes the lock at BEGIN: a deferred one that reads first
            # could find, at its first write, that another writer got there (SQLITE_BUSY
            # without waiting). Readers stay deferred and never block under WAL.
            write = connection.get_execution_options().get("write", False)
            if write and lock_path is not None:
                connection.info[_WRITER_LOCK] = _take_writer_lock(lock_path)
            connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

        for event in ("checkin", "invalidate", "close", "detach"):
            sa.event.listen(engine.pool, event, _release_writer_lock)

        return engine
    engine = sa.create_engine(
        url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True, pool_recycle=1800
    )
    # A deferred batch's rows as one multi-row INSERT per table: psycopg's executemany sends
    # and the server executes each row on its own (for a log batch, ~4x the server's CPU and
    # ~1.3x the client's; docs/benchmarks.md, sixth round).
    engine.dialect.use_insertmanyvalues_wo_returning = True
    return engine


# Writers queue on a lock file before BEGIN IMMEDIATE. SQLite's own wait for its write lock
# polls with sleeps of up to 100 ms, so a second worker process's sequencer kept missing the
# moment the first committed; this one looks again every half millisecond. It gives up after
# SQLite's busy timeout, as SQLite would (a 503), so a stuck writer never hangs the others.
_WRITER_LOCK = "signer.writer_lock"
WRITER_LOCK_POLL_S = 0.0005


def _writer_lock_path(url: str) -> Path | None:
    database = sa.engine.make_url(url).database
    return None if not database or database == ":memory:" else Path(database + "-writer.lock")


def _take_writer_lock(path: Path) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fd
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise sa.exc.OperationalError(  # what SQLite's own timeout raises
                        "BEGIN IMMEDIATE", None,
                        sqlite3.OperationalError("database is locked")) from None
                time.sleep(WRITER_LOCK_POLL_S)
    except BaseException:
        os.close(fd)
        raise


def _release_writer_lock(_dbapi_connection: Any, record: Any, *_: Any) -> None:
    """After the transaction, whatever ended it: closing the descriptor drops the flock."""
    fd = record.info.pop(_WRITER_LOCK, None) if record is not None else None
    if fd is not None:
        os.close(fd)


# Rows ANALYZE samples per index (SQLite >= 3.32): statistics in milliseconds at any size.
SQLITE_ANALYSIS_LIMIT = 1000


def _sqlite_statistics(cursor: Any, analyze: bool = False) -> None:
    """Planner statistics: ANALYZE (sampled) when asked or when there are none yet, else
    ``PRAGMA optimize`` (which re-analyzes what changed a lot). Best effort: a database
    that cannot be written to now still serves."""
    try:
        if not analyze:
            cursor.execute("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'")
            analyze = cursor.fetchone() is None
        if analyze:
            cursor.execute(f"PRAGMA analysis_limit={SQLITE_ANALYSIS_LIMIT}")
            cursor.execute("ANALYZE")
        else:
            cursor.execute("PRAGMA optimize")
    except sqlite3.Error:
        pass


def _config(connection: sa.Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def migrate(engine: sa.Engine) -> str:
    """Upgrade the schema in place to the newest revision; returns it."""
    with engine.begin() as connection:
        command.upgrade(_config(connection), "head")
    if engine.dialect.name == "sqlite":  # statistics for the indexes as they now are
        with engine.connect() as connection:
            cursor = connection.connection.cursor()
            _sqlite_statistics(cursor, analyze=True)
            cursor.close()
    return head_revision()


def head_revision() -> str:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head


def current_revision(engine: sa.Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()

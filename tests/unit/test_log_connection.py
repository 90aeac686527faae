"""A log batch on PostgreSQL: the connection its sequencer keeps between batches
(database.KeptWriter), where a connection the server dropped costs at most the batch that found
it, and none after an idle spell, when the pool checks it again first; and its pipelined
writes, whose errors are the ones SQLAlchemy raises."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa

from signer.service import database
from signer.service.keys import KeyFiles
from signer.service.log import Duplicate
from signer.service.log.rfc6962 import Rfc6962Log
from tests.service_process import database as fresh_database
from tests.unit.test_handoff import certificate, revocation

pytestmark = pytest.mark.postgres


@pytest.fixture
def tlog(tmp_path: Path) -> Iterator[tuple[Rfc6962Log, str]]:
    with fresh_database("postgresql") as url:
        assert url is not None
        engine = database.create_engine(database.database_url(url, tmp_path))
        database.migrate(engine)
        log = Rfc6962Log("tlog", engine, KeyFiles(tmp_path, None).generate("tlog"),
                         "https://s.example", signs_entries=True)
        log.create()
        try:
            yield log, url
        finally:
            engine.dispose()


def _drop_other_connections(url: str) -> int:
    """What a restart of the server does to the sequencer's connection."""
    admin, name = url.rsplit("/", 1)
    with psycopg.connect(admin + "/postgres", autocommit=True) as conn:
        return len(conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                "WHERE datname = %s", (name,)).fetchall())


def test_after_an_idle_spell_a_dropped_connection_costs_nothing(
        tlog: tuple[Rfc6962Log, str], monkeypatch: pytest.MonkeyPatch) -> None:
    log, url = tlog
    log.append(revocation(0))
    monkeypatch.setattr(database, "KEEP_IDLE_SECONDS", 0.0)  # every pause counts as idle
    assert _drop_other_connections(url) >= 1
    assert log.append(revocation(1)).log_index == 1
    assert log.head().size == 2


def test_while_busy_a_dropped_connection_fails_one_batch_and_is_replaced(
        tlog: tuple[Rfc6962Log, str], monkeypatch: pytest.MonkeyPatch) -> None:
    log, url = tlog
    log.append(revocation(0))
    monkeypatch.setattr(database, "KEEP_IDLE_SECONDS", 3600.0)  # never checked again
    assert _drop_other_connections(url) >= 1
    with pytest.raises(sa.exc.OperationalError):
        log.append(revocation(1))
    # Nothing of the failed batch was written; the next one runs on a new connection.
    assert log.append(revocation(2)).log_index == 1
    assert log.head().size == 2


def test_a_conflict_in_the_pipelined_writes_is_a_duplicate_and_stores_nothing(
        tlog: tuple[Rfc6962Log, str]) -> None:
    """The certificate row is among the last writes of the pipeline, so its unique violation
    surfaces at the pipeline's sync, outside SQLAlchemy: still a Duplicate (a 200 with the
    stored entry for its caller), not a 503 for the whole batch."""
    log, _ = tlog
    log.append(certificate("s1"))
    with pytest.raises(Duplicate):
        log.append(certificate("s1"))
    assert log.head().size == 1
    assert log.append(certificate("s2")) is None and log.head().size == 2

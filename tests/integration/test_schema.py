"""The migrations build exactly the schema ``signer.service.schema`` declares, on SQLite and
PostgreSQL, and the lookups the service makes use the indexes meant for them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from signer.service import database
from signer.service.schema import artifacts, metadata, signatures
from signer.service.store import Store
from tests.service_process import database as fresh_database

pytestmark = pytest.mark.integration


@pytest.fixture
def engine(backend: str, tmp_path: Path) -> Iterator[sa.Engine]:
    with fresh_database(backend) as url:
        engine = database.create_engine(database.database_url(url, tmp_path))
        try:
            yield engine
        finally:
            engine.dispose()


def differences(engine: sa.Engine) -> list[object]:
    with engine.connect() as connection:
        return list(compare_metadata(MigrationContext.configure(connection), metadata))


def ref_index_columns(engine: sa.Engine) -> list[str | None]:
    indexes = sa.inspect(engine).get_indexes("signatures")
    return next(i["column_names"] for i in indexes if i["name"] == "ix_signatures_ref")


def test_migrated_schema_is_the_declared_schema(engine: sa.Engine) -> None:
    database.migrate(engine)
    assert differences(engine) == []
    assert ref_index_columns(engine) == ["namespace", "name", "digest", "created_at", "id"]


def test_0004_goes_down_and_up_again(engine: sa.Engine) -> None:
    database.migrate(engine)
    with engine.begin() as connection:
        command.downgrade(database._config(connection), "0003")
    assert ref_index_columns(engine) == ["namespace", "name", "digest"]
    database.migrate(engine)
    assert differences(engine) == []


def test_0005_issuers_goes_down_and_up_again(engine: sa.Engine) -> None:
    database.migrate(engine)
    with engine.begin() as connection:
        command.downgrade(database._config(connection), "0004")
    assert "issuers" not in sa.inspect(engine).get_table_names()
    database.migrate(engine)
    assert differences(engine) == []
    store = Store(engine)
    store.add_issuer("https://gitlab.example.com", "gitlab", None, False, "apikey:*/admin")
    [row] = store.list_issuers()
    assert (row.url, row.kind, row.server_url, row.allow_http) == (
        "https://gitlab.example.com", "gitlab", None, False)


def test_0006_attestations_goes_down_and_up_again(engine: sa.Engine) -> None:
    database.migrate(engine)
    with engine.begin() as connection:
        command.downgrade(database._config(connection), "0005")
    assert "attestations" not in sa.inspect(engine).get_table_names()
    database.migrate(engine)
    assert differences(engine) == []
    assert "attestations" in sa.inspect(engine).get_table_names()


def test_sqlite_lookup_by_ref_uses_the_ref_index(tmp_path: Path) -> None:
    """Store.signatures_for is one range of ix_signatures_ref, in order: no scan of the
    namespace, no sort (what made lookups linear in the namespace's size). SQLite only: its
    planner was the one that chose the namespace scan."""
    engine = database.create_engine(f"sqlite:///{tmp_path / 'plan.db'}")
    database.migrate(engine)
    store = Store(engine)
    captured: list[str] = []

    @sa.event.listens_for(engine, "before_cursor_execute")
    def capture(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        if "FROM signatures" in statement:
            captured.append(statement)

    store.signatures_for("ns", "ghcr.io/acme/app", "ab" * 32)
    sa.event.remove(engine, "before_cursor_execute", capture)
    with engine.connect() as connection:
        plan = " | ".join(row[-1] for row in connection.exec_driver_sql(
            "EXPLAIN QUERY PLAN " + captured[0], ("ns", "ghcr.io/acme/app", "ab" * 32)))
    assert "USING INDEX ix_signatures_ref" in plan, plan
    assert "TEMP B-TREE" not in plan, plan


def _signature_row(signature_id: str, log_index: int | None) -> dict[str, object]:
    at = datetime.now(UTC)
    return {"id": signature_id, "namespace": "ns", "artifact_id": "a1", "name": "app",
            "digest": "ab" * 32, "signature_sha256": signature_id * 16, "identity": "me",
            "issuer": "https://issuer", "source_repository_ref": None, "provenance": {},
            "certificate_serial": "1", "signed_at": at, "created_at": at, "bundle": "{}",
            "log_index": log_index, "revocation_id": None}


def test_0007_log_tree_goes_down_and_up_again(engine: sa.Engine) -> None:
    """Rows logged before 0007 are the v1 log's; going down forgets a v2 row's index, which
    the older release would read as a v1 entry's."""
    database.migrate(engine)
    with engine.begin() as connection:
        command.downgrade(database._config(connection), "0006")
    assert "log_tree" not in {c["name"] for c in sa.inspect(engine).get_columns("signatures")}
    old = sa.Table("signatures", sa.MetaData(), autoload_with=engine)
    at = datetime.now(UTC)
    with engine.begin() as connection:
        connection.execute(artifacts.insert().values(
            id="a1", namespace="ns", name="app", digest="ab" * 32, created_at=at,
            updated_at=at, signature_count=2, revoked_count=0))
        connection.execute(old.insert(), [_signature_row("s1", 7), _signature_row("s2", None)])
    database.migrate(engine)
    assert differences(engine) == []
    with engine.begin() as connection:
        rows = dict(connection.execute(sa.select(signatures.c.id, signatures.c.log_tree)).all())
        assert rows == {"s1": "tlog", "s2": None}
        connection.execute(signatures.update().where(signatures.c.id == "s1").values(
            log_tree="tlog2"))
        command.downgrade(database._config(connection), "0006")
    with engine.connect() as connection:
        assert connection.execute(sa.select(old.c.log_index).where(old.c.id == "s1")
                                  ).scalar() is None

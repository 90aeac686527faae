"""The migrations build exactly the schema ``signer.service.schema`` declares, on SQLite and
PostgreSQL, and the lookups the service makes use the indexes meant for them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from signer.service import database
from signer.service.schema import metadata
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

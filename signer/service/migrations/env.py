"""Alembic environment: migrations run on the connection the service hands over."""

from __future__ import annotations

from alembic import context

from signer.service.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("Run migrations through 'signer server migrate'.")
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()

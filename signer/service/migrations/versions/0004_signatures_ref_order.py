"""signatures ref index also orders

ix_signatures_ref (namespace, name, digest) becomes (namespace, name, digest, created_at, id):
Store.signatures_for filters on the first three and orders by the last two, so one index
range answers it in order. Without it SQLite's planner picked ix_signatures_created and
scanned the namespace (seconds at a million signatures).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('signatures', schema=None) as batch_op:
        batch_op.drop_index('ix_signatures_ref')
        batch_op.create_index('ix_signatures_ref',
                              ['namespace', 'name', 'digest', 'created_at', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('signatures', schema=None) as batch_op:
        batch_op.drop_index('ix_signatures_ref')
        batch_op.create_index('ix_signatures_ref', ['namespace', 'name', 'digest'], unique=False)

"""log_tree: which log a signature's or attestation's log_index is in

Entries logged through the Rekor v2 API (``POST /api/v2/log/entries``) live in the tile log
``tlog2``, whose indexes run from 0 like the v1 log's: an index alone no longer names an
entry. Every row logged so far is in the v1 log ``tlog``; rows from before the log existed
(log_index NULL) keep log_tree NULL.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

TABLES = ('signatures', 'attestations')


def _rows(table: str) -> sa.TableClause:
    return sa.table(table, sa.column('log_tree', sa.String), sa.column('log_index', sa.BigInteger))


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('log_tree', sa.String(length=16), nullable=True))
        rows = _rows(table)
        op.execute(rows.update().where(rows.c.log_index.is_not(None)).values(log_tree='tlog'))


def downgrade() -> None:
    for table in TABLES:
        # The older release reads every log_index as the v1 log's: a v2 entry's would name
        # another entry there, so it is dropped (the index stays in the row's bundle).
        rows = _rows(table)
        op.execute(rows.update().where(rows.c.log_tree == 'tlog2').values(log_index=None))
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column('log_tree')

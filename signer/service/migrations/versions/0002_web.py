"""web page: sign-in sessions, artifact indexes for the source-repository filter

Revision ID: 0002_web
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import signer.service.schema

revision = '0002_web'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('web_sessions',
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('namespace', sa.String(length=64), nullable=False),
    sa.Column('api_key_id', sa.String(length=32), nullable=False),
    sa.Column('csrf_token', sa.String(length=64), nullable=False),
    sa.Column('created_at', signer.service.schema.UTCDateTime(), nullable=False),
    sa.Column('expires_at', signer.service.schema.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['api_key_id'], ['api_keys.id'], ),
    sa.PrimaryKeyConstraint('token_hash')
    )
    with op.batch_alter_table('web_sessions', schema=None) as batch_op:
        batch_op.create_index('ix_web_sessions_expires', ['expires_at'], unique=False)

    with op.batch_alter_table('artifacts', schema=None) as batch_op:
        batch_op.create_index('ix_artifacts_source_created',
                              ['namespace', 'source_repository', 'created_at', 'id'], unique=False)
        batch_op.create_index('ix_artifacts_source_updated',
                              ['namespace', 'source_repository', 'updated_at', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('artifacts', schema=None) as batch_op:
        batch_op.drop_index('ix_artifacts_source_updated')
        batch_op.drop_index('ix_artifacts_source_created')

    with op.batch_alter_table('web_sessions', schema=None) as batch_op:
        batch_op.drop_index('ix_web_sessions_expires')

    op.drop_table('web_sessions')

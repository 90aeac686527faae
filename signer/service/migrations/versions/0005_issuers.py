"""issuers: the kinds operators declare

One row per declared OIDC issuer (signer issuer add): its kind (github, gitlab, buildkite,
generic) decides how its tokens' claims become provenance; undeclared issuers are
well-known or generic (signer.issuers).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import signer.service.schema

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('issuers',
    sa.Column('url', sa.String(length=512), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('server_url', sa.String(length=512), nullable=True),
    sa.Column('allow_http', sa.Boolean(), nullable=False),
    sa.Column('created_at', signer.service.schema.UTCDateTime(), nullable=False),
    sa.Column('created_by', sa.String(length=256), nullable=False),
    sa.PrimaryKeyConstraint('url')
    )


def downgrade() -> None:
    op.drop_table('issuers')

"""attestations: in-toto statements in DSSE envelopes, beside the signatures

One row per attestation (signer artifact attest): the artifact it is about, its predicate
type, its bundle (which holds the envelope, so the predicate is stored once) and, like a
signature, the ref it was built from and its revocation.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import signer.service.schema

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('attestations',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('namespace', sa.String(length=64), nullable=False),
    sa.Column('artifact_id', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=512), nullable=False),
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('predicate_type', sa.String(length=512), nullable=False),
    sa.Column('signature_sha256', sa.String(length=64), nullable=False),
    sa.Column('payload_sha256', sa.String(length=64), nullable=False),
    sa.Column('payload_size', sa.Integer(), nullable=False),
    sa.Column('identity', sa.String(length=1024), nullable=False),
    sa.Column('issuer', sa.String(length=512), nullable=False),
    sa.Column('source_repository_ref', sa.String(length=512), nullable=True),
    sa.Column('provenance', sa.JSON(), nullable=False),
    sa.Column('certificate_serial', sa.String(length=48), nullable=False),
    sa.Column('signed_at', signer.service.schema.UTCDateTime(), nullable=False),
    sa.Column('created_at', signer.service.schema.UTCDateTime(), nullable=False),
    sa.Column('bundle', sa.Text(), nullable=False),
    sa.Column('log_index', sa.BigInteger(), nullable=True),
    sa.Column('revocation_id', sa.String(length=32), nullable=True),
    sa.ForeignKeyConstraint(['artifact_id'], ['artifacts.id'], ),
    sa.ForeignKeyConstraint(['revocation_id'], ['revocations.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('namespace', 'name', 'digest', 'signature_sha256',
                        name='uq_attestations')
    )
    op.create_index('ix_attestations_artifact', 'attestations', ['artifact_id', 'created_at'],
                    unique=False)
    op.create_index('ix_attestations_ref', 'attestations',
                    ['namespace', 'name', 'digest', 'created_at', 'id'], unique=False)
    op.create_index('ix_attestations_source_ref', 'attestations',
                    ['namespace', 'name', 'source_repository_ref'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_attestations_source_ref', table_name='attestations')
    op.drop_index('ix_attestations_ref', table_name='attestations')
    op.drop_index('ix_attestations_artifact', table_name='attestations')
    op.drop_table('attestations')

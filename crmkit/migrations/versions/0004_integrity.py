"""integrity: customer claims, activity idempotency keys, customer country, merge history, outbox backoff

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import crmkit.db.types


revision: str = '0004'
down_revision: str | Sequence[str] | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def upgrade() -> None:
    op.create_table('crm_customer_claims',
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('value', sa.String(length=320), nullable=False),
    sa.Column('customer_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.CheckConstraint("kind IN ('email', 'phone')", name=op.f('ck_crm_customer_claims_kind_valid')),
    sa.PrimaryKeyConstraint('kind', 'value', name=op.f('pk_crm_customer_claims'))
    )
    op.create_index('ix_crm_customer_claims_customer_id', 'crm_customer_claims', ['customer_id'], unique=False)
    op.add_column('crm_customers', sa.Column('country', sa.String(length=2), nullable=True))
    op.add_column('crm_activities', sa.Column('source', sa.String(length=100), nullable=True))
    op.add_column('crm_activities', sa.Column('external_id', sa.String(length=200), nullable=True))
    op.create_index(
        'uq_crm_activities_source_key', 'crm_activities', ['customer_id', 'source', 'external_id'], unique=True
    )
    op.add_column('crm_merges', sa.Column('history', JSON, nullable=False, server_default=sa.text("'[]'")))
    op.add_column('crm_outbox', sa.Column('next_attempt_at', crmkit.db.types.UTCDateTime(), nullable=True))
    op.add_column('crm_outbox', sa.Column('claimed_until', crmkit.db.types.UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('crm_outbox') as batch:
        batch.drop_column('claimed_until')
        batch.drop_column('next_attempt_at')
    with op.batch_alter_table('crm_merges') as batch:
        batch.drop_column('history')
    op.drop_index('uq_crm_activities_source_key', table_name='crm_activities')
    with op.batch_alter_table('crm_activities') as batch:
        batch.drop_column('external_id')
        batch.drop_column('source')
    with op.batch_alter_table('crm_customers') as batch:
        batch.drop_column('country')
    op.drop_index('ix_crm_customer_claims_customer_id', table_name='crm_customer_claims')
    op.drop_table('crm_customer_claims')

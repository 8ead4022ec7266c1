"""trigger firings, runs and outbox

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import crmkit.db.types
from sqlalchemy.dialects import postgresql

revision: str = '0002'
down_revision: str | Sequence[str] | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('crm_trigger_runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('as_of', crmkit.db.types.UTCDateTime(), nullable=False),
    sa.Column('started_at', crmkit.db.types.UTCDateTime(), nullable=False),
    sa.Column('finished_at', crmkit.db.types.UTCDateTime(), nullable=True),
    sa.Column('summary', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_crm_trigger_runs'))
    )
    op.create_table('crm_outbox',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('channel', sa.String(length=20), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=True),
    sa.Column('subject', sa.String(length=300), nullable=True),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('source', sa.String(length=100), nullable=True),
    sa.Column('source_id', sa.String(length=100), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', crmkit.db.types.UTCDateTime(), nullable=False),
    sa.Column('sent_at', crmkit.db.types.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['customer_id'], ['crm_customers.id'], name=op.f('fk_crm_outbox_customer_id_crm_customers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_crm_outbox'))
    )
    with op.batch_alter_table('crm_outbox', schema=None) as batch_op:
        batch_op.create_index('ix_crm_outbox_status_id', ['status', 'id'], unique=False)

    op.create_table('crm_trigger_firings',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('trigger', sa.String(length=100), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('window_key', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('as_of', crmkit.db.types.UTCDateTime(), nullable=False),
    sa.Column('goal_until', crmkit.db.types.UTCDateTime(), nullable=True),
    sa.Column('held_out', sa.Boolean(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['customer_id'], ['crm_customers.id'], name=op.f('fk_crm_trigger_firings_customer_id_crm_customers'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['run_id'], ['crm_trigger_runs.id'], name=op.f('fk_crm_trigger_firings_run_id_crm_trigger_runs'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_crm_trigger_firings')),
    sa.UniqueConstraint('trigger', 'customer_id', 'window_key', name=op.f('uq_crm_trigger_firings_trigger'))
    )
    with op.batch_alter_table('crm_trigger_firings', schema=None) as batch_op:
        batch_op.create_index('ix_crm_trigger_firings_run_id', ['run_id', 'trigger'], unique=False)
        batch_op.create_index('ix_crm_trigger_firings_trigger_customer_as_of', ['trigger', 'customer_id', 'as_of'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('crm_trigger_firings', schema=None) as batch_op:
        batch_op.drop_index('ix_crm_trigger_firings_trigger_customer_as_of')
        batch_op.drop_index('ix_crm_trigger_firings_run_id')

    op.drop_table('crm_trigger_firings')
    with op.batch_alter_table('crm_outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_crm_outbox_status_id')

    op.drop_table('crm_outbox')
    op.drop_table('crm_trigger_runs')

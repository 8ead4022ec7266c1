"""contact policy: consents with their history, the policy's decision on each firing, a message's purpose

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0009'
down_revision: str | Sequence[str] | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('crm_consents',
    sa.Column('customer_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('channel', sa.String(length=20), nullable=False),
    sa.Column('purpose', sa.String(length=20), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('source', sa.String(length=100), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=True),
    sa.Column('actor', sa.String(length=100), nullable=False),
    sa.CheckConstraint("purpose IN ('marketing', 'service', 'reminders')", name=op.f('ck_crm_consents_purpose_valid')),
    sa.CheckConstraint("status IN ('given', 'withdrawn')", name=op.f('ck_crm_consents_status_valid')),
    sa.ForeignKeyConstraint(['customer_id'], ['crm_customers.id'], name=op.f('fk_crm_consents_customer_id_crm_customers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('customer_id', 'channel', 'purpose', 'at', name=op.f('pk_crm_consents'))
    )
    with op.batch_alter_table('crm_trigger_firings') as batch:
        batch.add_column(sa.Column('contact', sa.String(length=10), nullable=True))
        batch.add_column(sa.Column('contact_reason', sa.String(length=200), nullable=True))
        batch.add_column(sa.Column('send_at', sa.DateTime(), nullable=True))
    with op.batch_alter_table('crm_outbox') as batch:
        batch.add_column(sa.Column('purpose', sa.String(length=20), nullable=True))
        batch.add_column(sa.Column('due_at', sa.DateTime(), nullable=True))
    op.create_index('ix_crm_outbox_customer_due', 'crm_outbox', ['customer_id', 'due_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_crm_outbox_customer_due', table_name='crm_outbox')
    with op.batch_alter_table('crm_outbox') as batch:
        batch.drop_column('due_at')
        batch.drop_column('purpose')
    with op.batch_alter_table('crm_trigger_firings') as batch:
        batch.drop_column('send_at')
        batch.drop_column('contact_reason')
        batch.drop_column('contact')
    op.drop_table('crm_consents')

"""probe tables

Revision ID: p0001
Revises: 
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import crmkit.db.types


revision: str = 'p0001'
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ('probe',)
depends_on: str | Sequence[str] | None = '0001'


def upgrade() -> None:
    op.create_table('probe_customer',
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('tier', sa.String(length=255), nullable=True),
    sa.Column('score', sa.Integer(), nullable=True),
    sa.Column('joined_on', sa.Date(), nullable=True),
    sa.Column('vip', sa.Boolean(), nullable=True),
    sa.Column('medical_notes', sa.Text(), nullable=True),
    sa.Column('balance', sa.Numeric(precision=14, scale=2), nullable=True),
    sa.Column('last_seen', crmkit.db.types.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['customer_id'], ['crm_customers.id'], name=op.f('fk_probe_customer_customer_id_crm_customers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('customer_id', name=op.f('pk_probe_customer')),
    comment="Customer fields declared by plugin 'probe'"
    )
    with op.batch_alter_table('probe_customer', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_probe_customer_score'), ['score'], unique=False)

    op.create_table('probe_notes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('body', sa.String(length=200), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['crm_customers.id'], name=op.f('fk_probe_notes_customer_id_crm_customers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_probe_notes'))
    )
    with op.batch_alter_table('probe_notes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_probe_notes_customer_id'), ['customer_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('probe_notes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_probe_notes_customer_id'))

    op.drop_table('probe_notes')
    with op.batch_alter_table('probe_customer', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_probe_customer_score'))

    op.drop_table('probe_customer')

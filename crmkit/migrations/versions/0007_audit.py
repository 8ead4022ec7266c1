"""audit: the audit log, one hash chain per customer

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0007'
down_revision: str | Sequence[str] | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    big = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
    op.create_table('crm_audit',
    sa.Column('customer_id', big, autoincrement=False, nullable=False),
    sa.Column('seq', big, autoincrement=False, nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('actor', sa.String(length=100), nullable=False),
    sa.Column('user_id', big, nullable=True),
    sa.Column('action', sa.String(length=60), nullable=False),
    sa.Column('entity', sa.String(length=60), nullable=False),
    sa.Column('entity_id', sa.String(length=100), nullable=True),
    sa.Column('changes', sa.Text(), nullable=False),
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('redacted', sa.Boolean(), nullable=False),
    sa.Column('prev_hash', sa.String(length=64), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('customer_id', 'seq', name=op.f('pk_crm_audit'))
    )
    op.create_index('ix_crm_audit_at', 'crm_audit', ['at'], unique=False)
    op.create_index('ix_crm_audit_user_id_at', 'crm_audit', ['user_id', 'at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_crm_audit_user_id_at', table_name='crm_audit')
    op.drop_index('ix_crm_audit_at', table_name='crm_audit')
    op.drop_table('crm_audit')

"""targets

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import crmkit.db.types


revision: str = '0003'
down_revision: str | Sequence[str] | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('crm_targets',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('metric', sa.String(length=20), nullable=False),
    sa.Column('period_start', sa.Date(), nullable=False),
    sa.Column('period_end', sa.Date(), nullable=False),
    sa.Column('planned', sa.Integer(), nullable=False),
    sa.CheckConstraint("metric IN ('contacts', 'meetings', 'deals')", name=op.f('ck_crm_targets_metric_valid')),
    sa.ForeignKeyConstraint(['user_id'], ['crm_users.id'], name=op.f('fk_crm_targets_user_id_crm_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_crm_targets')),
    sa.UniqueConstraint('user_id', 'metric', 'period_start', name=op.f('uq_crm_targets_user_id'))
    )


def downgrade() -> None:
    op.drop_table('crm_targets')

"""access: the branches users work in; roles are declared by the core and the plugins, not a fixed list

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0006'
down_revision: str | Sequence[str] | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('crm_user_branches',
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('branch', sa.String(length=100), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['crm_users.id'], name=op.f('fk_crm_user_branches_user_id_crm_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id', 'branch', name=op.f('pk_crm_user_branches'))
    )
    # a plugin's role is as valid as the core's: the roles are checked against the declarations
    with op.batch_alter_table('crm_users') as batch:
        batch.drop_constraint(op.f('ck_crm_users_role_valid'), type_='check')


def downgrade() -> None:
    with op.batch_alter_table('crm_users') as batch:
        batch.create_check_constraint('role_valid', "role IN ('admin', 'manager', 'operator', 'viewer')")
    op.drop_table('crm_user_branches')

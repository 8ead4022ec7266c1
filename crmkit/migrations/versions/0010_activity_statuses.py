"""activity statuses: plugins declare their own, so the database no longer checks the core's list

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op


revision: str = '0010'
down_revision: str | Sequence[str] | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # a plugin's status is as valid as the core's: statuses are checked against the declarations on input
    with op.batch_alter_table('crm_activities') as batch:
        batch.drop_constraint(op.f('ck_crm_activities_status_valid'), type_='check')


def downgrade() -> None:
    with op.batch_alter_table('crm_activities') as batch:
        batch.create_check_constraint(
            'status_valid', "status IN ('planned', 'in_progress', 'done', 'cancelled', 'missed')"
        )

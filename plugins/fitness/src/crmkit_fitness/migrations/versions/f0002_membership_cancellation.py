"""fitness: why and when a membership was cancelled

Revision ID: f0002
Revises: f0001
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'f0002'
down_revision: str | Sequence[str] | None = 'f0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('fitness_memberships', sa.Column('cancel_reason', sa.String(length=200), nullable=True))
    op.add_column('fitness_memberships', sa.Column('cancelled_on', sa.Date(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('fitness_memberships') as batch:
        batch.drop_column('cancelled_on')
        batch.drop_column('cancel_reason')

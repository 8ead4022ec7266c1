"""fitness tables

Revision ID: f0001
Revises: 
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import crmkit.db.types


revision: str = 'f0001'
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ('fitness',)
depends_on: str | Sequence[str] | None = '0003'


def upgrade() -> None:
    op.create_table('fitness_plans',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('duration_days', sa.Integer(), nullable=False),
    sa.Column('price', sa.Numeric(precision=10, scale=2), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('sessions', sa.Integer(), nullable=True),
    sa.Column('freeze_days', sa.Integer(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_fitness_plans')),
    sa.UniqueConstraint('name', name=op.f('uq_fitness_plans_name'))
    )
    op.create_table('fitness_trainers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('speciality', sa.String(length=100), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['crm_users.id'], name=op.f('fk_fitness_trainers_user_id_crm_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_fitness_trainers'))
    )
    op.create_table('fitness_classes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('trainer_id', sa.Integer(), nullable=True),
    sa.Column('club', sa.String(length=100), nullable=False),
    sa.Column('weekday', sa.Integer(), nullable=False),
    sa.Column('starts_at', sa.Time(), nullable=False),
    sa.Column('duration_min', sa.Integer(), nullable=False),
    sa.Column('capacity', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['trainer_id'], ['fitness_trainers.id'], name=op.f('fk_fitness_classes_trainer_id_fitness_trainers'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_fitness_classes'))
    )
    op.create_table('fitness_customer',
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('card_number', sa.String(length=40), nullable=True, comment='Club card'),
    sa.Column('goal', sa.String(length=255), nullable=True, comment='Training goal'),
    sa.Column('interests', sa.String(length=255), nullable=True, comment='Interests'),
    sa.Column('trial_ends_on', sa.Date(), nullable=True, comment='Trial ends'),
    sa.Column('home_club', sa.String(length=100), nullable=True, comment='Home club'),
    sa.ForeignKeyConstraint(['customer_id'], ['crm_customers.id'], name=op.f('fk_fitness_customer_customer_id_crm_customers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('customer_id', name=op.f('pk_fitness_customer')),
    comment="Customer fields declared by plugin 'fitness'"
    )
    with op.batch_alter_table('fitness_customer', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_fitness_customer_card_number'), ['card_number'], unique=False)
        batch_op.create_index(batch_op.f('ix_fitness_customer_home_club'), ['home_club'], unique=False)

    op.create_table('fitness_memberships',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('plan_id', sa.Integer(), nullable=False),
    sa.Column('starts_on', sa.Date(), nullable=False),
    sa.Column('ends_on', sa.Date(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('sessions_left', sa.Integer(), nullable=True),
    sa.Column('freeze_days_used', sa.Integer(), nullable=False),
    sa.Column('frozen_from', sa.Date(), nullable=True),
    sa.Column('frozen_until', sa.Date(), nullable=True),
    sa.Column('price', sa.Numeric(precision=10, scale=2), nullable=False),
    sa.Column('created_at', crmkit.db.types.UTCDateTime(), nullable=False),
    sa.CheckConstraint("status IN ('active', 'frozen', 'expired', 'cancelled')", name=op.f('ck_fitness_memberships_status_valid')),
    sa.ForeignKeyConstraint(['customer_id'], ['crm_customers.id'], name=op.f('fk_fitness_memberships_customer_id_crm_customers'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['plan_id'], ['fitness_plans.id'], name=op.f('fk_fitness_memberships_plan_id_fitness_plans')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_fitness_memberships'))
    )
    with op.batch_alter_table('fitness_memberships', schema=None) as batch_op:
        batch_op.create_index('ix_fitness_memberships_customer_ends', ['customer_id', 'ends_on'], unique=False)
        batch_op.create_index('ix_fitness_memberships_status_ends', ['status', 'ends_on'], unique=False)

    op.create_table('fitness_pt_packages',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('trainer_id', sa.Integer(), nullable=True),
    sa.Column('sessions_total', sa.Integer(), nullable=False),
    sa.Column('sessions_left', sa.Integer(), nullable=False),
    sa.Column('purchased_on', sa.Date(), nullable=False),
    sa.Column('expires_on', sa.Date(), nullable=True),
    sa.ForeignKeyConstraint(['customer_id'], ['crm_customers.id'], name=op.f('fk_fitness_pt_packages_customer_id_crm_customers'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['trainer_id'], ['fitness_trainers.id'], name=op.f('fk_fitness_pt_packages_trainer_id_fitness_trainers'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_fitness_pt_packages'))
    )
    with op.batch_alter_table('fitness_pt_packages', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_fitness_pt_packages_customer_id'), ['customer_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('fitness_pt_packages', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_fitness_pt_packages_customer_id'))

    op.drop_table('fitness_pt_packages')
    with op.batch_alter_table('fitness_memberships', schema=None) as batch_op:
        batch_op.drop_index('ix_fitness_memberships_status_ends')
        batch_op.drop_index('ix_fitness_memberships_customer_ends')

    op.drop_table('fitness_memberships')
    with op.batch_alter_table('fitness_customer', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_fitness_customer_home_club'))
        batch_op.drop_index(batch_op.f('ix_fitness_customer_card_number'))

    op.drop_table('fitness_customer')
    op.drop_table('fitness_classes')
    op.drop_table('fitness_trainers')
    op.drop_table('fitness_plans')

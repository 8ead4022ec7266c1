"""core tables

Revision ID: 0001
Revises: 
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import crmkit.db.types
from sqlalchemy.dialects import postgresql

revision: str = '0001'
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ('crmkit',)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('crm_custom_fields',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=48), nullable=False),
    sa.Column('spec', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('created_at', crmkit.db.types.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_crm_custom_fields')),
    sa.UniqueConstraint('name', name=op.f('uq_crm_custom_fields_name'))
    )
    op.create_table('crm_users',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=True),
    sa.Column('role', sa.String(length=20), nullable=False),
    sa.Column('branch', sa.String(length=100), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', crmkit.db.types.UTCDateTime(), nullable=False),
    sa.CheckConstraint("role IN ('admin', 'manager', 'operator', 'viewer')", name=op.f('ck_crm_users_role_valid')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_crm_users')),
    sa.UniqueConstraint('email', name=op.f('uq_crm_users_email'))
    )
    with op.batch_alter_table('crm_users', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_crm_users_branch'), ['branch'], unique=False)

    op.create_table('crm_customers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=True),
    sa.Column('email_normalized', sa.String(length=320), nullable=True),
    sa.Column('phone', sa.String(length=50), nullable=True),
    sa.Column('phone_normalized', sa.String(length=20), nullable=True),
    sa.Column('birthday', sa.Date(), nullable=True),
    sa.Column('source', sa.String(length=100), nullable=True),
    sa.Column('campaign', sa.String(length=100), nullable=True),
    sa.Column('owner_id', sa.Integer(), nullable=True),
    sa.Column('branch', sa.String(length=100), nullable=True),
    sa.Column('stage', sa.String(length=48), nullable=False),
    sa.Column('lifecycle', sa.String(length=16), nullable=False),
    sa.Column('stage_changed_at', crmkit.db.types.UTCDateTime(), nullable=False),
    sa.Column('created_at', crmkit.db.types.UTCDateTime(), nullable=False),
    sa.Column('updated_at', crmkit.db.types.UTCDateTime(), nullable=False),
    sa.Column('extra', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.ForeignKeyConstraint(['owner_id'], ['crm_users.id'], name=op.f('fk_crm_customers_owner_id_crm_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_crm_customers')),
    sqlite_autoincrement=True
    )
    with op.batch_alter_table('crm_customers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_crm_customers_branch'), ['branch'], unique=False)
        batch_op.create_index(batch_op.f('ix_crm_customers_email_normalized'), ['email_normalized'], unique=False)
        batch_op.create_index('ix_crm_customers_lifecycle_created', ['lifecycle', 'created_at'], unique=False)
        batch_op.create_index('ix_crm_customers_owner_id', ['owner_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_crm_customers_phone_normalized'), ['phone_normalized'], unique=False)
        batch_op.create_index(batch_op.f('ix_crm_customers_source'), ['source'], unique=False)
        batch_op.create_index('ix_crm_customers_stage', ['stage'], unique=False)

    op.create_table('crm_contacts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('role', sa.String(length=100), nullable=True),
    sa.Column('email', sa.String(length=320), nullable=True),
    sa.Column('phone', sa.String(length=50), nullable=True),
    sa.Column('created_at', crmkit.db.types.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['crm_customers.id'], name=op.f('fk_crm_contacts_customer_id_crm_customers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_crm_contacts'))
    )
    with op.batch_alter_table('crm_contacts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_crm_contacts_customer_id'), ['customer_id'], unique=False)

    op.create_table('crm_merges',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('survivor_id', sa.Integer(), nullable=False),
    sa.Column('merged_id', sa.Integer(), nullable=False),
    sa.Column('snapshot', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('moved', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('at', crmkit.db.types.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['actor_id'], ['crm_users.id'], name=op.f('fk_crm_merges_actor_id_crm_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['survivor_id'], ['crm_customers.id'], name=op.f('fk_crm_merges_survivor_id_crm_customers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_crm_merges'))
    )
    with op.batch_alter_table('crm_merges', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_crm_merges_merged_id'), ['merged_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_crm_merges_survivor_id'), ['survivor_id'], unique=False)

    op.create_table('crm_stage_history',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('from_stage', sa.String(length=48), nullable=True),
    sa.Column('to_stage', sa.String(length=48), nullable=False),
    sa.Column('to_lifecycle', sa.String(length=16), nullable=False),
    sa.Column('at', crmkit.db.types.UTCDateTime(), nullable=False),
    sa.Column('cause', sa.String(length=200), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['actor_id'], ['crm_users.id'], name=op.f('fk_crm_stage_history_actor_id_crm_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['customer_id'], ['crm_customers.id'], name=op.f('fk_crm_stage_history_customer_id_crm_customers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_crm_stage_history'))
    )
    with op.batch_alter_table('crm_stage_history', schema=None) as batch_op:
        batch_op.create_index('ix_crm_stage_history_customer_at', ['customer_id', 'at'], unique=False)

    op.create_table('crm_tasks',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('title', sa.String(length=300), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('customer_id', sa.Integer(), nullable=True),
    sa.Column('assignee_id', sa.Integer(), nullable=True),
    sa.Column('due_at', crmkit.db.types.UTCDateTime(), nullable=True),
    sa.Column('remind_at', crmkit.db.types.UTCDateTime(), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('priority', sa.Integer(), nullable=False),
    sa.Column('source', sa.String(length=100), nullable=True),
    sa.Column('source_id', sa.String(length=100), nullable=True),
    sa.Column('created_at', crmkit.db.types.UTCDateTime(), nullable=False),
    sa.Column('completed_at', crmkit.db.types.UTCDateTime(), nullable=True),
    sa.CheckConstraint("status IN ('open', 'done', 'cancelled')", name=op.f('ck_crm_tasks_status_valid')),
    sa.ForeignKeyConstraint(['assignee_id'], ['crm_users.id'], name=op.f('fk_crm_tasks_assignee_id_crm_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['customer_id'], ['crm_customers.id'], name=op.f('fk_crm_tasks_customer_id_crm_customers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_crm_tasks'))
    )
    with op.batch_alter_table('crm_tasks', schema=None) as batch_op:
        batch_op.create_index('ix_crm_tasks_assignee_status_due', ['assignee_id', 'status', 'due_at'], unique=False)
        batch_op.create_index('ix_crm_tasks_customer_id', ['customer_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_crm_tasks_remind_at'), ['remind_at'], unique=False)

    op.create_table('crm_activities',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('contact_id', sa.Integer(), nullable=True),
    sa.Column('kind', sa.String(length=48), nullable=False),
    sa.Column('channel', sa.String(length=20), nullable=True),
    sa.Column('direction', sa.String(length=10), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('subject', sa.String(length=300), nullable=True),
    sa.Column('result', sa.Text(), nullable=True),
    sa.Column('occurred_at', crmkit.db.types.UTCDateTime(), nullable=False),
    sa.Column('ends_at', crmkit.db.types.UTCDateTime(), nullable=True),
    sa.Column('duration_min', sa.Integer(), nullable=True),
    sa.Column('amount', sa.Numeric(precision=14, scale=2), nullable=True),
    sa.Column('currency', sa.String(length=3), nullable=True),
    sa.Column('owner_id', sa.Integer(), nullable=True),
    sa.Column('data', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('created_at', crmkit.db.types.UTCDateTime(), nullable=False),
    sa.CheckConstraint("status IN ('planned', 'in_progress', 'done', 'cancelled', 'missed')", name=op.f('ck_crm_activities_status_valid')),
    sa.ForeignKeyConstraint(['contact_id'], ['crm_contacts.id'], name=op.f('fk_crm_activities_contact_id_crm_contacts'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['customer_id'], ['crm_customers.id'], name=op.f('fk_crm_activities_customer_id_crm_customers'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['owner_id'], ['crm_users.id'], name=op.f('fk_crm_activities_owner_id_crm_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_crm_activities'))
    )
    with op.batch_alter_table('crm_activities', schema=None) as batch_op:
        batch_op.create_index('ix_crm_activities_customer_kind_at', ['customer_id', 'kind', 'occurred_at'], unique=False)
        batch_op.create_index('ix_crm_activities_kind_at', ['kind', 'occurred_at'], unique=False)
        batch_op.create_index('ix_crm_activities_owner_at', ['owner_id', 'occurred_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('crm_activities', schema=None) as batch_op:
        batch_op.drop_index('ix_crm_activities_owner_at')
        batch_op.drop_index('ix_crm_activities_kind_at')
        batch_op.drop_index('ix_crm_activities_customer_kind_at')

    op.drop_table('crm_activities')
    with op.batch_alter_table('crm_tasks', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_crm_tasks_remind_at'))
        batch_op.drop_index('ix_crm_tasks_customer_id')
        batch_op.drop_index('ix_crm_tasks_assignee_status_due')

    op.drop_table('crm_tasks')
    with op.batch_alter_table('crm_stage_history', schema=None) as batch_op:
        batch_op.drop_index('ix_crm_stage_history_customer_at')

    op.drop_table('crm_stage_history')
    with op.batch_alter_table('crm_merges', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_crm_merges_survivor_id'))
        batch_op.drop_index(batch_op.f('ix_crm_merges_merged_id'))

    op.drop_table('crm_merges')
    with op.batch_alter_table('crm_contacts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_crm_contacts_customer_id'))

    op.drop_table('crm_contacts')
    with op.batch_alter_table('crm_customers', schema=None) as batch_op:
        batch_op.drop_index('ix_crm_customers_stage')
        batch_op.drop_index(batch_op.f('ix_crm_customers_source'))
        batch_op.drop_index(batch_op.f('ix_crm_customers_phone_normalized'))
        batch_op.drop_index('ix_crm_customers_owner_id')
        batch_op.drop_index('ix_crm_customers_lifecycle_created')
        batch_op.drop_index(batch_op.f('ix_crm_customers_email_normalized'))
        batch_op.drop_index(batch_op.f('ix_crm_customers_branch'))

    op.drop_table('crm_customers')
    with op.batch_alter_table('crm_users', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_crm_users_branch'))

    op.drop_table('crm_users')
    op.drop_table('crm_custom_fields')

"""imports: the record of every import, what it changed per customer, customers' ids in other systems

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import crmkit.db.types


revision: str = '0005'
down_revision: str | Sequence[str] | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table('crm_imports',
    sa.Column('id', BIG_ID, nullable=False),
    sa.Column('importer', sa.String(length=100), nullable=False),
    sa.Column('source_name', sa.String(length=300), nullable=False),
    sa.Column('format', sa.String(length=10), nullable=False),
    sa.Column('mode', sa.String(length=10), nullable=False),
    sa.Column('settings', JSON, nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('counts', JSON, nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('started_at', crmkit.db.types.UTCDateTime(), nullable=False),
    sa.Column('finished_at', crmkit.db.types.UTCDateTime(), nullable=True),
    sa.Column('reverted_at', crmkit.db.types.UTCDateTime(), nullable=True),
    sa.Column('reverted_by', sa.Integer(), nullable=True),
    sa.CheckConstraint("status IN ('running', 'done', 'failed', 'reverted')", name=op.f('ck_crm_imports_status_valid')),
    sa.ForeignKeyConstraint(['actor_id'], ['crm_users.id'], name=op.f('fk_crm_imports_actor_id_crm_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['reverted_by'], ['crm_users.id'], name=op.f('fk_crm_imports_reverted_by_crm_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_crm_imports'))
    )
    op.create_table('crm_import_changes',
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('import_id', BIG_ID, nullable=False),
    sa.Column('line', sa.Integer(), nullable=False),
    sa.Column('action', sa.String(length=10), nullable=False),
    sa.Column('before', JSON, nullable=False),
    sa.Column('after', JSON, nullable=False),
    sa.CheckConstraint("action IN ('created', 'updated', 'unchanged')", name=op.f('ck_crm_import_changes_action_valid')),
    sa.ForeignKeyConstraint(['customer_id'], ['crm_customers.id'], name=op.f('fk_crm_import_changes_customer_id_crm_customers'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['import_id'], ['crm_imports.id'], name=op.f('fk_crm_import_changes_import_id_crm_imports'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('customer_id', 'import_id', name=op.f('pk_crm_import_changes'))
    )
    op.create_index('ix_crm_import_changes_import_id', 'crm_import_changes', ['import_id'], unique=False)
    op.create_table('crm_customer_keys',
    sa.Column('system', sa.String(length=100), nullable=False),
    sa.Column('external_id', sa.String(length=200), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['crm_customers.id'], name=op.f('fk_crm_customer_keys_customer_id_crm_customers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('system', 'external_id', name=op.f('pk_crm_customer_keys'))
    )
    op.create_index('ix_crm_customer_keys_customer_id', 'crm_customer_keys', ['customer_id'], unique=False)
    op.add_column('crm_activities', sa.Column('import_id', BIG_ID, nullable=True))
    op.create_index(
        'ix_crm_activities_import_id', 'crm_activities', ['import_id'], unique=False,
        postgresql_where=sa.text('import_id IS NOT NULL'), sqlite_where=sa.text('import_id IS NOT NULL'),
    )


def downgrade() -> None:
    op.drop_index('ix_crm_activities_import_id', table_name='crm_activities')
    with op.batch_alter_table('crm_activities') as batch:
        batch.drop_column('import_id')
    op.drop_index('ix_crm_customer_keys_customer_id', table_name='crm_customer_keys')
    op.drop_table('crm_customer_keys')
    op.drop_index('ix_crm_import_changes_import_id', table_name='crm_import_changes')
    op.drop_table('crm_import_changes')
    op.drop_table('crm_imports')

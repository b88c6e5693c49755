"""organisations, and the organisation that owns each client

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06 06:40:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('organisations',
    sa.Column('org_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('org_id', name=op.f('pk_organisations'))
    )
    with op.batch_alter_table('clients') as batch:
        batch.add_column(sa.Column('org_id', sa.String(length=64), nullable=True))
        batch.create_index(batch.f('ix_clients_org_id'), ['org_id'], unique=False)
        batch.create_foreign_key(
            batch.f('fk_clients_org_id_organisations'), 'organisations', ['org_id'], ['org_id']
        )


def downgrade() -> None:
    with op.batch_alter_table('clients') as batch:
        batch.drop_constraint(batch.f('fk_clients_org_id_organisations'), type_='foreignkey')
        batch.drop_index(batch.f('ix_clients_org_id'))
        batch.drop_column('org_id')
    op.drop_table('organisations')

"""clients.previous_secret_hash and previous_valid_until: a rotated secret's overlap (admin API)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 07:00:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('clients') as batch:
        batch.add_column(sa.Column('previous_secret_hash', sa.String(length=128), nullable=True))
        batch.add_column(sa.Column('previous_valid_until', sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('clients') as batch:
        batch.drop_column('previous_valid_until')
        batch.drop_column('previous_secret_hash')

"""the portal: developer accounts, and when each axept key was last used

Revision ID: 0007
Revises: 0005
Create Date: 2026-12-06 07:00:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('developers',
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('org_id', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('password_hash', sa.String(length=200), nullable=True),
    sa.Column('totp_sealed', sa.String(length=200), nullable=True),
    sa.Column('totp_last_step', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['org_id'], ['organisations.org_id'], name=op.f('fk_developers_org_id_organisations')),
    sa.PrimaryKeyConstraint('email', name=op.f('pk_developers'))
    )
    with op.batch_alter_table('developers') as batch:
        batch.create_index(batch.f('ix_developers_org_id'), ['org_id'], unique=False)
    with op.batch_alter_table('api_keys') as batch:
        batch.add_column(sa.Column('last_used_at', sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('api_keys') as batch:
        batch.drop_column('last_used_at')
    with op.batch_alter_table('developers') as batch:
        batch.drop_index(batch.f('ix_developers_org_id'))
    op.drop_table('developers')

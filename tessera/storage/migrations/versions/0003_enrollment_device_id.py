"""enrollments.device_id: the app_deviceid of the Nexi client assertion

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 10:00:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('enrollments') as batch:
        batch.add_column(sa.Column('device_id', sa.String(length=256), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('enrollments') as batch:
        batch.drop_column('device_id')

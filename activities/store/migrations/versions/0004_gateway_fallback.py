"""gateway fallback: the last channel of a provider-side fallback chain, and the channel a receipt names

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("message_log") as batch:
        batch.add_column(sa.Column("final_channel", sa.String(32), nullable=True))
        batch.add_column(sa.Column("receipt_channel", sa.String(32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("message_log") as batch:
        batch.drop_column("receipt_channel")
        batch.drop_column("final_channel")

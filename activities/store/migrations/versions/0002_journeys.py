"""orders, in-app inbox, message journey time and episode

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("message_log") as batch:
        batch.add_column(sa.Column("journey_time", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("episode", sa.String(64), nullable=True))
    op.create_table(
        "orders",
        sa.Column("order_id", sa.String(64), nullable=False),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("order_id", name="pk_orders"),
    )
    op.create_index("ix_orders_customer_id", "orders", ["customer_id"])
    op.create_table(
        "in_app_inbox",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("idempotency_key", sa.String(300), nullable=False),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("title", sa.String(200), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_in_app_inbox"),
        sa.UniqueConstraint("idempotency_key", name="uq_in_app_inbox_idempotency_key"),
    )
    op.create_index("ix_in_app_inbox_customer_id", "in_app_inbox", ["customer_id"])


def downgrade() -> None:
    op.drop_table("in_app_inbox")
    op.drop_table("orders")
    with op.batch_alter_table("message_log") as batch:
        batch.drop_column("episode")
        batch.drop_column("journey_time")

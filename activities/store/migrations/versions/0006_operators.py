"""operators: resends linked to their first message, skipped sends and engagement for the report

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("message_log") as batch:
        batch.add_column(sa.Column("resend_of", sa.String(300), nullable=True))
    op.create_table(
        "send_skips",
        sa.Column("idempotency_key", sa.String(300), nullable=False),
        sa.Column("workflow_id", sa.String(200), nullable=False),
        sa.Column("journey", sa.String(64), nullable=False),
        sa.Column("step", sa.String(100), nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("journey_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("idempotency_key", name="pk_send_skips"),
    )
    op.create_index("ix_send_skips_journey_time", "send_skips", ["journey_time"])
    op.create_table(
        "engagements",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("step", sa.String(100), nullable=True),
        sa.Column("channel", sa.String(32), nullable=True),
        sa.Column("event_id", sa.String(200), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_engagements"),
        sa.UniqueConstraint("event_id", name="uq_engagements_event_id"),
    )
    op.create_index("ix_engagements_customer_id", "engagements", ["customer_id"])
    op.create_index("ix_message_log_created_at", "message_log", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_message_log_created_at", table_name="message_log")
    op.drop_index("ix_engagements_customer_id", table_name="engagements")
    op.drop_table("engagements")
    op.drop_index("ix_send_skips_journey_time", table_name="send_skips")
    op.drop_table("send_skips")
    with op.batch_alter_table("message_log") as batch:
        batch.drop_column("resend_of")

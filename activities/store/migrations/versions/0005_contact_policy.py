"""contact policy: content keys for duplicate content, priority holds, consent notices

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("message_log") as batch:
        batch.add_column(sa.Column("content_key", sa.String(64), nullable=True))
        batch.add_column(sa.Column("journey", sa.String(64), nullable=True))
    with op.batch_alter_table("customers") as batch:
        batch.add_column(sa.Column("consent_notices", sa.JSON(), nullable=True))
    op.create_table(
        "contact_holds",
        sa.Column("idempotency_key", sa.String(300), nullable=False),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("idempotency_key", name="pk_contact_holds"),
    )


def downgrade() -> None:
    op.drop_table("contact_holds")
    with op.batch_alter_table("customers") as batch:
        batch.drop_column("consent_notices")
    with op.batch_alter_table("message_log") as batch:
        batch.drop_column("journey")
        batch.drop_column("content_key")

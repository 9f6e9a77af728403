"""experiments: variant assignments, live experiment settings, order amounts, a message's experiment and type

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.add_column(sa.Column("amount", sa.Integer(), nullable=False, server_default="0"))
    with op.batch_alter_table("message_log") as batch:
        batch.add_column(sa.Column("experiment", sa.String(64), nullable=True))
        batch.add_column(sa.Column("variant", sa.String(64), nullable=True))
        batch.add_column(sa.Column("message_type", sa.String(32), nullable=True))
    op.create_table(
        "experiment_assignments",
        sa.Column("experiment", sa.String(64), nullable=False),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("variant", sa.String(64), nullable=False),
        sa.Column("how", sa.String(16), nullable=False),
        sa.Column("journey", sa.String(64), nullable=False),
        sa.Column("workflow_id", sa.String(200), nullable=False),
        sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("experiment", "customer_id", name="pk_experiment_assignments"),
    )
    op.create_index("ix_experiment_assignments_assigned_at", "experiment_assignments", ["assigned_at"])
    op.create_table(
        "experiments",
        sa.Column("experiment", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("weights", sa.JSON(), nullable=True),
        sa.Column("winner", sa.String(64), nullable=True),
        sa.Column("changed_by", sa.String(64), nullable=False),
        sa.Column("reason", sa.String(300), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("experiment", name="pk_experiments"),
    )


def downgrade() -> None:
    op.drop_table("experiments")
    op.drop_index("ix_experiment_assignments_assigned_at", table_name="experiment_assignments")
    op.drop_table("experiment_assignments")
    with op.batch_alter_table("message_log") as batch:
        batch.drop_column("message_type")
        batch.drop_column("variant")
        batch.drop_column("experiment")
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("amount")

"""hook_deliveries: webhook delivery ids already processed (redelivery protection)

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"  # poller state
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "hook_deliveries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dialect", sa.String(length=100), nullable=False),
        sa.Column("delivery_id", sa.String(length=255), nullable=False),
        sa.Column("received_at", sa.Float(), nullable=False),
        sa.Column("changeids", sa.Text(), server_default="[]", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hook_deliveries")),
        sa.UniqueConstraint("dialect", "delivery_id",
                            name=op.f("uq_hook_deliveries_dialect_delivery_id")),
    )
    op.create_index("ix_hook_deliveries_received_at", "hook_deliveries", ["received_at"],
                    unique=False)


def downgrade() -> None:
    op.drop_index("ix_hook_deliveries_received_at", table_name="hook_deliveries")
    op.drop_table("hook_deliveries")

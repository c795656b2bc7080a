"""notifications: every delivery attempt of every notifier (mail, later IRC, push…)

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"  # worker leases
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notifications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("notifier", sa.String(length=255), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("message_key", sa.String(length=255), nullable=False),
        sa.Column("what", sa.Text(), server_default="", nullable=False),
        sa.Column("builder", sa.String(length=255), nullable=True),
        sa.Column("build_number", sa.Integer(), nullable=True),
        sa.Column("buildsetid", sa.Integer(), nullable=True),
        sa.Column("recipients", sa.Text(), server_default="[]", nullable=False),
        sa.Column("attempted_at", sa.Float(), nullable=False),
        sa.Column("finished_at", sa.Float(), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("answer", sa.Text(), server_default="", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
    )
    op.create_index("ix_notifications_notifier_event", "notifications",
                    ["notifier", "event_id"], unique=False)
    op.create_index("ix_notifications_notifier_id", "notifications", ["notifier", "id"],
                    unique=False)
    op.create_index("ix_notifications_attempted_at", "notifications", ["attempted_at"],
                    unique=False)


def downgrade() -> None:
    op.drop_index("ix_notifications_attempted_at", table_name="notifications")
    op.drop_index("ix_notifications_notifier_id", table_name="notifications")
    op.drop_index("ix_notifications_notifier_event", table_name="notifications")
    op.drop_table("notifications")

"""irc_contacts: the IRC bot's notification settings per channel and nick

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"  # notifications
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "irc_contacts",
        sa.Column("notifier", sa.String(length=255), nullable=False),
        sa.Column("contact", sa.String(length=255), nullable=False),
        sa.Column("events", sa.Text(), server_default="[]", nullable=False),
        sa.Column("muted", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("updated_by", sa.Text(), server_default="", nullable=False),
        sa.PrimaryKeyConstraint("notifier", "contact", name=op.f("pk_irc_contacts")),
    )


def downgrade() -> None:
    op.drop_table("irc_contacts")

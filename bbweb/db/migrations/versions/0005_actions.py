"""Control actions: who stopped, cancelled, paused, pinged or shut down what, and why.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"  # view indexes
branch_labels = None
depends_on = None

_BUILDS = [("stopped_by", sa.Text()), ("stop_requested_at", sa.Float())]
_REQUESTS = [("cancelled_at", sa.Float()), ("cancelled_by", sa.Text()),
             ("cancel_reason", sa.Text())]
_SLAVES = [("paused_by", sa.Text()), ("paused_at", sa.Float()), ("graceful_by", sa.Text()),
           ("graceful_at", sa.Float()), ("ping_requested_at", sa.Float()),
           ("ping_requested_by", sa.Text()), ("ping_answered_at", sa.Float())]


def upgrade() -> None:
    for table, columns in (("builds", _BUILDS), ("buildrequests", _REQUESTS),
                           ("slaves", _SLAVES)):
        for name, type_ in columns:
            op.add_column(table, sa.Column(name, type_, nullable=True))
    op.create_index("ix_buildrequests_cancelled", "buildrequests",
                    ["builderid", "cancelled_at"], unique=False)
    op.create_table(
        "master_state",
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("set_by", sa.Text(), nullable=True),
        sa.Column("set_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_master_state")),
    )


def downgrade() -> None:
    op.drop_table("master_state")
    op.drop_index("ix_buildrequests_cancelled", table_name="buildrequests")
    for table, columns in (("builds", _BUILDS), ("buildrequests", _REQUESTS),
                           ("slaves", _SLAVES)):
        with op.batch_alter_table(table) as batch:
            for name, _type in reversed(columns):
                batch.drop_column(name)

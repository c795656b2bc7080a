"""Idempotent worker protocol: claim leases, worker sessions, answers kept for repeats.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"  # actions
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("buildrequests", sa.Column("lease_expires_at", sa.Float(), nullable=True))
    op.create_index("ix_buildrequests_lease_expires_at", "buildrequests",
                    ["lease_expires_at"], unique=False)
    op.add_column("slaves", sa.Column("session", sa.String(length=64), nullable=True))
    op.add_column("builds", sa.Column("worker_session", sa.String(length=64), nullable=True))
    op.add_column("builds", sa.Column("worker_seq", sa.Integer(), nullable=True))
    op.create_table(
        "worker_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("slaveid", sa.Integer(), nullable=False),
        sa.Column("request_key", sa.String(length=64), nullable=False),
        sa.Column("path", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("status", sa.SmallInteger(), nullable=False),
        sa.Column("body", sa.Text(), server_default="", nullable=False),
        sa.ForeignKeyConstraint(["slaveid"], ["slaves.id"], ondelete="CASCADE",
                                name=op.f("fk_worker_requests_slaveid_slaves")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_worker_requests")),
        sa.UniqueConstraint("slaveid", "request_key",
                            name=op.f("uq_worker_requests_slaveid_request_key")),
    )
    op.create_index("ix_worker_requests_created_at", "worker_requests", ["created_at"],
                    unique=False)


def downgrade() -> None:
    op.drop_index("ix_worker_requests_created_at", table_name="worker_requests")
    op.drop_table("worker_requests")
    with op.batch_alter_table("builds") as batch:
        batch.drop_column("worker_seq")
        batch.drop_column("worker_session")
    with op.batch_alter_table("slaves") as batch:
        batch.drop_column("session")
    op.drop_index("ix_buildrequests_lease_expires_at", table_name="buildrequests")
    with op.batch_alter_table("buildrequests") as batch:
        batch.drop_column("lease_expires_at")

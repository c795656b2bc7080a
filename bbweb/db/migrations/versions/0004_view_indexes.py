"""Indexes for the big views (waterfall, grid, console): lookups that start from a change
or a source stamp and must not scan history.

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = "0004"
down_revision = "0003"  # hook deliveries
branch_labels = None
depends_on = None


def upgrade() -> None:
    # source stamp -> the buildsets that built it (the console starts from changes)
    op.create_index("ix_buildset_sourcestamps_sourcestamp", "buildset_sourcestamps",
                    ["sourcestampid"], unique=False)
    # the waterfall: a builder's builds by start time; slave events by kind and time
    op.create_index("ix_builds_builder_started", "builds", ["builderid", "started_at"],
                    unique=False)
    op.create_index("ix_events_kind_created", "events", ["kind", "created_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_events_kind_created", table_name="events")
    op.drop_index("ix_builds_builder_started", table_name="builds")
    op.drop_index("ix_buildset_sourcestamps_sourcestamp", table_name="buildset_sourcestamps")

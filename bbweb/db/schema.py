"""The status database schema (SQLAlchemy Core).

Every table the web processes, the daemon and the worker API share lives here, so that
the Alembic migration and the tests create exactly the same thing. Times are stored as
float epoch seconds (what Buildbot's JSON reports), which keeps SQLite and PostgreSQL
identical and avoids timezone conversions on the hot path.

Indexes are chosen for the pages: "latest N builds of builder B" is an index range scan on
(builderid, number), never a scan of history.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
    }
)

# JSON-encoded values are stored as text: portable, and what we hand out is JSON anyway.
JsonText = sa.Text

changes = sa.Table(
    "changes",
    metadata,
    sa.Column("changeid", sa.Integer, primary_key=True),
    sa.Column("author", sa.Text, nullable=False, server_default=""),
    sa.Column("comments", sa.Text, nullable=False, server_default=""),
    sa.Column("is_dir", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("branch", sa.Text),
    sa.Column("revision", sa.Text),
    sa.Column("revlink", sa.Text),
    sa.Column("when_timestamp", sa.Float, nullable=False),
    sa.Column("category", sa.Text),
    sa.Column("repository", sa.Text, nullable=False, server_default=""),
    sa.Column("codebase", sa.Text, nullable=False, server_default=""),
    sa.Column("project", sa.Text, nullable=False, server_default=""),
    sa.Column("src", sa.Text),
    sa.Index("ix_changes_branch", "branch"),
    sa.Index("ix_changes_revision", "revision"),
    sa.Index("ix_changes_when", "when_timestamp"),
)

change_files = sa.Table(
    "change_files",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column(
        "changeid",
        sa.Integer,
        sa.ForeignKey("changes.changeid", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("filename", sa.Text, nullable=False),
)

change_properties = sa.Table(
    "change_properties",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column(
        "changeid",
        sa.Integer,
        sa.ForeignKey("changes.changeid", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("value", JsonText, nullable=False),  # JSON of the value
    sa.Column("source", sa.String(255), nullable=False, server_default="Change"),
)

sourcestamps = sa.Table(
    "sourcestamps",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("branch", sa.Text),
    sa.Column("revision", sa.Text),
    sa.Column("repository", sa.Text, nullable=False, server_default=""),
    sa.Column("project", sa.Text, nullable=False, server_default=""),
    sa.Column("codebase", sa.Text, nullable=False, server_default=""),
    sa.Column("patch_level", sa.Integer),
    sa.Column("patch_body", sa.LargeBinary),
    sa.Column("patch_subdir", sa.Text),
    sa.Column("patch_author", sa.Text),
    sa.Column("patch_comment", sa.Text),
)

sourcestamp_changes = sa.Table(
    "sourcestamp_changes",
    metadata,
    sa.Column(
        "sourcestampid",
        sa.Integer,
        sa.ForeignKey("sourcestamps.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column(
        "changeid",
        sa.Integer,
        sa.ForeignKey("changes.changeid", ondelete="CASCADE"),
        primary_key=True,
        index=True,
    ),
)

buildsets = sa.Table(
    "buildsets",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("external_idstring", sa.Text),
    sa.Column("reason", sa.Text, nullable=False, server_default=""),
    sa.Column("scheduler", sa.Text),
    sa.Column("submitted_at", sa.Float, nullable=False),
    sa.Column("complete", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("complete_at", sa.Float),
    sa.Column("results", sa.SmallInteger),
)

buildset_sourcestamps = sa.Table(
    "buildset_sourcestamps",
    metadata,
    sa.Column(
        "buildsetid",
        sa.Integer,
        sa.ForeignKey("buildsets.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column(
        "sourcestampid",
        sa.Integer,
        sa.ForeignKey("sourcestamps.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Index("ix_buildset_sourcestamps_sourcestamp", "sourcestampid"),
)

buildset_properties = sa.Table(
    "buildset_properties",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column(
        "buildsetid",
        sa.Integer,
        sa.ForeignKey("buildsets.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("value", JsonText, nullable=False),
    sa.Column("source", sa.String(255), nullable=False, server_default=""),
)

builders = sa.Table(
    "builders",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(255), nullable=False, unique=True),
    sa.Column("category", sa.Text),
    sa.Column("builddir", sa.String(512), nullable=False, server_default=""),
    # next build number to hand out; bumped inside the claim transaction (row lock on PG)
    sa.Column("next_number", sa.Integer, nullable=False, server_default="0"),
    sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
)

buildrequests = sa.Table(
    "buildrequests",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column(
        "buildsetid",
        sa.Integer,
        sa.ForeignKey("buildsets.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("builderid", sa.Integer, sa.ForeignKey("builders.id"), nullable=False),
    sa.Column("priority", sa.Integer, nullable=False, server_default="0"),
    sa.Column("submitted_at", sa.Float, nullable=False),
    sa.Column("claimed_by", sa.Integer, sa.ForeignKey("slaves.id")),
    sa.Column("claimed_at", sa.Float),
    sa.Column("complete", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("complete_at", sa.Float),
    sa.Column("results", sa.SmallInteger),
    # a cancelled request is complete with results CANCELLED; who and why are kept (0005)
    sa.Column("cancelled_at", sa.Float),
    sa.Column("cancelled_by", sa.Text),
    sa.Column("cancel_reason", sa.Text),
    # a claim is first a lease (0006): claimed_by/claimed_at are set and the lease runs out
    # at lease_expires_at unless the worker confirms it (then the build exists and this is
    # NULL again); an expired lease puts the request back in the queue
    sa.Column("lease_expires_at", sa.Float),
    sa.Index("ix_buildrequests_pending", "builderid", "complete", "claimed_at"),
    sa.Index("ix_buildrequests_cancelled", "builderid", "cancelled_at"),
    sa.Index("ix_buildrequests_lease_expires_at", "lease_expires_at"),
)

slaves = sa.Table(
    "slaves",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(255), nullable=False, unique=True),
    sa.Column("info", JsonText, nullable=False, server_default="{}"),
    sa.Column("connected", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("last_seen", sa.Float),
    sa.Column("connected_at", sa.Float),
    sa.Column("paused", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("graceful", sa.Boolean, nullable=False, server_default=sa.false()),
    # who paused the slave / asked for its graceful shutdown, and when (0005)
    sa.Column("paused_by", sa.Text),
    sa.Column("paused_at", sa.Float),
    sa.Column("graceful_by", sa.Text),
    sa.Column("graceful_at", sa.Float),
    # ping: the master asks (requested_at), the worker answers on its next contact
    sa.Column("ping_requested_at", sa.Float),
    sa.Column("ping_requested_by", sa.Text),
    sa.Column("ping_answered_at", sa.Float),
    # the worker process that last said hello (0006): a random id it makes at start-up
    sa.Column("session", sa.String(64)),
)

builds = sa.Table(
    "builds",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("builderid", sa.Integer, sa.ForeignKey("builders.id"), nullable=False),
    sa.Column("number", sa.Integer, nullable=False),
    sa.Column("buildrequestid", sa.Integer, sa.ForeignKey("buildrequests.id"), nullable=False),
    sa.Column("slaveid", sa.Integer, sa.ForeignKey("slaves.id")),
    sa.Column("reason", sa.Text, nullable=False, server_default=""),
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("finished_at", sa.Float),
    sa.Column("results", sa.SmallInteger),
    sa.Column("text", JsonText, nullable=False, server_default="[]"),
    # set by a stop request; the worker learns it on its next heartbeat or log post
    sa.Column("stop_requested", sa.Text),
    sa.Column("stopped_by", sa.Text),  # who asked for the stop (0005)
    sa.Column("stop_requested_at", sa.Float),
    # which worker process confirmed the build, and the number of the claim it made for it
    # (0006): a heartbeat that lists the builds the worker runs after that claim settled
    # ends the ones it no longer lists
    sa.Column("worker_session", sa.String(64)),
    sa.Column("worker_seq", sa.Integer),
    # raised by database triggers whenever the build's steps, logs or properties change
    # (0009): with the row's own columns it tells a cached JSON document is still current
    sa.Column("doc_version", sa.Integer, nullable=False, server_default="0"),
    sa.UniqueConstraint("builderid", "number"),
    sa.Index("ix_builds_slave", "slaveid", "finished_at"),
    sa.Index("ix_builds_request", "buildrequestid"),
    sa.Index("ix_builds_unfinished", "finished_at"),
    # the waterfall: a builder's builds by start time, from any point in the past
    sa.Index("ix_builds_builder_started", "builderid", "started_at"),
)

build_properties = sa.Table(
    "build_properties",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column(
        "buildid",
        sa.Integer,
        sa.ForeignKey("builds.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("value", JsonText, nullable=False),
    sa.Column("source", sa.String(255), nullable=False, server_default=""),
    sa.UniqueConstraint("buildid", "name"),
)

steps = sa.Table(
    "steps",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column(
        "buildid",
        sa.Integer,
        sa.ForeignKey("builds.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("number", sa.Integer, nullable=False),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("started_at", sa.Float),
    sa.Column("finished_at", sa.Float),
    sa.Column("results", sa.SmallInteger),
    sa.Column("text", JsonText, nullable=False, server_default="[]"),
    sa.Column("urls", JsonText, nullable=False, server_default="{}"),
    sa.Column("statistics", JsonText, nullable=False, server_default="{}"),
    sa.Column("hidden", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.UniqueConstraint("buildid", "number"),
)

logs = sa.Table(
    "logs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column(
        "stepid",
        sa.Integer,
        sa.ForeignKey("steps.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("num_chunks", sa.Integer, nullable=False, server_default="0"),
    sa.Column("num_bytes", sa.Integer, nullable=False, server_default="0"),
    sa.Column("complete", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.UniqueConstraint("stepid", "name"),
)

log_chunks = sa.Table(
    "log_chunks",
    metadata,
    sa.Column(
        "logid",
        sa.Integer,
        sa.ForeignKey("logs.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
    # "o" stdout, "e" stderr, "h" header (lines the worker writes itself)
    sa.Column("stream", sa.String(1), nullable=False),
    # 0 = plain UTF-8, 1 = zlib; small chunks are not worth compressing
    sa.Column("compressed", sa.SmallInteger, nullable=False, server_default="0"),
    sa.Column("content", sa.LargeBinary, nullable=False),
)

users = sa.Table(
    "users",
    metadata,
    sa.Column("uid", sa.Integer, primary_key=True),
    sa.Column("identifier", sa.String(255), nullable=False, unique=True),
    sa.Column("bb_username", sa.String(128), unique=True),
    sa.Column("bb_password", sa.String(255)),
)

users_info = sa.Table(
    "users_info",
    metadata,
    sa.Column(
        "uid",
        sa.Integer,
        sa.ForeignKey("users.uid", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("attr_type", sa.String(128), primary_key=True),
    sa.Column("attr_data", sa.String(255), nullable=False),
    sa.Index("ix_users_info_attr", "attr_type", "attr_data"),
)

# The outbox: every state change inserts its event row in the same transaction.
# ``id`` order is commit order because event ids come from ``event_counter`` whose row is
# locked until commit (see bbweb.engine.events) - consumers can never skip an id.
events = sa.Table(
    "events",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True,
              autoincrement=False),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("payload", JsonText, nullable=False),
    # the waterfall's slave events: one kind, a time range
    sa.Index("ix_events_kind_created", "kind", "created_at"),
)

event_counter = sa.Table(
    "event_counter",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("value", sa.BigInteger, nullable=False),
)

consumer_cursors = sa.Table(
    "consumer_cursors",
    metadata,
    sa.Column("consumer", sa.String(255), primary_key=True),
    sa.Column("last_event_id", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("updated_at", sa.Float),
)

# Leases held by long-lived processes (the master daemon) so a second copy waits.
master_locks = sa.Table(
    "master_locks",
    metadata,
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("holder", sa.String(255), nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
)

# Changes a timer-based scheduler has seen but not yet acted on (treeStableTimer).
scheduler_changes = sa.Table(
    "scheduler_changes",
    metadata,
    sa.Column("scheduler", sa.Text, primary_key=True),
    sa.Column(
        "changeid",
        sa.Integer,
        sa.ForeignKey("changes.changeid", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("important", sa.Boolean, nullable=False, server_default=sa.true()),
    # arrival time: the tree-stable timer restarts with every change that arrives
    sa.Column("added_at", sa.Float, nullable=False),
)

# Small per-scheduler state (e.g. when a Nightly scheduler last fired).
scheduler_state = sa.Table(
    "scheduler_state",
    metadata,
    sa.Column("scheduler", sa.Text, primary_key=True),
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("value", JsonText, nullable=False),
)

# Webhook deliveries already processed (change hooks whose dialect reports a delivery id,
# e.g. GitHub's X-GitHub-Delivery): a redelivery of the same (dialect, id) is acknowledged
# without storing its changes again. The unique constraint is what makes two concurrent
# deliveries of the same id safe; rows older than a retention period are pruned on insert.
hook_deliveries = sa.Table(
    "hook_deliveries",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("dialect", sa.String(100), nullable=False),
    sa.Column("delivery_id", sa.String(255), nullable=False),
    sa.Column("received_at", sa.Float, nullable=False),
    sa.Column("changeids", JsonText, nullable=False, server_default="[]"),  # JSON list
    sa.UniqueConstraint("dialect", "delivery_id"),
    sa.Index("ix_hook_deliveries_received_at", "received_at"),
)

# What each polling change source (GitPoller, SVNPoller) remembers between polls, e.g. the
# last revision seen per branch; written in the transaction that stores its changes.
poller_state = sa.Table(
    "poller_state",
    metadata,
    sa.Column("poller", sa.Text, primary_key=True),
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("value", JsonText, nullable=False),
)

# Master-wide switches set from the web (0005): ``clean_shutdown`` while a clean shutdown
# is pending (value: JSON with the reason). The daemon clears it when it starts.
master_state = sa.Table(
    "master_state",
    metadata,
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("value", JsonText, nullable=False),
    sa.Column("set_by", sa.Text),
    sa.Column("set_at", sa.Float),
)

# Answers already given to worker requests (0006), by the worker's Idempotency-Key: a
# worker repeats a request whose answer it did not get (a reset connection, a proxy's 502),
# and the repeat must be answered as the first time, not acted on twice. Stored in the
# transaction that acted; the unique constraint makes two concurrent copies safe; rows are
# pruned after a retention period far longer than a worker keeps retrying.
worker_requests = sa.Table(
    "worker_requests",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("slaveid", sa.Integer, sa.ForeignKey("slaves.id", ondelete="CASCADE"),
              nullable=False),
    sa.Column("request_key", sa.String(64), nullable=False),
    sa.Column("path", sa.String(255), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("status", sa.SmallInteger, nullable=False),
    sa.Column("body", sa.Text, nullable=False, server_default=""),
    sa.UniqueConstraint("slaveid", "request_key"),
    sa.Index("ix_worker_requests_created_at", "created_at"),
)

# Every delivery attempt of every notifier (0007): what it was about, to whom, when, and
# what the server answered. A notification is identified by ``message_key`` (for mail: the
# Message-ID, made from the master, the event and the recipients); one already recorded as
# ``sent`` for the same notifier, event and key is not sent again. ``outcome`` is one of
# sending (in flight, or interrupted by a crash), sent, failed (will be retried), rejected
# (refused for good by the server), skipped (nobody to send to) and error (the message
# could not be made, e.g. a messageFormatter raised).
notifications = sa.Table(
    "notifications",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("notifier", sa.String(255), nullable=False),
    sa.Column("event_id", sa.BigInteger, nullable=False),
    sa.Column("message_key", sa.String(255), nullable=False),
    sa.Column("what", sa.Text, nullable=False, server_default=""),
    sa.Column("builder", sa.String(255)),
    sa.Column("build_number", sa.Integer),
    sa.Column("buildsetid", sa.Integer),
    sa.Column("recipients", JsonText, nullable=False, server_default="[]"),  # JSON list
    sa.Column("attempted_at", sa.Float, nullable=False),
    sa.Column("finished_at", sa.Float),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("answer", sa.Text, nullable=False, server_default=""),
    sa.Index("ix_notifications_notifier_event", "notifier", "event_id"),
    sa.Index("ix_notifications_notifier_id", "notifier", "id"),
    sa.Index("ix_notifications_attempted_at", "attempted_at"),
)

# The IRC bot's per-contact settings (a channel or a nick, lower-cased): the events it is
# told about and whether it is muted, so they survive reconnects and daemon restarts.
irc_contacts = sa.Table(
    "irc_contacts",
    metadata,
    sa.Column("notifier", sa.String(255), primary_key=True),
    sa.Column("contact", sa.String(255), primary_key=True),
    sa.Column("events", JsonText, nullable=False, server_default="[]"),  # JSON list
    sa.Column("muted", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("updated_by", sa.Text, nullable=False, server_default=""),
)

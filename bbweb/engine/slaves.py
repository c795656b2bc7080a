"""Workers ("slaves" in Buildbot's vocabulary): authentication, presence, liveness."""

from __future__ import annotations

import hmac
import json
import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bbweb.db.connection import inserted_id
from bbweb.db.schema import slaves
from bbweb.engine import events
from bbweb.mastercfg.master import MasterConfig

# A worker heartbeats this often unless its BuildSlave sets keepalive_interval, and is
# considered gone after DEFAULT_HEARTBEAT_TIMEOUT of silence (six default heartbeats; with
# keepalive_interval, three of its intervals plus a second: see heartbeat_timeout).
DEFAULT_HEARTBEAT_INTERVAL = 5.0
MAX_HEARTBEAT_INTERVAL = 60.0
DEFAULT_HEARTBEAT_TIMEOUT = 30.0


def heartbeat_interval(cfg: MasterConfig, name: str) -> float:
    """Seconds between a worker's heartbeats: its ``keepalive_interval`` (Buildbot's
    option, capped at a minute so a lost worker is noticed) or the default."""
    slave = cfg.slaves.get(name)
    value = getattr(slave, "keepalive_interval", None) if slave else None
    if not value:
        return DEFAULT_HEARTBEAT_INTERVAL
    return min(max(float(value), 0.2), MAX_HEARTBEAT_INTERVAL)


def heartbeat_timeout(cfg: MasterConfig, name: str) -> float:
    """How long a worker may stay silent before its builds are abandoned."""
    interval = heartbeat_interval(cfg, name)
    if interval == DEFAULT_HEARTBEAT_INTERVAL:
        return DEFAULT_HEARTBEAT_TIMEOUT
    return 3 * interval + 1.0


def find_lost_slaves(conn: Connection, cfg: MasterConfig, now: float | None = None
                     ) -> list[tuple[int, str]]:
    """Connected workers silent for longer than their own heartbeat timeout."""
    now = time.time() if now is None else now
    rows = conn.execute(sa.select(slaves.c.id, slaves.c.name, slaves.c.last_seen)
                        .where(slaves.c.connected.is_(True))).all()
    return [(r.id, r.name) for r in rows
            if r.last_seen is None or r.last_seen < now - heartbeat_timeout(cfg, r.name)]


def check_password(cfg: MasterConfig, name: str, password: str) -> bool:
    """Constant-time comparison against the BuildSlave's configured password."""
    slave = cfg.slaves.get(name)
    if slave is None:
        # still compare, so unknown names take as long as wrong passwords
        hmac.compare_digest(password.encode(), b"x" * max(len(password), 1))
        return False
    return hmac.compare_digest(password.encode("utf-8"), slave.password.encode("utf-8"))


def ensure_slave(conn: Connection, name: str) -> int:
    row = conn.execute(sa.select(slaves.c.id).where(slaves.c.name == name)).first()
    if row:
        return int(row.id)
    return inserted_id(conn.execute(
        slaves.insert().values(name=name, info="{}", connected=False)))


def slave_id(conn: Connection, name: str) -> int | None:
    row = conn.execute(sa.select(slaves.c.id).where(slaves.c.name == name)).first()
    return int(row.id) if row else None


def slave_connected(conn: Connection, name: str, info: dict[str, Any],
                    now: float | None = None) -> int:
    """Record a worker's hello: its info (host, admin, version…) and that it is online."""
    now = time.time() if now is None else now
    sid = ensure_slave(conn, name)
    clean = {str(k): v for k, v in info.items() if isinstance(v, str | int | float | bool)}
    row = conn.execute(sa.select(slaves.c.connected).where(slaves.c.id == sid)).one()
    conn.execute(slaves.update().where(slaves.c.id == sid).values(
        info=json.dumps(clean, sort_keys=True), connected=True, last_seen=now,
        connected_at=now if not row.connected else slaves.c.connected_at))
    if not row.connected:
        events.emit(conn, "slave.connected", slave=name)
    return sid


def heartbeat(conn: Connection, name: str, now: float | None = None) -> int:
    """Note that the worker is alive; a heartbeat after a timeout reconnects it."""
    now = time.time() if now is None else now
    sid = ensure_slave(conn, name)
    row = conn.execute(sa.select(slaves.c.connected).where(slaves.c.id == sid)).one()
    values: dict[str, Any] = {"last_seen": now}
    if not row.connected:
        values.update(connected=True, connected_at=now)
    conn.execute(slaves.update().where(slaves.c.id == sid).values(**values))
    if not row.connected:
        events.emit(conn, "slave.connected", slave=name)
    return sid


def find_silent_slaves(conn: Connection, timeout: float, now: float | None = None
                       ) -> list[tuple[int, str]]:
    """Connected workers not heard from within ``timeout`` seconds."""
    now = time.time() if now is None else now
    rows = conn.execute(sa.select(slaves.c.id, slaves.c.name).where(
        slaves.c.connected.is_(True), slaves.c.last_seen < now - timeout)).all()
    return [(r.id, r.name) for r in rows]


def mark_disconnected(conn: Connection, sid: int, name: str) -> bool:
    updated = conn.execute(slaves.update().where(slaves.c.id == sid,
                                                 slaves.c.connected.is_(True))
                           .values(connected=False)).rowcount
    if updated:
        events.emit(conn, "slave.disconnected", slave=name)
    return bool(updated)

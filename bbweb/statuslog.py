"""``bbweb statuslog --master URL``: Buildbot 0.8's ``buildbot statuslog``, over the live
status stream (``/json/events``) instead of the Perspective Broker port.

It prints ``connected`` and then one line per event, as 0.8's status client did:
``builderAdded NAME`` for every builder at the start, ``builderChangedState NAME STATE
None``, ``buildStarted NAME``, ``buildFinished RESULTS``, ``stepStarted BUILDER STEP``,
``stepFinished BUILDER STEP (RESULT, TEXT)``; with ``--level logs`` also ``logStarted
BUILDER STEP``, ``logFinished BUILDER STEP`` and ``logChunk[STDOUT|STDERR|HEADER]: TEXT``.
``--level builds`` leaves out the step lines.

Where 0.8 printed ``lost connection`` and exited, this prints ``lost connection`` and
reconnects with the id of the last event it printed (``Last-Event-ID``), so nothing is
missed or printed twice. Builder states are read from ``/json/builders`` when an event
may have changed them (0.8 had them pushed). Only ``requests`` is needed.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TextIO
from urllib.parse import quote

import requests

LEVELS = ("builds", "steps", "logs")
CHUNK_TYPES = {"stdout": "STDOUT", "stderr": "STDERR", "header": "HEADER"}
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 60.0  # the stream sends a comment every 15 s, so silence this long is a loss
BACKOFF = (1.0, 2.0, 5.0, 10.0)


class StreamRefused(Exception):
    """The master refused the stream for good (bad URL, no permission): no retrying."""


@dataclass
class SseEvent:
    id: str | None
    kind: str
    data: dict[str, Any]


def parse_sse(lines: Iterator[str]) -> Iterator[SseEvent]:
    """Events of a text/event-stream, given its lines (without line ends)."""
    ident: str | None = None
    kind = "message"
    data: list[str] = []
    for line in lines:
        if line == "":
            if data:
                try:
                    payload = json.loads("\n".join(data))
                except ValueError:
                    payload = {"text": "\n".join(data)}
                yield SseEvent(ident, kind, payload if isinstance(payload, dict) else {})
            kind, data = "message", []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "id":
            ident = value
        elif name == "event":
            kind = value
        elif name == "data":
            data.append(value)


def master_url(master: str) -> str:
    """``host:port`` or a URL → the URL of the site's root, without a trailing ``/``."""
    master = master.strip()
    if "://" not in master:
        master = "http://" + master
    return master.rstrip("/")


@dataclass
class Follower:
    """Follows one stream URL, reconnecting with the last id until :meth:`stop` or the
    stream's natural end (an ``end`` event, or 204)."""

    session: requests.Session
    url: str
    on_event: Callable[[SseEvent], None]
    say: Callable[[str], None]
    last_id: str | None = None
    announce: bool = False  # print connected / lost connection
    on_connect: Callable[[], None] | None = None  # after the first connection only
    stopping: threading.Event = field(default_factory=threading.Event)

    def stop(self) -> None:
        self.stopping.set()

    def run(self) -> None:
        failures = 0
        while not self.stopping.is_set():
            headers = {"Accept": "text/event-stream"}
            if self.last_id is not None:
                headers["Last-Event-ID"] = self.last_id
            try:
                with self.session.get(self.url, headers=headers, stream=True,
                                      timeout=(CONNECT_TIMEOUT, READ_TIMEOUT)) as resp:
                    if resp.status_code == 204:
                        return
                    if resp.status_code == 503:
                        wait = float(resp.headers.get("Retry-After", "5") or 5)
                        self.stopping.wait(min(wait, 60.0))
                        continue
                    if resp.status_code != 200:
                        raise StreamRefused(f"{self.url} answered {resp.status_code}: "
                                            f"{resp.text.strip()[:300]}")
                    failures = 0
                    if self.announce:
                        self.say("connected")
                    if self.on_connect is not None:
                        self.on_connect()
                        self.on_connect = None
                    lines = (line if isinstance(line, str) else line.decode("utf-8", "replace")
                             for line in resp.iter_lines(decode_unicode=True))
                    for event in parse_sse(lines):
                        if self.stopping.is_set():
                            return
                        self.last_id = event.id or self.last_id
                        if event.kind == "end":
                            return
                        self.on_event(event)
            except requests.RequestException:
                pass
            if self.stopping.is_set():
                return
            if self.announce:
                self.say("lost connection")
            self.stopping.wait(BACKOFF[min(failures, len(BACKOFF) - 1)])
            failures += 1


class StatusLog:
    """The lines of 0.8's status client for the events of one master."""

    def __init__(self, base: str, level: str, out: TextIO,
                 auth: tuple[str, str] | None = None) -> None:
        self.base = base
        self.level = level
        self.out = out
        self.lock = threading.Lock()
        self.session = requests.Session()
        self.session.auth = auth
        self.states: dict[str, str] = {}
        self.logs: dict[tuple[str, int], Follower] = {}
        kinds = "builds,slaves" if level == "builds" else "builds,steps,slaves"
        # the builders are listed once the stream is open, so no event falls between
        self.main = Follower(self.session, f"{base}/json/events?kind={kinds}", self.event,
                             self.say, announce=True, on_connect=self.start)

    def say(self, line: str) -> None:
        with self.lock:
            self.out.write(line + "\n")
            self.out.flush()

    def get_json(self, path: str) -> Any:
        resp = self.session.get(self.base + path, timeout=(CONNECT_TIMEOUT, READ_TIMEOUT))
        if resp.status_code != 200:
            raise StreamRefused(f"{self.base}{path} answered {resp.status_code}: "
                                f"{resp.text.strip()[:300]}")
        return resp.json()

    def start(self) -> None:
        """``builderAdded`` for every builder, as on 0.8's subscription."""
        builders = self.get_json("/json/builders")
        for name in sorted(builders, key=_natural):
            self.say(f"builderAdded {name}")
            self.states[name] = builders[name].get("state", "")

    def refresh_states(self) -> None:
        try:
            builders = self.get_json("/json/builders")
        except (requests.RequestException, StreamRefused, ValueError):
            return
        for name in sorted(builders, key=_natural):
            state = builders[name].get("state", "")
            if name in self.states and state != self.states[name]:
                self.say(f"builderChangedState {name} {state} None")
            self.states[name] = state

    def event(self, ev: SseEvent) -> None:
        kind, d = ev.kind, ev.data
        builder = d.get("builder")
        if kind == "builder.created":
            self.say(f"builderAdded {builder}")
            self.states.setdefault(str(builder), "")
        elif kind == "builder.removed":
            self.say(f"builderRemoved {builder}")
            self.states.pop(str(builder), None)
        elif kind == "build.started":
            self.refresh_states()
            self.say(f"buildStarted {builder}")
            if self.level == "logs":
                self.follow_logs(str(builder), int(d.get("build", d.get("number", 0))))
        elif kind == "build.finished":
            self.say(f"buildFinished {d.get('results')}")
            self.refresh_states()
        elif kind.startswith("slave.") and kind.endswith("connected"):
            self.refresh_states()
        elif kind == "step.started":
            self.say(f"stepStarted {builder} {d.get('name')}")
        elif kind == "step.finished":
            self.say(f"stepFinished {builder} {d.get('name')} "
                     f"{self.step_results(d)!r}")

    def step_results(self, d: dict[str, Any]) -> tuple[Any, list[str]]:
        """(result, text2) as 0.8's step status gave them: read from the build's JSON."""
        try:
            build = self.get_json(f"/json/builders/{quote(str(d.get('builder')), safe='')}"
                                  f"/builds/{int(d.get('build', -1))}")
            for step in build.get("steps", []):
                if step.get("name") == d.get("name"):
                    result, text2 = step.get("results", [d.get("results"), []])
                    return result, list(text2 or [])
        except (requests.RequestException, StreamRefused, ValueError, TypeError):
            pass
        return d.get("results"), []

    def follow_logs(self, builder: str, number: int) -> None:
        url = (f"{self.base}/json/events?kind=logs&builder={quote(builder, safe='')}"
               f"&build={number}")

        def log_event(ev: SseEvent) -> None:
            d = ev.data
            if ev.kind == "log.started":
                self.say(f"logStarted {d.get('builder')} {d.get('step')}")
            elif ev.kind == "log.finished":
                self.say(f"logFinished {d.get('builder')} {d.get('step')}")
            elif ev.kind == "log.chunk":
                channel = CHUNK_TYPES.get(str(d.get("stream")), "STDOUT")
                self.say(f"logChunk[{channel}]: {d.get('text', '')}")

        follower = Follower(self.session, url, log_event, self.say)
        self.logs[(builder, number)] = follower

        def run() -> None:
            try:
                follower.run()
            except StreamRefused as exc:
                print(f"bbweb statuslog: {exc}", file=sys.stderr)
            finally:
                self.logs.pop((builder, number), None)

        threading.Thread(target=run, daemon=True, name=f"logs {builder} #{number}").start()

    def stop(self) -> None:
        self.main.stop()
        for follower in list(self.logs.values()):
            follower.stop()


def _natural(name: str) -> list[Any]:
    """0.8 sorted builder names naturally: ``b2`` before ``b10``."""
    out: list[Any] = []
    digits = ""
    text = ""
    for ch in name:
        if ch.isdigit():
            if text:
                out.append((1, text))
                text = ""
            digits += ch
        else:
            if digits:
                out.append((0, int(digits)))
                digits = ""
            text += ch
    if digits:
        out.append((0, int(digits)))
    if text:
        out.append((1, text))
    return out


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-m", "--master", required=True,
                   help="the master's web address: a URL or host:port")
    p.add_argument("--level", choices=LEVELS, default="steps",
                   help="builds, steps (the default, as 0.8's statuslog) or logs (also "
                        "every log's lines)")
    p.add_argument("-u", "--username", help="for a site whose pages need a login "
                   "(HTTP Basic)")
    p.add_argument("-p", "--passwd", help="the password for --username")


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = sys.stdout if out is None else out
    auth = (args.username, args.passwd or "") if args.username else None
    log = StatusLog(master_url(args.master), args.level, out, auth)
    try:
        log.main.run()
    except StreamRefused as exc:
        print(f"bbweb statuslog: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        log.stop()
    return 0


__all__ = ["LEVELS", "SseEvent", "StatusLog", "add_arguments", "master_url", "parse_sse",
           "run"]

"""A status push receiver in a process of its own: it appends every POST it gets to a file
(one JSON line each: headers, raw body, the packets decoded, the other form fields).

Run as ``python -m tests.support.push_receiver PORT FILE``. Files next to ``FILE`` steer
it while it runs: ``FILE.status`` holds a status code to answer instead of 200 (the
request is still recorded, with that answer; ``CODE once``: for the next request only);
``FILE.hold`` makes it record the request
and then never answer (a receiver that took the data but whose "200" never arrived).

:class:`PushReceiver` starts, stops and restarts it on the same port and reads the file.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest

from tests.support.polling import wait_for

REPO = Path(__file__).resolve().parents[2]


def _handler(out: Path) -> type[BaseHTTPRequestHandler]:
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            # decided on arrival: a request already being answered is never held
            hold = Path(str(out) + ".hold").exists()
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            ctype = self.headers.get("Content-Type", "")
            record: dict[str, Any] = {
                "path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": body.decode("utf-8", "replace"), "form": {}, "packets": None}
            try:
                if ctype.startswith("application/x-www-form-urlencoded"):
                    form = {k: v[0] for k, v in parse_qs(body.decode("ascii"),
                                                         keep_blank_values=True).items()}
                    record["packets"] = json.loads(form.pop("packets"))
                    record["form"] = form
                else:
                    record["packets"] = json.loads(body)
            except (ValueError, KeyError) as exc:
                record["error"] = f"{type(exc).__name__}: {exc}"
            status_file = Path(str(out) + ".status")
            with lock:
                told = status_file.read_text().split() if status_file.exists() else []
                if told[1:] == ["once"]:
                    status_file.unlink()
            status = int(told[0]) if told else 200
            record["answer"] = status
            with lock, out.open("a") as f:
                f.write(json.dumps(record) + "\n")
                f.flush()
                os.fsync(f.fileno())
            if hold:
                time.sleep(3600)
                return
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

    return Handler


def serve(port: int, out: Path) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", port), _handler(out))
    server.daemon_threads = True
    server.serve_forever()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PushReceiver:
    """The receiver process, restartable on its port."""

    def __init__(self, directory: Path, port: int | None = None) -> None:
        self.out = directory / "received.jsonl"
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/push"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> PushReceiver:
        env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep
               + os.environ.get("PYTHONPATH", "")}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.support.push_receiver", str(self.port),
             str(self.out)], env=env, cwd=REPO, start_new_session=True)

        def listening() -> bool:
            assert self.proc is not None and self.proc.poll() is None, "receiver exited"
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.5).close()
                return True
            except OSError:
                return False

        wait_for(listening, 20, what="the push receiver to listen")
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    def answer(self, status: int | None, *, once: bool = False) -> None:
        """Answer ``status`` from now on (None: 200 again), or to the next request only."""
        path = Path(str(self.out) + ".status")
        if status is None:
            path.unlink(missing_ok=True)
        else:
            path.write_text(f"{status} once" if once else str(status))

    def hold(self, on: bool = True) -> None:
        path = Path(str(self.out) + ".hold")
        if on:
            path.write_text("hold")
        else:
            path.unlink(missing_ok=True)

    def requests(self) -> list[dict[str, Any]]:
        if not self.out.exists():
            return []
        text = self.out.read_text()
        complete = text[:text.rfind("\n") + 1]  # not a line still being written
        return [json.loads(line) for line in complete.splitlines() if line]

    def packets(self, accepted_only: bool = True) -> list[dict[str, Any]]:
        """Every packet received (in arrival order), of the requests answered 2xx."""
        return [p for r in self.requests()
                if not accepted_only or 200 <= r["answer"] < 300
                for p in (r["packets"] or [])]

    def wait_for_packets(self, predicate: Callable[[list[dict[str, Any]]], Any],
                         timeout: float = 30, what: str = "packets") -> Any:
        return wait_for(lambda: predicate(self.packets()), timeout, what=what)


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[PushReceiver]:
    """A receiver process for this test (stopped at its end)."""
    rec = PushReceiver(tmp_path).start()
    yield rec
    rec.stop()


if __name__ == "__main__":
    serve(int(sys.argv[1]), Path(sys.argv[2]))

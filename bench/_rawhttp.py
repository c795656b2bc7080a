"""A lean load client for the hook benches: keep-alive HTTP/1.1 over plain sockets, the
requests encoded before the clock starts.

On the 2-core machine the client shares the CPU with the server. ``requests`` costs
about 0.7 ms of CPU per POST (as much as half of what the server spends storing a
change), and its threads share one interpreter lock; so a bench that drives the hooks
through it measures the client nearly as much as the server. Sending prepared bytes and
reading ``Content-Length`` answers costs a fraction of that, which leaves the CPU to the
server (what ``ab`` does for the GET benches, which cannot vary bodies and headers per
request).
"""

from __future__ import annotations

import socket
import threading
import time
from urllib.parse import urlsplit

from _common import LoadResult


def encode_post(url: str, body: bytes, headers: dict[str, str]) -> bytes:
    """The bytes of one POST of ``body`` to ``url`` on a keep-alive connection."""
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    lines = [f"POST {target} HTTP/1.1", f"Host: {parts.netloc}",
             f"Content-Length: {len(body)}", "Connection: keep-alive",
             *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class _Connection:
    def __init__(self, host: str, port: int) -> None:
        self.sock = socket.create_connection((host, port), timeout=60)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def exchange(self, raw: bytes) -> tuple[int, bytes]:
        """Send one request, read its answer (status, body)."""
        self.sock.sendall(raw)
        buf = self.buf
        while b"\r\n\r\n" not in buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the server closed the connection")
            buf += chunk
        head, _, rest = buf.partition(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        close = False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                close = True
        while len(rest) < length:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the server closed the connection mid-answer")
            rest += chunk
        self.buf = rest[length:]
        if close:
            self.sock.close()
            raise _Closed(status, rest[:length])
        return status, rest[:length]

    def close(self) -> None:
        self.sock.close()


class _Closed(Exception):
    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


def run_raw(base_url: str, prepared: list[bytes], concurrency: int,
            ok: tuple[int, ...] = (200,)) -> LoadResult:
    """Send every prepared request once, from ``concurrency`` threads (one keep-alive
    connection each, opened again if the server closes it)."""
    parts = urlsplit(base_url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    lock = threading.Lock()
    counter = iter(range(len(prepared)))
    latencies: list[float] = []
    errors: list[str] = []

    def worker() -> None:
        conn: _Connection | None = None
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                break
            t = time.perf_counter()
            try:
                if conn is None:
                    conn = _Connection(host, port)
                status, body = conn.exchange(prepared[i])
            except _Closed as closed:
                status, body, conn = closed.status, closed.body, None
            except OSError as exc:
                status, body = -1, str(exc).encode()
                if conn is not None:
                    conn.close()
                conn = None
            dt = time.perf_counter() - t
            with lock:
                latencies.append(dt)
                if status not in ok:
                    errors.append(f"{status}: {body[:200].decode(errors='replace')}")
        if conn is not None:
            conn.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return LoadResult(len(prepared), concurrency, time.perf_counter() - start, latencies,
                      errors)

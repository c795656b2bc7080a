"""A TCP proxy for HTTP/1.1 that loses answers on purpose, for testing what a worker and the
master do when a request was processed but its answer never arrived (a proxy's 502, a
reset connection).

Each client connection carries one request at a time; the proxy forwards it to the
upstream server on a fresh connection (``Connection: close``), reads the whole answer, and
then either relays it or — when a rule matches — resets the client's connection without
sending a byte of it. The server has acted on the request all the same.
"""

from __future__ import annotations

import re
import socket
import struct
import threading
from dataclasses import dataclass, field


@dataclass
class DropRule:
    """Lose the answers of requests whose request line matches ``request``, and whose
    answer matches ``answer`` when given, after letting ``skip`` of them through;
    ``times`` answers are lost, then the rule is spent."""

    request: re.Pattern[str]
    answer: re.Pattern[bytes] | None = None
    skip: int = 0
    times: int = 1
    dropped: list[str] = field(default_factory=list)  # request lines of lost answers

    def wants(self, request_line: str, response: bytes) -> bool:
        if len(self.dropped) >= self.times or not self.request.search(request_line):
            return False
        if self.answer is not None and not self.answer.search(response):
            return False
        if self.skip > 0:
            self.skip -= 1
            return False
        return True


def _read_request(sock: socket.socket, buf: bytearray) -> bytes | None:
    """One whole request (head and Content-Length body) from ``sock``; None at EOF."""
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        if not data:
            return None
        buf += data
    head_end = buf.index(b"\r\n\r\n") + 4
    head = bytes(buf[:head_end])
    match = re.search(rb"(?im)^content-length:\s*(\d+)\s*$", head)
    length = int(match.group(1)) if match else 0
    if re.search(rb"(?im)^transfer-encoding:", head):
        raise ValueError("the fault proxy does not relay chunked requests")
    while len(buf) < head_end + length:
        data = sock.recv(65536)
        if not data:
            return None
        buf += data
    message = bytes(buf[:head_end + length])
    del buf[:head_end + length]
    return message


def _close_after_this(request: bytes) -> bytes:
    head, _, body = request.partition(b"\r\n\r\n")
    lines = [ln for ln in head.split(b"\r\n")
             if not ln.lower().startswith(b"connection:")]
    return b"\r\n".join(lines + [b"Connection: close"]) + b"\r\n\r\n" + body


class FaultProxy:
    """``FaultProxy(port)`` relays 127.0.0.1:<its own port> to 127.0.0.1:``port``."""

    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._lock = threading.Lock()
        self._rules: list[DropRule] = []
        self.requests: list[str] = []  # request lines relayed or dropped, in order
        self._closing = False
        self._upstreams: set[socket.socket] = set()
        self._thread = threading.Thread(target=self._accept_loop, daemon=True,
                                        name="fault-proxy")
        self._thread.start()

    def drop_answer(self, request: str, answer: bytes | None = None, skip: int = 0,
                    times: int = 1) -> DropRule:
        """Lose the answer of the next request(s) matching ``request`` (a regex over the
        request line, e.g. ``r"POST /api/worker/claim "``)."""
        rule = DropRule(re.compile(request), re.compile(answer) if answer else None, skip,
                        times)
        with self._lock:
            self._rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def close(self) -> None:
        """Stop accepting, and hang up on the server for requests still in flight (so a
        long-poll does not keep it busy after the test)."""
        self._closing = True
        self._listener.close()
        with self._lock:
            for up in list(self._upstreams):
                try:
                    up.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    # -- relaying -------------------------------------------------------------------------
    def _accept_loop(self) -> None:
        while not self._closing:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        buf = bytearray()
        try:
            while True:
                request = _read_request(client, buf)
                if request is None:
                    return
                response = self._forward(_close_after_this(request))
                line = request.split(b"\r\n", 1)[0].decode("latin-1")
                with self._lock:
                    self.requests.append(line)
                    rule = next((r for r in self._rules if r.wants(line, response)), None)
                    if rule is not None:
                        rule.dropped.append(line)
                if rule is not None or not response:
                    # reset: the client sees the connection die with no answer at all
                    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                      struct.pack("ii", 1, 0))
                    return
                client.sendall(response)
                return  # the answer says Connection: close
        except OSError:
            return
        finally:
            client.close()

    def _forward(self, request: bytes) -> bytes:
        chunks = []
        try:
            with socket.create_connection(self.upstream, timeout=120) as up:
                with self._lock:
                    self._upstreams.add(up)
                try:
                    up.sendall(request)
                    while True:
                        data = up.recv(65536)
                        if not data:
                            break
                        chunks.append(data)
                finally:
                    with self._lock:
                        self._upstreams.discard(up)
        except OSError:
            return b""
        return b"".join(chunks)

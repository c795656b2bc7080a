"""A real SMTP server for tests: aiosmtpd in a thread, with STARTTLS, implicit TLS and
AUTH as asked, and a certificate made with the ``openssl`` command.

Recipients named ``refused-…`` are refused with 550, ``later-…`` with 450. Every
message is kept as it arrived (envelope, raw bytes, parsed with :mod:`email`).
Tests share one server per kind for the session and tell their mail apart by the envelope
sender (each test uses its own ``fromaddr``). ``hold()`` makes the server keep the client
waiting after it stored a message and before it answers, as a slow or crashing exchange
would.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import socket
import ssl
import subprocess
import threading
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.support.polling import wait_for

USER, PASSWORD = "bbweb", "s3cret"


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost: (cert.pem, key.pem)."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                    str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True)
    return cert, key


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Received:
    """One message as the server stored it."""

    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    tls: bool
    auth: Any
    message: EmailMessage = field(init=False)

    def __post_init__(self) -> None:
        self.message = email.message_from_bytes(self.raw, policy=email.policy.default)

    def __getitem__(self, header: str) -> Any:
        return self.message[header]

    @property
    def message_id(self) -> str:
        return str(self.message["Message-ID"])

    def body(self) -> str:
        """The text of the first text part (line ends as the sender wrote them, not as
        SMTP carried them)."""
        part = self.message.get_body(preferencelist=("plain", "html"))
        assert part is not None
        return part.get_content().replace("\r\n", "\n")

    def attachments(self) -> dict[str, Any]:
        """filename -> (content type, content) of every attachment."""
        out = {}
        for p in self.message.iter_attachments():
            content = p.get_content()
            if isinstance(content, str):
                content = content.replace("\r\n", "\n")
            out[p.get_filename()] = (p.get_content_type(), content)
        return out


class _Sink:
    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    async def handle_RCPT(self, _server: Any, _session: Any, envelope: Any, address: str,
                          _options: Any) -> str:
        """``refused-…`` addresses are refused for good (550), ``later-…`` for now (450)."""
        if address.startswith("refused-"):
            return "550 5.1.1 no such mailbox"
        if address.startswith("later-"):
            return "450 4.2.1 mailbox busy, try later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = envelope.original_content or envelope.content
        tls = server.transport.get_extra_info("ssl_object") is not None
        received = Received(envelope.mail_from, list(envelope.rcpt_tos), bytes(raw), tls,
                            session.auth_data)
        with self.server.lock:
            self.server.messages.append(received)
        while self.server.holding.is_set():  # keep the client waiting for our answer
            await asyncio.sleep(0.02)
        return "250 Message accepted for delivery"


def _authenticator(_server: Any, _session: Any, _envelope: Any, _mechanism: str,
                   auth_data: Any) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and \
        (auth_data.login, auth_data.password) == (USER.encode(), PASSWORD.encode())
    return AuthResult(success=ok, handled=False, auth_data=USER if ok else None)


class SmtpServer:
    """One aiosmtpd server on 127.0.0.1.

    ``kind``: ``plain`` (no TLS, no AUTH), ``starttls`` (STARTTLS and AUTH required),
    ``smtps`` (implicit TLS, AUTH required), ``clear-auth`` (AUTH offered without any
    TLS)."""

    def __init__(self, kind: str, certdir: Path, port: int | None = None) -> None:
        self.kind = kind
        self.port = port or free_port()
        self.cert, self.key = certdir / "cert.pem", certdir / "key.pem"
        if not self.cert.exists():
            make_certificate(certdir)
        self.messages: list[Received] = []
        self.lock = threading.Lock()
        self.holding = threading.Event()
        self.controller: Controller | None = None

    def _controller(self) -> Controller:
        sink = _Sink(self)
        common: dict[str, Any] = {"hostname": "127.0.0.1", "port": self.port,
                                  "server_hostname": "localhost", "ident": "bbweb-test-smtpd"}
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(str(self.cert), str(self.key))
        if self.kind == "plain":
            return Controller(sink, **common)
        if self.kind == "starttls":
            return Controller(sink, tls_context=ctx, require_starttls=True,
                              authenticator=_authenticator, auth_required=True,
                              auth_require_tls=True, **common)
        if self.kind == "smtps":
            # (aiosmtpd counts only STARTTLS as TLS for AUTH; this connection is TLS
            # from its first byte)
            return Controller(sink, ssl_context=ctx, authenticator=_authenticator,
                              auth_required=True, auth_require_tls=False, **common)
        if self.kind == "clear-auth":
            return Controller(sink, authenticator=_authenticator, auth_required=True,
                              auth_require_tls=False, **common)
        raise ValueError(self.kind)

    def start(self) -> SmtpServer:
        self.controller = self._controller()
        self.controller.start()
        return self

    def stop(self) -> None:
        self.holding.clear()
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def hold(self) -> None:
        self.holding.set()

    def release(self) -> None:
        self.holding.clear()

    def received(self, sender: str | None = None) -> list[Received]:
        with self.lock:
            return [m for m in self.messages if sender is None or m.mail_from == sender]

    def wait_for_mail(self, sender: str, count: int, timeout: float = 30.0
                      ) -> list[Received]:
        """The first ``count`` messages from ``sender``, waiting for them to arrive."""
        wait_for(lambda: len(self.received(sender)) >= count, timeout,
                 what=f"{count} mail(s) from {sender} (got {len(self.received(sender))})")
        return self.received(sender)

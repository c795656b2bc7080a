"""Sending mail over SMTP with :mod:`smtplib`: STARTTLS, implicit TLS, AUTH, and answers.

Certificates are verified (against the system's CAs, or a pinned CA file). A password is
never sent over an unencrypted connection: with ``smtpUser``/``smtpPassword`` the
connection must be encrypted (STARTTLS, which is then required, or implicit TLS), and a
server that does not offer STARTTLS is refused with an error saying why.

One connection is kept while mail keeps flowing (reused within :data:`REUSE_SECONDS`) and
dropped after any error. The answer of a successful send is the server's reply to the
message data (e.g. ``250 Message accepted``), plus any recipients it refused.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
import time
from dataclasses import dataclass
from typing import Any

from bbweb.plugins.notifiers.base import DeliveryError, Rejected

log = logging.getLogger("bbweb.notifiers.mail")

REUSE_SECONDS = 30.0
DEFAULT_TIMEOUT = 60.0


class InsecureConnection(DeliveryError):
    """The server would have us send a password (or mail that must be encrypted) in
    clear."""


@dataclass(frozen=True)
class SmtpSettings:
    host: str = "localhost"
    port: int = 25
    starttls: bool = False  # STARTTLS required
    implicit_tls: bool = False  # TLS from the first byte (SMTPS, port 465)
    user: str | None = None
    password: str | None = None
    ca_file: str | None = None
    timeout: float = DEFAULT_TIMEOUT

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    def tls_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ca_file)


class SmtpTransport:
    """Delivers messages through one SMTP server; not thread-safe (one per notifier)."""

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings
        self._smtp: smtplib.SMTP | None = None
        self._last_used = 0.0

    # -- connection ----------------------------------------------------------------------

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        if s.implicit_tls:
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout,
                                                  context=s.tls_context())
        else:
            smtp = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
        try:
            smtp.ehlo_or_helo_if_needed()
            if not s.implicit_tls and (s.starttls or s.user is not None):
                if not smtp.has_extn("starttls"):
                    why = ("useTls=True requires it" if s.starttls else
                           "refusing to send the SMTP password (smtpUser/smtpPassword) over "
                           "an unencrypted connection")
                    raise InsecureConnection(f"the SMTP server {s.where} does not offer "
                                             f"STARTTLS; {why}")
                smtp.starttls(context=s.tls_context())
                smtp.ehlo()
            if s.user is not None:
                smtp.login(s.user, s.password or "")
        except BaseException:
            _quietly_close(smtp)
            raise
        return smtp

    def _connection(self) -> tuple[smtplib.SMTP, bool]:
        """The open connection (and True) if recent enough to reuse, else a new one."""
        if self._smtp is not None and time.monotonic() - self._last_used < REUSE_SECONDS:
            return self._smtp, True
        self.close()
        self._smtp = self._connect()
        return self._smtp, False

    def close(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            try:
                smtp.quit()
            except (smtplib.SMTPException, OSError):
                _quietly_close(smtp)

    # -- sending -------------------------------------------------------------------------

    def send(self, sender: str, recipients: list[str], data: bytes) -> str:
        """Deliver ``data`` to ``recipients``; the server's answer.

        Raises :class:`~bbweb.plugins.notifiers.base.Rejected` when the server refuses the
        message for good (5xx for the sender, every recipient or the data) and
        :class:`~bbweb.plugins.notifiers.base.DeliveryError` (or an OSError/SMTPException)
        when it may work later."""
        try:
            smtp, reused = self._connection()
            try:
                answer = self._transaction(smtp, sender, recipients, data)
            except smtplib.SMTPServerDisconnected:
                if not reused:
                    raise
                # an idle connection the server had closed: nothing was sent on it
                self.close()
                smtp, _ = self._connection()
                answer = self._transaction(smtp, sender, recipients, data)
        except Rejected:
            self._reset()
            raise
        except ssl.SSLCertVerificationError as exc:
            self.close()
            raise DeliveryError(f"the certificate of the SMTP server {self.settings.where} "
                                f"was not accepted: {exc.verify_message or exc} (pin its CA "
                                "with smtpCAFile=)") from exc
        except smtplib.SMTPAuthenticationError as exc:
            self.close()
            why = _reply(exc.smtp_code, exc.smtp_error)
            raise DeliveryError(f"the SMTP server {self.settings.where} refused the login "
                                f"of {self.settings.user!r}: {why}") from exc
        except (smtplib.SMTPException, OSError):
            self.close()
            raise
        self._last_used = time.monotonic()
        return answer

    def _reset(self) -> None:
        if self._smtp is None:
            return
        try:
            self._smtp.rset()
            self._last_used = time.monotonic()
        except (smtplib.SMTPException, OSError):
            self.close()

    def _transaction(self, smtp: smtplib.SMTP, sender: str, recipients: list[str],
                     data: bytes) -> str:
        code, resp = smtp.mail(sender)
        if code != 250:
            _refuse(code, resp, f"sender {sender}")
        refused: dict[str, str] = {}
        temporary = False
        for rcpt in recipients:
            code, resp = smtp.rcpt(rcpt)
            if code not in (250, 251):
                refused[rcpt] = _reply(code, resp)
                temporary = temporary or 400 <= code < 500
        if len(refused) == len(recipients):
            listing = "; ".join(f"{r}: {why}" for r, why in refused.items())
            if temporary:
                smtp.rset()
                raise DeliveryError(f"every recipient was refused for now: {listing}")
            raise Rejected(f"every recipient was refused: {listing}")
        code, resp = smtp.data(data)
        if code != 250:
            _refuse(code, resp, "the message")
        answer = _reply(code, resp)
        if refused:
            answer += "; refused: " + "; ".join(f"{r}: {why}" for r, why in refused.items())
            log.warning("SMTP server %s refused some recipients: %s", self.settings.where,
                        answer)
        return answer


def _reply(code: int, resp: Any) -> str:
    text = resp.decode("utf-8", "replace") if isinstance(resp, bytes) else str(resp)
    return f"{code} {' '.join(text.split())}"


def _refuse(code: int, resp: Any, what: str) -> None:
    message = f"{what} was refused: {_reply(code, resp)}"
    if 500 <= code < 600:
        raise Rejected(message)
    raise DeliveryError(message)


def _quietly_close(smtp: Any) -> None:
    try:
        smtp.close()
    except Exception:  # closing a broken connection: nothing more to learn
        pass

"""Talking to Gerrit's ssh command interface with the system's OpenSSH client.

``gerrit review`` is run as ``ssh [options] -- user@server gerrit review ...``. ssh does not
pass an argument vector to the server: it joins the words after the destination with
spaces into one command line, which Gerrit splits again with shell-like quoting rules. So
every value that comes from a build (project, message, revision) is quoted here with
:func:`shlex.quote`; POSIX single quotes mean the same to Gerrit's splitter as to a shell.
Buildbot 0.8 put the project and the revision in unquoted and replaced the message's
``'`` with ``"``, so a project name such as ``x --submit`` added options to the review.

How a run ended decides what the notifier does with it:

* ssh's own failure (exit status 255: connection refused, host key or login refused), a
  timeout, or no ``ssh`` program: :class:`~bbweb.plugins.notifiers.base.DeliveryError`,
  the review is sent again later;
* any other non-zero exit is Gerrit refusing the command (``fatal: ...`` on stderr: no
  such change, label not permitted): :class:`~bbweb.plugins.notifiers.base.Rejected`, with
  Gerrit's words, not retried.

The Gerrit version decides how labels are written (``--verified N`` before 2.6,
``--label Verified=N`` from 2.6 on); it is asked with ``gerrit version`` when labels are to
be sent and remembered for :data:`VERSION_CACHE_SECONDS`, as 0.8 did.
"""

from __future__ import annotations

import logging
import re
import shlex
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bbweb.plugins.notifiers.base import DeliveryError, Rejected

log = logging.getLogger("bbweb.notifiers.gerrit")

VERSION_CACHE_SECONDS = 600.0
LABELS_SINCE = (2, 6)
SSH_FAILED = 255  # what ssh exits with when it, not the remote command, failed
ANSWER_LIMIT = 2000  # characters of Gerrit's output kept as the recorded answer
_VERSION = re.compile(r"^gerrit version (?P<version>\S+)\s*$")
_NUMBERS = re.compile(r"^(\d+)(?:\.(\d+))?(?:\.(\d+))?")


@dataclass(frozen=True)
class SshSettings:
    """Where Gerrit's ssh interface is and how to log in (checked by the notifier)."""

    server: str
    username: str
    port: int = 29418
    identity_file: str | None = None
    known_hosts_file: str | None = None
    timeout: float = 60.0
    ssh_program: str = "ssh"


@dataclass(frozen=True)
class Review:
    """One ``gerrit review``: which patchset, what to say, which votes (0 = none)."""

    project: str
    revision: str
    message: str | None
    verified: int = 0
    reviewed: int = 0


def ssh_argv(settings: SshSettings, remote: Sequence[str]) -> list[str]:
    """The local argv running ``remote`` (words already quoted for the remote side).

    ``-p`` and its port are two elements (0.8 passed ``"-p 29418"`` as one); BatchMode
    keeps ssh from ever waiting for a password or a host-key answer in the daemon; ``--``
    ends ssh's options, so nothing after it is read as one."""
    argv = [settings.ssh_program, "-p", str(settings.port), "-o", "BatchMode=yes",
            "-o", f"ConnectTimeout={max(1, int(settings.timeout))}"]
    if settings.identity_file:
        argv += ["-i", settings.identity_file, "-o", "IdentitiesOnly=yes"]
    if settings.known_hosts_file:
        argv += ["-o", f"UserKnownHostsFile={settings.known_hosts_file}",
                 "-o", "StrictHostKeyChecking=yes"]
    return [*argv, "--", f"{settings.username}@{settings.server}", *remote]


def review_command(review: Review, version: tuple[int, ...] | None) -> list[str]:
    """The remote words of a ``gerrit review``, each value quoted: the command line Gerrit
    receives is ``" ".join(...)`` of these. ``version`` is needed only with votes."""
    words = ["gerrit", "review", "--project", shlex.quote(review.project)]
    if review.message:
        words += ["--message", shlex.quote(review.message)]
    labels = version is not None and version >= LABELS_SINCE
    for value, flag, label in ((review.verified, "--verified", "Verified"),
                               (review.reviewed, "--code-review", "Code-Review")):
        if value:
            if version is None:
                raise ValueError("the Gerrit version is needed to send votes")
            words += ["--label", f"{label}={value}"] if labels else [flag, str(value)]
    words.append(shlex.quote(review.revision))
    return words


def parse_version(stdout: str) -> tuple[int, ...] | None:
    """``gerrit version 2.8.1`` -> ``(2, 8, 1)``; None for anything else."""
    m = _VERSION.match(stdout.strip())
    if m is None:
        return None
    numbers = _NUMBERS.match(m["version"])
    if numbers is None:
        return None
    return tuple(int(n) for n in numbers.groups() if n is not None)


def _clip(text: str) -> str:
    text = text.strip()
    return text if len(text) <= ANSWER_LIMIT else text[:ANSWER_LIMIT] + "..."


class GerritSsh:
    """Runs Gerrit commands over ssh for one notifier; remembers the server's version."""

    def __init__(self, settings: SshSettings,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self._clock = clock
        self._version: tuple[int, ...] | None = None
        self._version_at = 0.0

    @property
    def where(self) -> str:
        s = self.settings
        return f"{s.username}@{s.server}:{s.port}"

    def run(self, remote: Sequence[str]) -> subprocess.CompletedProcess[str]:
        """Run one remote command; ssh's own failures are :class:`DeliveryError`."""
        argv = ssh_argv(self.settings, remote)
        try:
            done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                                  text=True, errors="replace", timeout=self.settings.timeout,
                                  check=False)
        except FileNotFoundError as exc:
            raise DeliveryError(f"the ssh client {self.settings.ssh_program!r} is not "
                                f"installed or not on PATH: {exc}") from exc
        except subprocess.TimeoutExpired as exc:
            raise DeliveryError(f"ssh to {self.where} did not finish within "
                                f"{self.settings.timeout:g}s") from exc
        if done.returncode == SSH_FAILED:
            raise DeliveryError(f"ssh could not run the command on {self.where} (exit 255): "
                                f"{_clip(done.stderr) or 'no message'}")
        return done

    def version(self) -> tuple[int, ...]:
        """The server's Gerrit version, asked at most every :data:`VERSION_CACHE_SECONDS`."""
        now = self._clock()
        if self._version is not None and now - self._version_at < VERSION_CACHE_SECONDS:
            return self._version
        done = self.run(["gerrit", "version"])
        if done.returncode != 0:
            raise Rejected(f"'gerrit version' failed on {self.where} (exit "
                           f"{done.returncode}): {_clip(done.stderr) or _clip(done.stdout)}")
        found = parse_version(done.stdout)
        if found is None:
            raise Rejected(f"{self.where} did not answer 'gerrit version' like Gerrit: "
                           f"{_clip(done.stdout)!r}")
        log.info("Gerrit at %s is version %s", self.where, ".".join(map(str, found)))
        self._version, self._version_at = found, now
        return found

    def review(self, review: Review) -> str:
        """Send one review; Gerrit's answer (it says nothing when all went well)."""
        version = self.version() if review.verified or review.reviewed else None
        done = self.run(review_command(review, version))
        if done.returncode != 0:
            raise Rejected(f"Gerrit refused the review (exit {done.returncode}): "
                           f"{_clip(done.stderr) or _clip(done.stdout) or 'no message'}")
        answer = "\n".join(t for t in (_clip(done.stdout), _clip(done.stderr)) if t)
        return answer or "OK"


__all__ = ["LABELS_SINCE", "VERSION_CACHE_SECONDS", "GerritSsh", "Review", "SshSettings",
           "parse_version", "review_command", "ssh_argv"]

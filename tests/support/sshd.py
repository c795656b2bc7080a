"""A real OpenSSH server standing in for Gerrit's ssh interface (port, keys, a forced
command), for the tests of GerritStatusPush.

The server is Debian's ``sshd`` (package openssh-server; scripts/test.sh installs it) on a
free port of 127.0.0.1, with its own host key, accepting one key of the user running the
tests and nothing else. Whatever the client asks to run, sshd runs
tests/support/fake_gerrit.py instead (``ForceCommand``), which records the command line
and answers like Gerrit. The client side is the system's ``ssh``, given the identity and
a known_hosts file holding the server's key.

One server per session (:func:`fake_gerrit`); tests tell their commands apart by
clearing the record first (:meth:`FakeGerrit.clear`). ``stop()`` and ``start()`` take the
server down and back up on the same port.
"""

from __future__ import annotations

import getpass
import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.polling import wait_for

RECORDER = Path(__file__).resolve().with_name("fake_gerrit.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _sshd() -> str:
    found = shutil.which("sshd") or ("/usr/sbin/sshd" if os.path.exists("/usr/sbin/sshd")
                                     else None)
    if found is None:
        pytest.fail("sshd is not installed: install Debian's openssh-server "
                    "(scripts/test.sh does)")
    return found


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "bbweb-test",
                    "-f", str(path)], check=True, capture_output=True)


class FakeGerrit:
    """sshd with Gerrit's recorder as forced command; see the module's docstring."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.state = root / "state"
        self.state.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.user = getpass.getuser()
        self.host_key = root / "ssh_host_ed25519_key"
        self.identity_file = root / "client_id_ed25519"
        self.known_hosts_file = root / "known_hosts"
        self.log_file = root / "sshd.log"
        self.config = root / "sshd_config"
        self._proc: subprocess.Popen[bytes] | None = None
        _keygen(self.host_key)
        _keygen(self.identity_file)
        (root / "authorized_keys").write_text(
            (root / "client_id_ed25519.pub").read_text())
        host_pub = " ".join(Path(f"{self.host_key}.pub").read_text().split()[:2])
        self.known_hosts_file.write_text(f"[127.0.0.1]:{self.port} {host_pub}\n")
        self.config.write_text("\n".join([
            f"Port {self.port}",
            "ListenAddress 127.0.0.1",
            f"HostKey {self.host_key}",
            "PidFile none",
            f"AuthorizedKeysFile {root / 'authorized_keys'}",
            "StrictModes no",  # the files live under a world-writable /tmp
            "UsePAM no",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PermitRootLogin prohibit-password",
            f"AllowUsers {self.user}",
            "AllowTcpForwarding no",
            "X11Forwarding no",
            "PermitTTY no",
            f"ForceCommand {sys.executable} {RECORDER} {self.state}",
            "LogLevel VERBOSE",
            "",
        ]))

    # -- the server ----------------------------------------------------------------------

    def start(self) -> FakeGerrit:
        sshd = _sshd()
        if os.geteuid() == 0:
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # its privilege separation
        check = subprocess.run([sshd, "-t", "-f", str(self.config)], capture_output=True,
                               text=True)
        assert check.returncode == 0, f"sshd refuses its configuration: {check.stderr}"
        log = self.log_file.open("ab")
        self._proc = subprocess.Popen([sshd, "-D", "-e", "-f", str(self.config)],
                                      stdout=log, stderr=subprocess.STDOUT)
        log.close()
        wait_for(self._listening, timeout=20, what=f"sshd to listen on port {self.port}")
        return self

    def _listening(self) -> bool:
        if self._proc is not None and self._proc.poll() is not None:
            raise AssertionError(f"sshd exited with {self._proc.returncode}: "
                                 f"{self.log_file.read_text()[-2000:]}")
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", self.port)) == 0

    def stop(self) -> None:
        if self._proc is None:
            return
        self._proc.terminate()
        self._proc.wait(timeout=20)
        self._proc = None
        wait_for(lambda: not self._port_open(), timeout=20,
                 what=f"port {self.port} to be closed")

    def _port_open(self) -> bool:
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", self.port)) == 0

    # -- what Gerrit does and saw ----------------------------------------------------------

    def commands(self) -> list[dict[str, Any]]:
        """Every command line the server received since :meth:`clear`, oldest first."""
        path = self.state / "commands.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line]

    def reviews(self) -> list[dict[str, Any]]:
        return [c for c in self.commands() if (c["argv"] or [])[:2] == ["gerrit", "review"]]

    def clear(self, version: str = "2.8.1") -> None:
        """Forget what was received; answer ``version``; accept reviews."""
        (self.state / "commands.jsonl").unlink(missing_ok=True)
        (self.state / "refuse").unlink(missing_ok=True)
        (self.state / "version").write_text(version + "\n")

    def set_version(self, version: str) -> None:
        (self.state / "version").write_text(version + "\n")

    def refuse(self, message: str) -> None:
        """Refuse every review with ``message`` on stderr and exit status 1."""
        (self.state / "refuse").write_text(message)

    def notifier_args(self) -> dict[str, Any]:
        """The GerritStatusPush arguments that reach this server."""
        return {"server": "127.0.0.1", "username": self.user, "port": self.port,
                "identity_file": str(self.identity_file),
                "known_hosts_file": str(self.known_hosts_file)}


@pytest.fixture(scope="session")
def fake_gerrit_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeGerrit]:
    server = FakeGerrit(tmp_path_factory.mktemp("fake-gerrit")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fake_gerrit(fake_gerrit_server: FakeGerrit) -> Iterator[FakeGerrit]:
    """The session's server, started if a test stopped it, with an empty record."""
    if fake_gerrit_server._proc is None:
        fake_gerrit_server.start()
    fake_gerrit_server.clear()
    yield fake_gerrit_server

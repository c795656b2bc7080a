"""The worker's command runner and git checkout, on real processes and real repositories."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from bbweb.worker import logframes
from bbweb.worker.client import MasterGone
from bbweb.worker.commands import StepOutput, build_env, run_command
from bbweb.worker.git import run_git_checkout


class Collected:
    """What the master would have received, and when."""

    def __init__(self, stop_after: str | None = None) -> None:
        self.chunks: list[tuple[str, str]] = []
        self.times: list[tuple[float, str]] = []  # (when sent, what)
        self.stop_after = stop_after

    def send(self, frames: list[logframes.Frame]) -> bool:
        chunks = [(f.stream, logframes.text(f)) for f in frames]
        assert all(len(t.encode()) == f.size for f, (_s, t) in zip(frames, chunks, strict=True))
        self.chunks.extend(chunks)
        self.times.append((time.monotonic(), "".join(t for _s, t in chunks)))
        return self.stop_after is not None and self.stop_after in self.text()

    def text(self, streams: str = "oeh") -> str:
        return "".join(t for s, t in self.chunks if s in streams)


def run(command, tmp_path: Path, stop_after: str | None = None, **kwargs):
    got = Collected(stop_after)
    stop = threading.Event()
    out = StepOutput(got.send, stop)
    env = build_env(kwargs.pop("env", {}))
    result = run_command(command, str(tmp_path / "wd"), env, out, stop, **kwargs)
    return result, got


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_exit_code_streams_and_headers(tmp_path):
    result, got = run(["sh", "-c", "echo out; echo err >&2; exit 3"], tmp_path)
    assert result.rc == 3 and result.interrupted is None
    assert got.text("o") == "out\n" and got.text("e") == "err\n"
    headers = got.text("h")
    assert "sh -c 'echo out; echo err >&2; exit 3'" in headers
    assert f"in dir {tmp_path / 'wd'}" in headers
    assert "program finished with exit code 3" in headers


def test_string_command_goes_to_the_shell_and_env_expands(tmp_path):
    result, got = run("echo $GREETING-$EXTRA; pwd", tmp_path,
                      env={"GREETING": "hi", "EXTRA": "${HOME}x", "HOME": "/nowhere"})
    assert result.rc == 0
    assert got.text("o").splitlines() == [f"hi-{os.environ['HOME']}x", str(tmp_path / "wd")]


def test_env_none_removes_a_variable(tmp_path):
    os.environ["BBWEB_TEST_DROP_ME"] = "1"
    try:
        result, got = run(["sh", "-c", 'echo "[${BBWEB_TEST_DROP_ME-unset}]"'], tmp_path,
                          env={"BBWEB_TEST_DROP_ME": None})
    finally:
        del os.environ["BBWEB_TEST_DROP_ME"]
    assert got.text("o") == "[unset]\n"


def test_missing_program_is_127_not_a_crash(tmp_path):
    result, got = run(["/no/such/program"], tmp_path)
    assert result.rc == 127
    assert "cannot run the command" in got.text("h")


def test_invalid_utf8_split_across_reads_is_replaced(tmp_path):
    result, got = run(["printf", r"caf\303\251 \377 end\n"], tmp_path)
    assert got.text("o") == "café \ufffd end\n"


def test_output_is_sent_while_the_command_runs(tmp_path):
    started = time.monotonic()
    result, got = run(["sh", "-c", "echo early; sleep 2; echo late"], tmp_path)
    first_with_early = next(when for when, text in got.times if "early" in text)
    assert first_with_early - started < 1.5  # long before the command ends
    assert result.elapsed >= 2


def test_timeout_without_output_kills_the_whole_group(tmp_path):
    pidfile = tmp_path / "grandchild.pid"
    result, got = run(["sh", "-c", f"sleep 300 & echo $! > {pidfile}; wait"], tmp_path,
                      timeout=1)
    assert result.interrupted == "timeout"
    assert "1 seconds without output" in got.text("h")
    grandchild = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(grandchild)


def test_output_resets_the_timeout_but_max_time_does_not(tmp_path):
    result, got = run(["sh", "-c", "for i in 1 2 3 4 5 6; do echo $i; sleep 0.4; done"],
                      tmp_path, timeout=1)
    assert result.rc == 0 and result.interrupted is None
    result, got = run(["sh", "-c", "for i in 1 2 3 4 5 6; do echo $i; sleep 0.4; done"],
                      tmp_path, timeout=1, max_time=1)
    assert result.interrupted == "timeout" and "1 seconds elapsed" in got.text("h")


def test_a_command_printing_faster_than_the_master_takes_waits_and_loses_nothing(tmp_path):
    """The master takes nothing for 2.5 s (longer than the step's timeout): the command
    blocks on its writes once the bound is held, is not killed for silence, and every byte
    arrives."""
    printer = ("import base64, random, sys; sys.stdout.buffer.write(base64.encodebytes("
               "random.Random(3).randbytes(3 << 20)))")
    expected = subprocess.run([sys.executable, "-c", printer], capture_output=True,
                              check=True).stdout.decode()
    got = Collected()
    paused_until = time.monotonic() + 2.5
    most_held: list[int] = []

    def slow_send(frames: list[logframes.Frame]) -> bool:
        most_held.append(out._held)  # what the worker holds while the master is away
        if time.monotonic() < paused_until:
            time.sleep(paused_until - time.monotonic())
        return got.send(frames)

    stop = threading.Event()
    out = StepOutput(slow_send, stop, max_held=256 * 1024)
    result = run_command([sys.executable, "-c", printer], str(tmp_path / "wd"),
                         build_env({}), out, stop, timeout=1)
    assert result.rc == 0 and result.interrupted is None
    assert got.text("o") == expected
    # the bound, a chunk being filled and one read more, not the 4 MiB printed
    assert max(most_held) < 256 * 1024 + 256 * 1024 + 2 * (1 << 20)


def test_a_command_whose_output_cannot_be_sent_is_killed_not_left_blocked(tmp_path):
    def gone(_frames: list[logframes.Frame]) -> bool:
        raise MasterGone("cannot reach the master")

    pidfile = tmp_path / "yes.pid"
    stop = threading.Event()
    out = StepOutput(gone, stop, max_held=64 * 1024)
    with pytest.raises(MasterGone):
        run_command(["sh", "-c", f"echo $$ > {pidfile}; exec yes"], str(tmp_path / "wd"),
                    build_env({}), out, stop)
    printer = int(pidfile.read_text())
    deadline = time.monotonic() + 10
    while alive(printer) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(printer)


def test_stop_answer_from_the_master_kills_the_command(tmp_path):
    t0 = time.monotonic()
    result, got = run(["sh", "-c", "echo ready; sleep 300"], tmp_path, stop_after="ready")
    assert result.interrupted == "stopped"
    assert time.monotonic() - t0 < 10
    assert "the build was stopped" in got.text("h")


def test_finished_command_leaving_a_pipe_holder_does_not_hang(tmp_path):
    t0 = time.monotonic()
    result, got = run(["sh", "-c", "(sleep 300 &) ; echo parent done"], tmp_path)
    assert result.rc == 0
    assert time.monotonic() - t0 < 15
    assert "left processes holding its output" in got.text("h")


# -- git ------------------------------------------------------------------------------------

def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                          text=True, env=dict(os.environ, GIT_AUTHOR_NAME="t",
                                              GIT_AUTHOR_EMAIL="t@x", GIT_COMMITTER_NAME="t",
                                              GIT_COMMITTER_EMAIL="t@x")).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "upstream"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    (path / "a.txt").write_text("one\n")
    git(path, "add", "a.txt")
    git(path, "commit", "-q", "-m", "first")
    return path


def checkout(tmp_path: Path, **spec):
    got = Collected()
    stop = threading.Event()
    out = StepOutput(got.send, stop)
    spec.setdefault("mode", "incremental")
    spec.setdefault("timeout", 60)
    wd = str(tmp_path / "build")
    return run_git_checkout(spec, wd, build_env({}), out, stop), got, Path(wd)


def test_git_clone_then_incremental_update_to_a_revision(tmp_path, repo):
    first = git(repo, "rev-parse", "HEAD")
    res, got, wd = checkout(tmp_path, repourl=str(repo), branch="main", revision=None)
    assert res.result.rc == 0 and res.got_revision == first
    assert (wd / "a.txt").read_text() == "one\n"
    (wd / "local-junk").write_text("kept by incremental mode")

    (repo / "a.txt").write_text("two\n")
    git(repo, "commit", "-q", "-am", "second")
    second = git(repo, "rev-parse", "HEAD")
    (repo / "a.txt").write_text("three\n")
    git(repo, "commit", "-q", "-am", "third")

    res, got, wd = checkout(tmp_path, repourl=str(repo), branch="main", revision=second)
    assert res.result.rc == 0 and res.got_revision == second
    assert (wd / "a.txt").read_text() == "two\n"
    assert (wd / "local-junk").exists()
    assert "git fetch" in got.text("h")


def test_git_full_mode_starts_from_a_fresh_clone(tmp_path, repo):
    checkout(tmp_path, repourl=str(repo), branch="main")
    (tmp_path / "build" / "local-junk").write_text("x")
    res, got, wd = checkout(tmp_path, repourl=str(repo), branch="main", mode="full")
    assert res.result.rc == 0 and not (wd / "local-junk").exists()
    assert "git clone" in got.text("h")


def test_git_bad_repository_fails_the_step(tmp_path):
    res, got, _wd = checkout(tmp_path, repourl=str(tmp_path / "missing"), branch=None)
    assert res.result.rc != 0 and res.got_revision is None
    assert "does not exist" in got.text("e") or "not appear to be a git" in got.text("e")


def test_output_left_for_the_finish_is_the_last_and_nothing_is_lost(tmp_path):
    """With ``keep``, the end of the output is not sent by a log request but left for the
    step's finish to carry; what is above ``keep`` is sent first, in order."""
    got = Collected()
    stop = threading.Event()
    out = StepOutput(got.send, stop, keep=64 * 1024)
    result = run_command(["sh", "-c", "echo small"], str(tmp_path / "wd"), build_env({}),
                         out, stop)
    assert result.rc == 0 and got.chunks == []
    rest = out.rest()
    text = "".join(logframes.text(f) for f in rest)
    assert "small\n" in text and text.endswith("elapsedTime=" + text.rsplit("=", 1)[1])
    assert out.rest() == []

    got = Collected()
    out = StepOutput(got.send, stop, keep=1024)
    noisy = "import random; print(random.randbytes(300000).hex())"
    run_command([sys.executable, "-c", noisy], str(tmp_path / "wd"), build_env({}), out,
                stop)
    rest = out.rest()
    assert got.chunks and sum(len(f.compressed) for f in rest) <= 1024
    whole = got.text() + "".join(logframes.text(f) for f in rest if f.stream in "oeh")
    assert whole.count("\n") > 3 and "program finished with exit code 0" in whole

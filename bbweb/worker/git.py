"""The ``Git`` checkout step on the worker: clone or update the work directory to the
revision the build is for, and report it as ``got_revision``.

``mode='incremental'`` keeps the existing clone and fetches into it; ``mode='full'``
starts from a fresh clone every time. Each git command's output goes to the step's log
like any other command's.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from dataclasses import dataclass
from typing import Any

from bbweb.worker.commands import CommandResult, StepOutput, run_command


@dataclass
class CheckoutResult:
    result: CommandResult
    got_revision: str | None = None


def _git_dir_ok(workdir: str) -> bool:
    return os.path.isdir(os.path.join(workdir, ".git"))


def run_git_checkout(spec: dict[str, Any], workdir: str, env: dict[str, str],
                     output: StepOutput, stop: threading.Event) -> CheckoutResult:
    """Bring ``workdir`` to ``spec['revision']`` (or the tip of ``spec['branch']``)."""
    repourl: str = spec["repourl"]
    branch: str | None = spec.get("branch")
    revision: str | None = spec.get("revision")
    mode = spec.get("mode", "incremental")
    timeout = spec.get("timeout")
    env = dict(env, GIT_TERMINAL_PROMPT="0")

    def git(*args: str, cwd: str = workdir) -> CommandResult:
        return run_command(["git", *args], cwd, env, output, stop, timeout,
                           spec.get("maxTime"))

    if mode == "full" and os.path.exists(workdir):
        output.header(f"mode=full: removing {workdir}")
        shutil.rmtree(workdir)
    if _git_dir_ok(workdir):
        res = git("fetch", "--tags", "--force", repourl, branch or "HEAD")
        if res.rc != 0 or res.interrupted:
            return CheckoutResult(res)
        res = git("reset", "--hard", revision or "FETCH_HEAD")
        if res.rc != 0 and revision:
            # a revision not on the fetched branch: fetch it by name and try again
            res = git("fetch", "--force", repourl, revision)
            if res.rc == 0:
                res = git("reset", "--hard", revision)
    else:
        if os.path.exists(workdir):
            shutil.rmtree(workdir)
        parent = os.path.dirname(os.path.abspath(workdir))
        os.makedirs(parent, exist_ok=True)
        args = ["clone"] + (["--branch", branch] if branch else []) + [repourl, workdir]
        res = git(*args, cwd=parent)
        if res.rc != 0 or res.interrupted:
            return CheckoutResult(res)
        if revision:
            res = git("reset", "--hard", revision)
    if res.rc != 0 or res.interrupted:
        return CheckoutResult(res)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=workdir, env=env,
                          capture_output=True, text=True, timeout=60)
    got = head.stdout.strip() if head.returncode == 0 else None
    if got:
        output.header(f"got_revision: {got}")
    return CheckoutResult(res, got)

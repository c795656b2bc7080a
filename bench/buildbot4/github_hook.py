"""Buildbot 4: signed GitHub push deliveries through ``/change_hook/github``, changes/s.

The counterpart of ``bench/github_hook.py``: the same push payloads (two commits each, the
shape GitHub sends, made by that script's ``push_payload``), the same secret, on a fresh
master whose ``github`` dialect is strict (every delivery must be signed). Buildbot 4
checks only ``X-Hub-Signature`` (HMAC-SHA1), so that is the header sent. Buildbot takes a
change's project from the repository's ``full_name``, so each payload names a builder
there (bbweb's gets ``?project=``): each change is stored and schedules one build request
on that builder, as in bbweb's bench (no workers, the requests stay pending). Concurrency
1, then 8; bodies and signatures are made before the clock starts.

    .venv/bin/python bench/buildbot4/github_hook.py --venv VENV
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import sys
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import bb4  # noqa: E402
from _common import run_load  # noqa: E402
from github_hook import push_payload  # noqa: E402


def deliveries(start: int, count: int, commits: int,
               builders: list[str]) -> list[tuple[bytes, dict[str, str]]]:
    out = []
    for n in range(start, start + count):
        payload = push_payload(n, commits)
        payload["repository"]["full_name"] = builders[n % len(builders)]
        body = json.dumps(payload).encode()
        signature = hmac.new(bb4.GITHUB_SECRET.encode(), body, hashlib.sha1).hexdigest()
        out.append((body, {"Content-Type": "application/json", "X-GitHub-Event": "push",
                           "X-GitHub-Delivery": str(uuid.uuid4()),
                           "X-Hub-Signature": "sha1=" + signature,
                           "User-Agent": "GitHub-Hookshot/bench"}))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    bb4.add_args(parser)
    parser.add_argument("--requests", type=int, default=1000, help="deliveries per level")
    parser.add_argument("--commits", type=int, default=2)
    parser.add_argument("--concurrency", default="1,8")
    args = parser.parse_args(argv)
    venv = bb4.checked_venv(args.venv)
    layout = bb4.Layout(builders=20, workers=2)
    levels = [int(c) for c in args.concurrency.split(",")]
    builders = bb4.builder_names(layout.builders)
    figures: dict[str, float] = {"github_hook_commits": args.commits}
    with bb4.workdir(args.workdir) as where, \
            bb4.fresh_master(venv, where, "github", layout) as master:
        master.start(workers=False)
        url = master.url + "/change_hook/github"
        serial = 0

        def sender(batch):  # type: ignore[no-untyped-def]
            def send(session, i):  # type: ignore[no-untyped-def]
                body, headers = batch[i]
                return session.post(url, data=body, headers=headers, timeout=120)
            return send

        warm = deliveries(serial, 10, args.commits, builders)
        serial += 10
        run_load(sender(warm), len(warm), 1)
        sent = 10
        for c in levels:
            batch = deliveries(serial, args.requests, args.commits, builders)
            serial += args.requests
            cpu0 = bb4.cpu_seconds(master.pid)
            res = run_load(sender(batch), len(batch), c)
            cpu = bb4.cpu_seconds(master.pid) - cpu0
            sent += len(batch)
            print(res.line("deliveries/s") + f"  [{res.rate * args.commits:.1f} changes/s; "
                  f"master CPU {cpu / len(batch) * 1000:.1f} ms per delivery]", flush=True)
            if res.errors:
                print("  errors, e.g.: " + res.errors[0])
            figures[f"github_hook_changes_s_c{c}"] = round(res.rate * args.commits, 1)
            figures[f"github_hook_errors_c{c}"] = len(res.errors)
            figures[f"github_hook_cpu_ms_c{c}"] = round(cpu / len(batch) * 1000, 2)
        with master.db() as conn:
            stored = conn.execute("SELECT count(*) FROM changes").fetchone()[0]
            requests_ = conn.execute("SELECT count(*) FROM buildrequests").fetchone()[0]
    print(f"stored {stored} changes and {requests_} build requests for {sent} deliveries "
          f"(expected {sent * args.commits} changes)")
    figures["github_hook_stored"] = int(stored == sent * args.commits)
    bb4.result(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""GitHub push deliveries accepted per second through ``POST /change_hook/github`` on a
real gunicorn, with signature checking on.

gunicorn runs as ``bbweb start`` runs it (``bbweb.launcher.gunicorn_command``) on a free
loopback port against a bench master whose plugins.toml enables the ``github`` dialect
with a ``secret``. Each delivery is a GitHub push payload (the shape of GitHub's own
``push`` event: ``application/json`` body, ``X-GitHub-Event: push``, a fresh
``X-GitHub-Delivery`` id and ``X-Hub-Signature-256`` = HMAC-SHA256 of the body) carrying
``--commits`` new commits on ``refs/heads/main``; so every delivery is verified, parsed,
stored as that many changes (plus its delivery id) and run through the schedulers in one
transaction. ``?project=`` rotates over the builders, so each change also creates a
buildset with one build request (nothing claims them). Bodies and signatures are made
before the clock starts. Levels: concurrency 1, then 8 (threads, one
``requests.Session`` each). Prints deliveries/s, changes/s and latency per level, then
the cost of refusing forged deliveries (bad signature -> 403) at the highest level.

    .venv/bin/python bench/github_hook.py                  # 1000 deliveries per level
    .venv/bin/python bench/github_hook.py --full           # 5000 per level
    .venv/bin/python bench/github_hook.py --commits 5 --concurrency 1,4,8,16
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import sqlalchemy as sa  # noqa: E402
from _common import (  # noqa: E402
    Processes,
    add_common_args,
    banner,
    install_signal_handlers,
    result,
    run_load,
    start_web,
)
from _rawhttp import encode_post, run_raw  # noqa: E402
from json_builds import tree_cpu_seconds  # noqa: E402
from populate import default_master  # noqa: E402

from bbweb.db.schema import buildrequests, changes  # noqa: E402

DEFAULT_REQUESTS = 1000
FULL_REQUESTS = 5000
SECRET = "bench-github-secret"
PLUGINS_TOML = f'[change_hooks]\ngithub = {{ secret = "{SECRET}" }}\n'
REPO_URL = "https://github.com/example/bench"


def push_payload(n: int, commits: int) -> dict:
    """A GitHub push event with ``commits`` new commits (ids unique per ``n``), in the
    fields and shape GitHub sends."""
    ids = [hashlib.sha1(f"gh-{n}-{i}".encode()).hexdigest() for i in range(commits)]
    before = hashlib.sha1(f"gh-{n}-before".encode()).hexdigest()
    author = {"name": f"Dev {n % 7}", "email": f"dev{n % 7}@example.org",
              "username": f"dev{n % 7}"}
    commit_list = [{
        "id": cid, "tree_id": hashlib.sha1(cid.encode()).hexdigest(), "distinct": True,
        "message": f"bench commit {n}.{i}\n\nposted by bench/github_hook.py",
        "timestamp": "2024-05-15T15:19:25-07:00", "url": f"{REPO_URL}/commit/{cid}",
        "author": author, "committer": author,
        "added": [f"src/new{n % 11}.c"] if i == 0 else [],
        "removed": [], "modified": [f"src/file{(n + i) % 13}.c", "README.md"],
    } for i, cid in enumerate(ids)]
    return {
        "ref": "refs/heads/main", "before": before, "after": ids[-1], "created": False,
        "deleted": False, "forced": False, "base_ref": None,
        "compare": f"{REPO_URL}/compare/{before[:12]}...{ids[-1][:12]}",
        "commits": commit_list, "head_commit": commit_list[-1],
        "repository": {"id": 1, "name": "bench", "full_name": "example/bench",
                       "private": False, "html_url": REPO_URL, "url": REPO_URL,
                       "clone_url": REPO_URL + ".git", "default_branch": "main",
                       "owner": {"name": "example", "login": "example"}},
        "pusher": {"name": author["username"], "email": author["email"]},
        "sender": {"login": author["username"], "id": n % 7 + 1, "type": "User"},
    }


def deliveries(start: int, count: int, commits: int, builders: list[str],
               forged: bool = False) -> list[tuple[str, bytes, dict[str, str]]]:
    """(url path, body, headers) for ``count`` deliveries, signed (or wrongly signed)."""
    out = []
    for n in range(start, start + count):
        body = json.dumps(push_payload(n, commits)).encode()
        key = b"not-the-secret" if forged else SECRET.encode()
        signature = hmac.new(key, body, hashlib.sha256).hexdigest()
        out.append((f"/change_hook/github?project={builders[n % len(builders)]}", body, {
            "Content-Type": "application/json", "X-GitHub-Event": "push",
            "X-GitHub-Delivery": str(uuid.uuid4()), "X-Hub-Signature-256": "sha256=" + signature,
            "User-Agent": "GitHub-Hookshot/bench", "Accept": "*/*"}))
    return out


def enable_github(basedir: Path, created: bool) -> None:
    path = basedir / "plugins.toml"
    if created or not path.exists():
        path.write_text(PLUGINS_TOML)
        return
    if SECRET not in path.read_text():
        raise SystemExit(f"{path} exists and does not enable the github dialect with the "
                         "bench secret; use a fresh --basedir")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_args(parser)
    parser.add_argument("--requests", type=int, default=None,
                        help=f"deliveries per concurrency level (default {DEFAULT_REQUESTS}; "
                             f"--full: {FULL_REQUESTS})")
    parser.add_argument("--commits", type=int, default=2, help="commits per push (default 2)")
    parser.add_argument("--concurrency", default="1,8", help="levels, default 1,8")
    parser.add_argument("--web-workers", type=int, default=2, help="gunicorn processes")
    parser.add_argument("--full", action="store_true", help="the full size")
    parser.add_argument("--client", choices=("raw", "requests"), default="raw",
                        help="raw: prepared requests on keep-alive sockets (default; "
                             "leaves the CPU to the server); requests: a requests.Session "
                             "per thread")
    args = parser.parse_args(argv)
    nreq = args.requests or (FULL_REQUESTS if args.full else DEFAULT_REQUESTS)
    levels = [int(c) for c in args.concurrency.split(",")]
    if args.commits < 1:
        parser.error("--commits must be at least 1")
    install_signal_handlers()

    master = default_master(args, kind="github-hook")
    try:
        enable_github(master.basedir, master.created)
        builders = list(master.cfg.builders)
        banner("bench/github_hook.py: GitHub push deliveries/s through /change_hook/github",
               database=master.db_label, basedir=master.basedir,
               deliveries_per_level=nreq, commits_per_push=args.commits,
               concurrency=levels, gunicorn_processes=args.web_workers,
               signature="X-Hub-Signature-256 (HMAC-SHA256), verified on every request",
               client=args.client)
        with master.db.read() as conn:
            changes_before = conn.execute(sa.select(sa.func.count()).select_from(changes)
                                          ).scalar_one()
            brs_before = conn.execute(sa.select(sa.func.count()).select_from(buildrequests)
                                      ).scalar_one()
        serial = 10_000_000 * (changes_before + 1)  # fresh revisions on a reused master
        sent = 0
        with Processes(master.basedir) as procs:
            base = start_web(master, procs, workers=args.web_workers)

            def sender(batch):  # type: ignore[no-untyped-def]
                def send(session, i):  # type: ignore[no-untyped-def]
                    path, body, headers = batch[i]
                    return session.post(base + path, data=body, headers=headers, timeout=60)
                return send

            def load(batch, c, ok=(202,)):  # type: ignore[no-untyped-def]
                if args.client == "requests":
                    return run_load(sender(batch), len(batch), c, ok=ok)
                return run_raw(base, [encode_post(base + path, body, headers)
                                      for path, body, headers in batch], c, ok=ok)

            warm = deliveries(serial, 10, args.commits, builders)
            serial += len(warm)
            res = load(warm, 1)
            sent += res.requests
            if res.errors:
                print("warm-up errors: " + "; ".join(res.errors[:3]))
                return 1
            print(f"POST {base}/change_hook/github (push, {args.commits} commit(s) each)")
            figures: dict[str, float] = {"github_hook_commits": args.commits}
            for c in levels:
                batch = deliveries(serial, nreq, args.commits, builders)
                serial += nreq
                cpu = tree_cpu_seconds(procs.procs["web"].pid)
                client = time.process_time()
                res = load(batch, c)
                client = time.process_time() - client
                cpu = tree_cpu_seconds(procs.procs["web"].pid) - cpu
                nchanges = nreq * args.commits
                sent += res.requests
                print("  " + res.line("deliveries/s")
                      + f"  [{res.rate * args.commits:.1f} changes/s]")
                figures[f"github_hook_changes_s_c{c}"] = round(res.rate * args.commits, 1)
                print(f"    CPU per change: server {cpu / nchanges * 1000:.2f} ms, "
                      f"client {client / nchanges * 1000:.2f} ms")
                figures[f"github_hook_server_cpu_ms_c{c}"] = round(cpu / nchanges * 1000, 3)
                figures[f"github_hook_errors_c{c}"] = len(res.errors)
                if res.errors:
                    print("    errors: " + "; ".join(res.errors[:3]))
                sys.stdout.flush()
            forged = deliveries(serial, min(nreq, 500), args.commits, builders, forged=True)
            res = load(forged, max(levels), ok=(403,))
            print("forged signatures (403, nothing stored):")
            print("  " + res.line("refusals/s"))
            if res.errors:
                print("    unexpected: " + "; ".join(res.errors[:3]))
        with master.db.read() as conn:
            new_changes = conn.execute(sa.select(sa.func.count()).select_from(changes)
                                       ).scalar_one() - changes_before
            new_brs = conn.execute(sa.select(sa.func.count()).select_from(buildrequests)
                                   ).scalar_one() - brs_before
        print(f"stored: {new_changes} changes and {new_brs} build requests from {sent} "
              f"signed deliveries (warm-up included; expected {sent * args.commits})")
        if not master.temporary:
            print(f"kept: --basedir {master.basedir}")
        figures["github_hook_stored"] = int(new_changes == sent * args.commits)
        result(figures)
    finally:
        master.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

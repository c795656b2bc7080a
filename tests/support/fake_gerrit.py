"""The forced command of the test sshd (tests/support/sshd.py): a stand-in for Gerrit's ssh
command interface that records what the client asked to run.

sshd runs it as ``python fake_gerrit.py STATE_DIR`` for every session, with the client's
command line in ``SSH_ORIGINAL_COMMAND``: ssh passes one string, never an argv, so the
record keeps that string (``raw``) and how a POSIX shell, like Gerrit's own parser for
quoted words, splits it (``argv``). It answers like Gerrit:

* ``gerrit version``: ``gerrit version <STATE_DIR/version>`` (default 2.8.1);
* ``gerrit review ...``: nothing, exit 0; or, when ``STATE_DIR/refuse`` exists, its text on
  stderr and exit 1 (Gerrit's ``fatal: ...`` for, say, a change that does not exist);
* anything else: ``fatal: "<word>" is not a Gerrit command``, exit 1.

Only the standard library: it runs under sshd's bare environment.
"""

import json
import os
import shlex
import sys
import time


def main() -> int:
    state = sys.argv[1]
    raw = os.environ.get("SSH_ORIGINAL_COMMAND", "")
    try:
        argv = shlex.split(raw)
    except ValueError:
        argv = None
    record = {"time": time.time(), "user": os.environ.get("USER"), "raw": raw, "argv": argv}
    with open(os.path.join(state, "commands.jsonl"), "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
    words = argv or []
    if words[:2] == ["gerrit", "version"]:
        try:
            with open(os.path.join(state, "version"), encoding="utf-8") as f:
                version = f.read().strip()
        except FileNotFoundError:
            version = "2.8.1"
        print(f"gerrit version {version}")
        return 0
    if words[:2] == ["gerrit", "review"]:
        try:
            with open(os.path.join(state, "refuse"), encoding="utf-8") as f:
                sys.stderr.write(f.read())
            return 1
        except FileNotFoundError:
            return 0
    sys.stderr.write(f'fatal: "{words[0] if words else raw}" is not a Gerrit command\n')
    return 1


if __name__ == "__main__":
    sys.exit(main())

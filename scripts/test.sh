#!/usr/bin/env bash
# The README's test command, and what CI runs (.ci/run): install what the tests need
# (PostgreSQL server, git, subversion, Apache httpd for the reverse-proxy test, the .venv),
# run ruff, start one throwaway PostgreSQL cluster for the whole run and run pytest against it.
# Arguments go to pytest.
#
# PostgreSQL tests must run, not skip: if the cluster cannot be started this fails.
set -euo pipefail
cd "$(dirname "$0")/.."

# --- system packages (only when something is missing, so reruns stay fast) ---
have_pg_server() {
  if [ -n "${BBWEB_PG_BIN:-}" ] && [ -x "$BBWEB_PG_BIN/initdb" ]; then return 0; fi
  compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null && return 0
  command -v initdb >/dev/null
}
have_sbin() { command -v "$1" >/dev/null || [ -x "/usr/sbin/$1" ]; }
missing=()
have_pg_server || missing+=(postgresql)
command -v git >/dev/null || missing+=(git)
# tests/changes run SVNPoller against real repositories (svnadmin create, file:// URLs)
{ command -v svn >/dev/null && command -v svnadmin >/dev/null; } || missing+=(subversion)
# tests/e2e/test_reverse_proxy.py runs Debian's apache2 with mod_proxy_http
{ have_sbin apache2 && [ -e /usr/lib/apache2/modules/mod_proxy_http.so ]; } \
  || missing+=(apache2)
have_sbin htpasswd || missing+=(apache2-utils)
# tests/notifiers/test_gerrit_*.py run Debian's sshd as a stand-in for Gerrit's ssh port
{ have_sbin sshd && command -v ssh-keygen >/dev/null; } || missing+=(openssh-server)
# tests/browser drives Debian's chromium through Playwright (never `playwright install`)
command -v chromium >/dev/null || missing+=(chromium)
# tests/irc run the IRC bot against Debian's ngircd, with atheme-services as NickServ
have_sbin ngircd || missing+=(ngircd)
have_sbin atheme-services || missing+=(atheme-services)
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    echo "test.sh: installing ${missing[*]}" >&2
    # Keep apt from starting Debian's default PostgreSQL cluster and Apache as services:
    # the tests start their own. (Docker images usually have this file already; leave
    # theirs alone.)
    added_policy=
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
      chmod +x /usr/sbin/policy-rc.d
      added_policy=1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y --no-install-recommends "${missing[@]}"
    if [ -n "$added_policy" ]; then rm -f /usr/sbin/policy-rc.d; fi
  else
    echo "test.sh: missing ${missing[*]} (not root, or no apt-get): install them yourself;" \
         "carrying on" >&2
  fi
fi

# --- the virtualenv ---
. scripts/venv.sh
ensure_venv '[test,postgresql]' \
  'bbweb, flask, sqlalchemy, psycopg, pytest, ruff, playwright, hypothesis, bcrypt, feedparser, mypy'

# --- Buildbot 4, in a virtualenv of its own, for tests/bench/test_buildbot4.py ---
# bench/perf.py measures bbweb beside a Buildbot 4; its test runs against a real one. Buildbot
# is never a bbweb dependency: it goes into .venv-buildbot4 (left alone once it holds the
# version). If the package index cannot be reached the test says why it skips.
if [ -z "${BBWEB_BUILDBOT4_VENV:-}" ]; then
  export BBWEB_BUILDBOT4_VENV="$PWD/.venv-buildbot4"
  .venv/bin/python bench/buildbot4/install.py --venv "$BBWEB_BUILDBOT4_VENV" >&2 \
    || echo "test.sh: could not install Buildbot 4 into $BBWEB_BUILDBOT4_VENV" >&2
fi

# --- lint and types (mypy's settings are in pyproject.toml) ---
.venv/bin/ruff check bbweb tests examples bench setup.py wsgi.py gunicorn.conf.py worker
.venv/bin/mypy

# --- one PostgreSQL cluster for the whole run ---
# The server lives as long as this coprocess's stdin: closing it (the trap below, or this
# shell dying in any way) stops postgres and removes the cluster's directory.
pg_dir="$(mktemp -d "${TMPDIR:-/tmp}/bbweb-test-pg.XXXXXX")"
pg_pid=
pg_in=
stop_pg() {
  if [ -n "$pg_in" ]; then exec {pg_in}>&-; fi
  if [ -n "$pg_pid" ]; then wait "$pg_pid" 2>/dev/null || true; fi
  rm -rf "$pg_dir"
}
trap stop_pg EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
coproc PGSERVE { exec .venv/bin/python -m tests.support.pgcluster serve "$pg_dir"; }
pg_pid=$PGSERVE_PID
pg_in=${PGSERVE[1]}
exec {pg_out}<&"${PGSERVE[0]}"  # a copy bash will not close if the coprocess exits early
BBWEB_TEST_PG_URL=
IFS= read -r -u "$pg_out" BBWEB_TEST_PG_URL || true
exec {pg_out}<&-
if [ -z "$BBWEB_TEST_PG_URL" ]; then
  echo "test.sh: FAILED: could not start a throwaway PostgreSQL cluster (see above)." \
       "The PostgreSQL tests must run, not be skipped." >&2
  exit 1
fi
export BBWEB_TEST_PG_URL

# --- tests ---
status=0
.venv/bin/python -m pytest "$@" || status=$?
exit "$status"

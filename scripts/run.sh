#!/usr/bin/env bash
# The README's first command: install bbweb into .venv and run it on the embedded defaults
# (SQLite, web + daemon + one local worker) with a sample master in ./master.
# Extra arguments go to `bbweb start` (e.g. --web-workers 4).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/venv.sh
# PostgreSQL's driver too, so that a master.cfg with a postgresql:// db_url runs as well
ensure_venv '[postgresql]' 'bbweb, flask, sqlalchemy, gunicorn, psycopg'
if [ ! -f master/master.cfg ]; then
  .venv/bin/bbweb create-master master
else
  .venv/bin/bbweb upgrade-master master
fi
exec .venv/bin/bbweb start master "$@"

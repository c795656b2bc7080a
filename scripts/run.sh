#!/usr/bin/env bash
# The README's first command: install bbweb into .venv and run it on the embedded defaults
# (SQLite, web + daemon + one local worker) with a sample master in ./master.
# Extra arguments go to `bbweb start` (e.g. --web-workers 4).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/venv.sh
ensure_venv '' 'bbweb, flask, sqlalchemy, gunicorn'
if [ ! -f master/master.cfg ]; then
  .venv/bin/bbweb create-master master
else
  .venv/bin/bbweb upgrade-master master
fi
exec .venv/bin/bbweb start master "$@"

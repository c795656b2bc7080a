#!/usr/bin/env bash
# Refresh constraints.txt: the exact versions of every package bbweb and its extras
# install, which scripts/venv.sh (hence run.sh, test.sh and CI) installs with
# `pip install -c constraints.txt`. setup.py keeps lower bounds only.
#
# bbweb is installed with all its extras into a throwaway virtualenv, so pip picks the
# newest releases those bounds allow, and what got installed is written out (pip freeze,
# less bbweb itself). Then: look at `git diff constraints.txt`, run `bash scripts/test.sh`
# (the stamp in .venv notices the new file and reinstalls), and commit the file.
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS='[test,postgresql]'
tmp="$(mktemp -d "${TMPDIR:-/tmp}/bbweb-lock.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
python3 -m venv "$tmp/venv"
# a copy of the checkout's package sources, so no build/ or *.egg-info lands in it
mkdir "$tmp/src"
cp -r setup.py pyproject.toml LICENSE bbweb "$tmp/src/"
"$tmp/venv/bin/pip" install -q --disable-pip-version-check "$tmp/src$EXTRAS"
{
  echo "# Exact versions bbweb is tested with; setup.py has the lower bounds."
  echo "# Installed by scripts/venv.sh (pip install -c constraints.txt -e '.[...]')."
  echo "# Refresh with: bash scripts/lock.sh   (written $(date -u +%Y-%m-%d) by $("$tmp/venv/bin/python" -V))"
  "$tmp/venv/bin/pip" freeze --disable-pip-version-check --exclude-editable \
    | grep -Eiv '^bbweb(-worker)?( @|==)'
} > constraints.txt.new
mv constraints.txt.new constraints.txt
echo "lock.sh: wrote constraints.txt ($(grep -vc '^#' constraints.txt) packages)"

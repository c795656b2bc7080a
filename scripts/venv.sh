# Sourced by scripts/run.sh and scripts/test.sh: make .venv and install bbweb into it,
# with the exact versions in constraints.txt (setup.py has only lower bounds; refresh the
# pins with scripts/lock.sh).
# On a fresh Debian/Ubuntu machine `python3 -m venv` needs the python3-venv package; as
# root we install it, otherwise we say what is missing.

ensure_venv() {  # ensure_venv EXTRAS IMPORTS: e.g. ensure_venv '[test]' 'bbweb, pytest'
  local extras=$1 imports=$2
  if [ ! -x .venv/bin/python ]; then
    if ! python3 -m venv .venv 2>/dev/null; then
      rm -rf .venv
      if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
        echo "installing python3-venv (needed to create .venv)" >&2
        DEBIAN_FRONTEND=noninteractive apt-get update -q
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
          python3-venv python3-pip
        python3 -m venv .venv
      else
        echo "cannot create .venv: install python3-venv (Python 3.11 or newer) first" >&2
        return 1
      fi
    fi
  fi
  # reinstall when an import is missing, setup.py changed (new dependencies, new entry
  # points: a stale install would not list a plugin the checkout registers) or
  # constraints.txt changed (other pinned versions)
  local stamp=.venv/.bbweb-setup-$(cat setup.py constraints.txt | sha256sum | cut -c1-16)
  stamp+=${extras//[^a-z]/}
  if [ ! -e "$stamp" ] || ! .venv/bin/python -c "import $imports" 2>/dev/null; then
    .venv/bin/pip install -q -c constraints.txt -e ".$extras"
    rm -f .venv/.bbweb-setup-*
    touch "$stamp"
  fi
}

# Sourced by scripts/*: make .venv (Python >= 3.11) with the given extras installed,
# at the versions constraints.txt pins (written by scripts/lock).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON="${PYTHON:-python3}"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || { echo "pgbars needs Python 3.11 or newer ($PYTHON is $("$PYTHON" -V 2>&1))" >&2; exit 1; }
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -c constraints.txt --upgrade pip
fi
# A regular (not editable) install: it builds the wheel users get, silently. An
# editable install of a package whose folders are mapped (sql/ ships as worker.sql)
# makes setuptools print warnings. The tests import the checkout itself (pytest puts
# the repository first on sys.path), and this script reinstalls on every run.
# -c: every package at its locked version, whatever PyPI holds today (docs/deploy.md).
.venv/bin/python -m pip install --quiet --disable-pip-version-check -c constraints.txt ".[$1]"
rm -rf build  # setuptools' staging: stale modules in it could reach a later wheel

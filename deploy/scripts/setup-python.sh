#!/usr/bin/env bash
# The Python side: a virtual environment in .venv with the locked dependencies and the project
# itself (editable). Idempotent: skipped when pyproject.toml and requirements.lock are unchanged.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

VENV="$ROOT/.venv"
PYTHON="${PYTHON:-python3}"
STAMP="$VENV/.installed"
want=$(cat "$ROOT/pyproject.toml" "$ROOT/requirements.lock" | sha256sum | cut -d' ' -f1)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then exit 0; fi

command -v "$PYTHON" >/dev/null || die "Python 3.11+ is required (apt-get install python3 python3-venv)"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || die "Python 3.11+ is required, found $("$PYTHON" --version 2>&1); set PYTHON=/path/to/python3.11"
if [ ! -x "$VENV/bin/python" ]; then
  say "python: creating virtual environment in .venv"
  "$PYTHON" -m venv "$VENV" 2>/dev/null || {
    [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null \
      || die "cannot create a virtual environment; install python3-venv"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    rm -rf "$VENV"; "$PYTHON" -m venv "$VENV"
  }
fi
say "python: installing locked dependencies into .venv"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -c "$ROOT/requirements.lock" -e "$ROOT[dev]"
echo "$want" >"$STAMP"

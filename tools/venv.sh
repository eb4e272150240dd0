#!/usr/bin/env bash
# Create or update the project's virtual environment (.venv) with the package and the given extras.
# Re-installs only when pyproject.toml or the extras changed. Usage: bash tools/venv.sh [extras]
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
py="${PYTHON:-python3.11}"
command -v "$py" >/dev/null 2>&1 || py=python3
if [ ! -x .venv/bin/python ]; then
    "$py" -m venv .venv
    .venv/bin/python -m pip install -q --upgrade pip
fi
stamp=".venv/.zoo-installed"
want="$(sha256sum pyproject.toml | cut -d' ' -f1) [$extras]"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    spec="."
    [ -n "$extras" ] && spec=".[$extras]"
    .venv/bin/python -m pip install -q -e "$spec"
    echo "$want" > "$stamp"
fi

#!/usr/bin/env bash
# Create or update the project's virtual environment (.venv) with the package and the given extras.
# Re-installs only when pyproject.toml or the extras changed. Usage: bash tools/venv.sh [extras, e.g. dev,mm]
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
    case ",$extras," in
    *,mm,*)
        # mmcv 2.1.0 is a source release whose build imports torch: torch first, then mmcv built with its ops
        # against it (about 20 minutes on 2 cores the first time; pip keeps the built wheel in its cache)
        if ! .venv/bin/python -c 'import mmcv.ops' >/dev/null 2>&1; then
            .venv/bin/python -m pip install -q -e .
            .venv/bin/python -m pip install -q "setuptools<70" wheel ninja
            MMCV_WITH_OPS=1 FORCE_CUDA=0 MAX_JOBS=2 .venv/bin/python -m pip install -q --no-build-isolation mmcv==2.1.0
        fi
        ;;
    esac
    spec="."
    [ -n "$extras" ] && spec=".[$extras]"
    .venv/bin/python -m pip install -q -e "$spec"
    echo "$want" > "$stamp"
fi

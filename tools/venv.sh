#!/usr/bin/env bash
# Create or update the project's virtual environment (.venv) with the package and the given extras.
# Re-installs only when pyproject.toml, constraints.txt or the extras changed. Every install is constrained to the
# known-good versions in constraints.txt (pyproject.toml only gives compatible ranges).
# Usage: bash tools/venv.sh [extras, e.g. dev,mm]
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
want="$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1) [$extras]"
pip=(.venv/bin/python -m pip install -q -c constraints.txt)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    # the distribution was named "zoo" before it took the free PyPI name "zoo-backbones": drop that old install
    # (run from .venv/: `python -m pip` also sees distributions in the working directory, e.g. a zoo.egg-info)
    if compgen -G ".venv/lib/python*/site-packages/zoo-[0-9]*.dist-info" >/dev/null; then
        (cd .venv && bin/python -m pip uninstall -y -q zoo)
    fi
    case ",$extras," in
    *,mm,*)
        # mmcv 2.1.0 is a source release whose build imports torch: torch first, then mmcv built with its ops
        # against it (about 20 minutes on 2 cores the first time; pip keeps the built wheel in its cache)
        if ! .venv/bin/python -c 'import mmcv.ops' >/dev/null 2>&1; then
            # (the project's own editable install builds in an isolated env with its own setuptools >= 77; mmcv's
            # setup.py needs pkg_resources, gone from setuptools >= 81, hence < 70 in the venv itself)
            "${pip[@]}" -e .
            "${pip[@]}" "setuptools<70" wheel ninja
            MMCV_WITH_OPS=1 FORCE_CUDA=0 MAX_JOBS=2 "${pip[@]}" --no-build-isolation mmcv==2.1.0
        fi
        ;;
    esac
    spec="."
    [ -n "$extras" ] && spec=".[$extras]"
    "${pip[@]}" -e "$spec"
    echo "$want" > "$stamp"
fi

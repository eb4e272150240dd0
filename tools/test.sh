#!/usr/bin/env bash
# The whole test suite, in the project's virtual environment.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/venv.sh dev,mm
exec .venv/bin/python -m pytest -q -n 2 "$@"

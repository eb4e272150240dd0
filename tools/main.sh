#!/usr/bin/env bash
# The main job on built-in defaults: list the zoo's models and benchmark LSNet, train vs deploy form, on CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/venv.sh
exec .venv/bin/python -m zoo "$@"

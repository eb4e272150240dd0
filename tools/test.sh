#!/usr/bin/env bash
# The test suite, in the project's virtual environment: everything by default (as CI runs it), or the fast
# development tier with `bash tools/test.sh -m "not slow"` (each family's smallest variant; docs/testing.md).
# Two workers; tests that start process groups of their own (torchrun) share one worker (xdist_group "runs").
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/venv.sh dev,mm
exec .venv/bin/python -m pytest -q -n 2 --dist loadgroup --durations=20 "$@"

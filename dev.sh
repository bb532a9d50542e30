#!/usr/bin/env bash
# One entry point for a fresh machine: set up .venv (once), then run a job.
#   bash dev.sh demo      set up, then run the demo and print the report's path
#   bash dev.sh test      set up, then run the lint and type checks and the test suite
#   bash dev.sh lint      set up, then ruff (lint + format check) and mypy only
#   bash dev.sh setup     set up only
#   bash dev.sh <args>    set up, then `crossgen <args>`
set -euo pipefail
cd "$(dirname "$0")"
VENV="${CROSSGEN_VENV:-.venv}"
PY="${PYTHON:-python3}"
export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}" HF_DATASETS_OFFLINE="${HF_DATASETS_OFFLINE:-1}"
export TRANSFORMERS_NO_ADVISORY_WARNINGS=1 TOKENIZERS_PARALLELISM=false

setup() {
  [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
  local stamp="$VENV/.crossgen-installed" want
  want=$(cat pyproject.toml | sha256sum | cut -c1-16)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then return; fi
  echo "[dev.sh] installing crossgen into $VENV (first run only) ..." >&2
  "$VENV/bin/python" -m pip install -q --upgrade pip >&2
  # The CPU build of torch lies on this disk; a bare `torch` requirement would pull a CUDA build.
  if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
    "$VENV/bin/python" -m pip install -q "torch==2.13.0" >&2
  fi
  "$VENV/bin/python" -m pip install -q -e ".[all,test]" >&2
  echo "$want" > "$stamp"
}

lint() {
  "$VENV/bin/ruff" check src tests benchmarks && "$VENV/bin/ruff" format --check src tests benchmarks \
    && "$VENV/bin/mypy"
}

cmd="${1:-demo}"; [ $# -gt 0 ] && shift
setup
case "$cmd" in
  setup) ;;
  lint)  lint ;;
  # two test workers (pytest-xdist; a file's tests stay together, sharing its fixtures), one
  # torch thread each: two processes with two threads each on two cores run three times slower;
  # files are handed out slowest first, in the order tests/conftest.py collects them
  test)  lint && OMP_NUM_THREADS=1 exec "$VENV/bin/python" -m pytest -n 2 --dist loadfile --no-loadscope-reorder "$@" ;;
  demo)  exec "$VENV/bin/crossgen" demo "$@" ;;
  *)     exec "$VENV/bin/crossgen" "$cmd" "$@" ;;
esac

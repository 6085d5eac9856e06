#!/usr/bin/env bash
# Create (or update) the project virtual environment in .venv and install dualsparse into it.
# torch==2.13.0 is pinned: on this kind of machine pip finds its CPU build on disk.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
stamp=.venv/.dualsparse-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -e ".[test]"
    touch "$stamp"
fi
# Compile the Numba kernels into their on-disk cache now rather than in the first fit (and in
# every test worker): again whenever a source file changed since the last time.
warm=.venv/.dualsparse-kernels-warm
if [ ! -f "$warm" ] || [ -n "$(find src -name '*.py' -newer "$warm" -print -quit)" ]; then
    .venv/bin/python -m dualsparse.warmup && touch "$warm"
fi

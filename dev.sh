#!/usr/bin/env bash
# medfusion set-up and entry point.  Usage:
#   bash dev.sh demo [args...]   set up if needed, then run `medfusion demo`
#   bash dev.sh test [args...]   set up (with test extras) if needed, then run the test suite
#   bash dev.sh notebooks        set up with the notebooks extra, then open notebooks/ in JupyterLab
#   bash dev.sh setup            only set up
# Set-up is safe to repeat.  It uses the active virtual environment (or conda env) when there is one and
# otherwise makes ./.venv.  A torch that is already installed there is kept (GPU users: install your CUDA
# build of torch first); with no torch, it installs the pinned CPU release before anything else, so pip never
# pulls a multi-GB CUDA build onto a CPU machine.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
TORCH_PIN="${MEDFUSION_TORCH:-torch==2.13.0}"

if [ -n "${VIRTUAL_ENV:-}" ] || [ -n "${CONDA_PREFIX:-}" ]; then
  py="$(command -v python)"
else
  if [ ! -x .venv/bin/python ]; then
    "${PYTHON:-python3}" -m venv .venv
  fi
  py="$here/.venv/bin/python"
fi

setup() {
  local extras="$1" stamp
  stamp="$($py -c 'import sys; print(sys.prefix)')/.medfusion-setup-$extras"
  if ! "$py" -c 'import torch' >/dev/null 2>&1; then
    echo "[setup] installing $TORCH_PIN (CPU build on a CPU machine)"
    "$py" -m pip install --quiet "$TORCH_PIN"
  fi
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || ! "$py" -c 'import medfusion' >/dev/null 2>&1; then
    echo "[setup] installing medfusion[$extras] and its dependencies"
    "$py" -m pip install --quiet -e ".[$extras]"
    touch "$stamp"
  fi
  if [[ ",$extras," == *",test,"* ]] && ! "$py" -c 'import totalsegmentator' >/dev/null 2>&1; then
    # The tests compare medfusion's copy of TotalSegmentator's class names and weight table with the package
    # itself; that needs only its Python files, not its multi-GB dependencies (nnU-Net), so none are installed.
    echo "[setup] installing TotalSegmentator's Python files for the tests (no dependencies)"
    "$py" -m pip install --quiet --no-deps "TotalSegmentator==2.18.0"
  fi
}

cmd="${1:-}"
shift || true
case "$cmd" in
  setup) setup test ;;
  demo) setup test; exec "$py" -m medfusion.cli.main demo "$@" ;;
  test) setup test; exec "$py" -m pytest -q "$@" ;;
  notebooks) setup "test,notebooks"; exec "$py" -m jupyterlab notebooks "$@" ;;
  *) echo "usage: bash dev.sh {demo|test|notebooks|setup} [args...]" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# Install pytest-crosscache into a fresh virtual environment and show it at
# work on example/project: a run with two failures, a rerun of only those
# failures (--lf), then what the cache now holds (--cache-show).
#
# Usage, from anywhere:   bash example/demo.sh
# Environment:
#   PYTHON      interpreter to build the venv with (default: python3, 3.10+)
#   DEMO_VENV   where to create the venv (default: a new temporary directory,
#               removed at the end)
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
    echo "demo.sh: $PYTHON is $("$PYTHON" --version 2>&1); Python 3.10 or newer is needed" >&2
    echo "demo.sh: point PYTHON at one, e.g. PYTHON=python3.12 bash example/demo.sh" >&2
    exit 2
fi

if [ -n "${DEMO_VENV:-}" ]; then
    VENV="$DEMO_VENV"
else
    TMP="$(mktemp -d)"
    trap 'rm -rf "$TMP"' EXIT
    VENV="$TMP/venv"
fi

# Settings from the calling shell would change what the demo shows.
unset PYTEST_ADDOPTS PYTEST_PLUGINS PYTEST_DISABLE_PLUGIN_AUTOLOAD

if [ -t 1 ]; then BOLD=$'\033[1m' PLAIN=$'\033[0m'; else BOLD='' PLAIN=''; fi
step() { printf '\n%s==> %s%s\n' "$BOLD" "$*" "$PLAIN"; }

# pytest exits with 1 when tests fail, which is what the demo expects.
expect_failures() {
    local rc=0
    "$@" || rc=$?
    if [ "$rc" -ne 1 ]; then
        echo "demo.sh: expected exit code 1 (tests failed), got $rc" >&2
        exit 1
    fi
}

step "creating a virtual environment in $VENV with $("$PYTHON" --version 2>&1)"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip

step "pip install .   (pytest-crosscache and its dependencies, pytest included)"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check .

PYTEST=("$VENV/bin/python" -m pytest)

step "pytest example/project   (two tests fail on purpose; crosscache records them)"
expect_failures "${PYTEST[@]}" example/project

step "pytest example/project --lf -v   (only the two failures run again)"
expect_failures "${PYTEST[@]}" example/project --lf -v

step "pytest example/project --cache-show   (the recorded state)"
"${PYTEST[@]}" example/project --cache-show

step "done: the cache is in example/project/.pytest_cache; pytest's builtin provider (-p no:crosscache) reads it too"

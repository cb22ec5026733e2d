#!/usr/bin/env bash
# uv, which compiles the hashed locks (`make lock`), in a virtualenv of its own: only the lock
# refresh needs it, so a normal install (pip from the locks) does without.
#
#   scripts/uv.sh install     create .venv-uv from scripts/uv.lock (once; no-op after)
#   scripts/uv.sh run ARGS    run `uv ARGS`; fails if not installed
#   scripts/uv.sh ARGS        install if needed, then run
#
# MEETPILOT_UV_VENV overrides where the virtualenv lives.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOL="uv.sh"
SPEC="uv==0.13.9"
LOCK="$ROOT/scripts/uv.lock"
VENV="${MEETPILOT_UV_VENV:-$ROOT/.venv-uv}"
EXE="uv"
# shellcheck source=scripts/lib/tool-venv.sh
. "$ROOT/scripts/lib/tool-venv.sh"

run() {
	require_installed
	cd "$ROOT"
	UV_NO_PROGRESS=1 exec "$VENV/bin/uv" "$@"
}

tool_main "$@"

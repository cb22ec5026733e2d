#!/usr/bin/env bash
# The AWS SAM CLI in a virtualenv of its own: it pins boto3, click and friends to versions that
# clash with the ones meetpilot's .venv pins, so it cannot live there.
#
#   scripts/sam.sh install     create .venv-sam from scripts/sam.lock (once; no-op after)
#   scripts/sam.sh run ARGS    run `sam ARGS` (e.g. build, validate --lint); fails if not installed
#   scripts/sam.sh ARGS        install if needed, then run
#
# Telemetry is off for every run. Only `install` (and a build's pip downloads) need the network.
# MEETPILOT_SAM_VENV overrides where the virtualenv lives (tests/infra/test_sam_build.py reads the
# same variable).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOL="sam.sh"
SPEC="aws-sam-cli==1.170.0"
LOCK="$ROOT/scripts/sam.lock"
VENV="${MEETPILOT_SAM_VENV:-$ROOT/.venv-sam}"
EXE="sam"
# shellcheck source=scripts/lib/tool-venv.sh
. "$ROOT/scripts/lib/tool-venv.sh"

run() {
	require_installed
	SAM_CLI_TELEMETRY=0 exec "$VENV/bin/sam" "$@"
}

tool_main "$@"

#!/usr/bin/env bash
# checkov (static analysis of template.yaml) in a virtualenv of its own: checkov pins boto3 and
# friends to versions that clash with the ones meetpilot's .venv pins, so it cannot live there.
#
#   scripts/checkov.sh install     create .venv-checkov from scripts/checkov.lock (once; no-op after)
#   scripts/checkov.sh run [ARGS]  check template.yaml with .checkov.yaml; ARGS go to checkov
#                                  (e.g. --output json); fails if not installed
#   scripts/checkov.sh [ARGS]      install if needed, then run
#
# Quiet on success apart from checkov's own report. Only `install` needs the network.
# MEETPILOT_CHECKOV_VENV overrides where the virtualenv lives (tests/infra/test_checkov.py reads
# the same variable).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOL="checkov.sh"
SPEC="checkov==3.3.30"
LOCK="$ROOT/scripts/checkov.lock"
VENV="${MEETPILOT_CHECKOV_VENV:-$ROOT/.venv-checkov}"
EXE="checkov"
# shellcheck source=scripts/lib/tool-venv.sh
. "$ROOT/scripts/lib/tool-venv.sh"

run() {
	require_installed
	cd "$ROOT"
	# No look-up of newer checkov releases: the run stays offline (see also skip-download in the config).
	CKV_SKIP_PACKAGE_UPDATE_CHECK=true \
		"$VENV/bin/checkov" --config-file .checkov.yaml --file template.yaml "$@"
}

tool_main "$@"

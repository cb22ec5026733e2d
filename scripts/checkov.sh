#!/usr/bin/env bash
# checkov (static analysis of template.yaml) in a virtualenv of its own: checkov pins boto3 and
# friends to versions that clash with the ones meetpilot's .venv pins, so it cannot live there.
#
#   scripts/checkov.sh install     create .venv-checkov with the pinned checkov (once; no-op after)
#   scripts/checkov.sh run [ARGS]  check template.yaml with .checkov.yaml; ARGS go to checkov
#                                  (e.g. --output json); fails if not installed
#   scripts/checkov.sh [ARGS]      install if needed, then run
#
# Quiet on success apart from checkov's own report. Only `install` needs the network.
# MEETPILOT_CHECKOV_VENV overrides where the virtualenv lives (tests/infra/test_checkov.py reads
# the same variable).
set -euo pipefail

CHECKOV_VERSION="3.3.30"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${MEETPILOT_CHECKOV_VENV:-$ROOT/.venv-checkov}"
STAMP="$VENV/.installed"
WANT_STAMP="checkov==$CHECKOV_VERSION"
PYTHON="${PYTHON:-python3}"

die() {
	printf 'checkov.sh: %s\n' "$*" >&2
	exit 1
}

installed() {
	[ -x "$VENV/bin/checkov" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT_STAMP" ]
}

install() {
	if installed; then
		return 0
	fi
	command -v "$PYTHON" >/dev/null || die "$PYTHON not found; set PYTHON to a Python 3.9+ interpreter"
	rm -rf "$VENV"
	"$PYTHON" -m venv "$VENV" || die "could not create $VENV"
	# The virtualenv ignores itself, so it never shows up as untracked files.
	printf '*\n' >"$VENV/.gitignore"
	"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip ||
		die "could not upgrade pip in $VENV"
	"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "checkov==$CHECKOV_VERSION" ||
		die "could not install checkov $CHECKOV_VERSION into $VENV"
	printf '%s' "$WANT_STAMP" >"$STAMP"
}

run() {
	installed || die "checkov is not installed; run: scripts/checkov.sh install"
	cd "$ROOT"
	# No look-up of newer checkov releases: the run stays offline (see also skip-download in the config).
	CKV_SKIP_PACKAGE_UPDATE_CHECK=true \
		"$VENV/bin/checkov" --config-file .checkov.yaml --file template.yaml "$@"
}

case "${1:-}" in
install)
	install
	;;
run)
	shift
	run "$@"
	;;
*)
	install
	run "$@"
	;;
esac

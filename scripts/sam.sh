#!/usr/bin/env bash
# The AWS SAM CLI in a virtualenv of its own: it pins boto3, click and friends to versions that
# clash with the ones meetpilot's .venv pins, so it cannot live there.
#
#   scripts/sam.sh install     create .venv-sam with the pinned SAM CLI (once; no-op after)
#   scripts/sam.sh run ARGS    run `sam ARGS` (e.g. build, validate --lint); fails if not installed
#   scripts/sam.sh ARGS        install if needed, then run
#
# Telemetry is off for every run. Only `install` (and a build's pip downloads) need the network.
# MEETPILOT_SAM_VENV overrides where the virtualenv lives (tests/infra/test_sam_build.py reads the
# same variable).
set -euo pipefail

SAM_CLI_VERSION="1.170.0"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${MEETPILOT_SAM_VENV:-$ROOT/.venv-sam}"
STAMP="$VENV/.installed"
WANT_STAMP="aws-sam-cli==$SAM_CLI_VERSION"
PYTHON="${PYTHON:-python3}"

die() {
	printf 'sam.sh: %s\n' "$*" >&2
	exit 1
}

installed() {
	[ -x "$VENV/bin/sam" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT_STAMP" ]
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
	"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "aws-sam-cli==$SAM_CLI_VERSION" ||
		die "could not install aws-sam-cli $SAM_CLI_VERSION into $VENV"
	printf '%s' "$WANT_STAMP" >"$STAMP"
}

run() {
	installed || die "the SAM CLI is not installed; run: scripts/sam.sh install"
	SAM_CLI_TELEMETRY=0 exec "$VENV/bin/sam" "$@"
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

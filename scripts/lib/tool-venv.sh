# A command-line tool pinned in a virtualenv of its own (sourced by scripts/checkov.sh, scripts/sam.sh
# and scripts/uv.sh): such tools pin boto3 and friends to versions that clash with meetpilot's .venv.
#
# The caller sets TOOL (its name in messages), SPEC (the pip requirement, pinned), LOCK (SPEC and
# everything it pulls in, pinned with hashes: `make lock` writes it from `$0 spec`), VENV, EXE (the
# executable inside the virtualenv) and defines run(); then `tool_main "$@"` handles
#   install      create the virtualenv from LOCK (once; a no-op while SPEC and LOCK are unchanged)
#   run ARGS     run the tool; fails if it is not installed
#   spec         print SPEC (what `make lock` resolves)
#   ARGS         install if needed, then run
# Only install needs the network.

STAMP="$VENV/.installed"
PYTHON="${PYTHON:-python3}"

die() {
	printf '%s: %s\n' "$TOOL" "$*" >&2
	exit 1
}

# What the stamp records: a changed lock reinstalls, like a changed SPEC.
wanted() {
	printf '%s %s' "$SPEC" "$(cksum <"$LOCK")"
}

installed() {
	[ -x "$VENV/bin/$EXE" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$(wanted)" ]
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
	"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --require-hashes -r "$LOCK" ||
		die "could not install $LOCK into $VENV"
	wanted >"$STAMP"
}

require_installed() {
	installed || die "$SPEC is not installed; run: $0 install"
}

tool_main() {
	case "${1:-}" in
	install)
		install
		;;
	run)
		shift
		run "$@"
		;;
	spec)
		printf '%s\n' "$SPEC"
		;;
	*)
		install
		run "$@"
		;;
	esac
}

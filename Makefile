# fluxrelay front door. Every target creates the virtualenv on first use, so each one
# works from a fresh clone on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
SAM_VENV ?= .venv-sam
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: help install chromium test test-unit test-integration test-e2e acceptance run reset standin lint format bench bench-coldstart bench-bytecode clean

help:
	@echo "make run     - the whole stack on this machine (API :3000, WaveSpeed stand-in :3001, AWS :4566)"
	@echo "make reset   - forget the local stack's saved data (keys, jobs, outputs, webhook secrets)"
	@echo "make test    - every test suite (unit, integration, e2e, acceptance)"
	@echo "make acceptance [STACK=name REGION=region] - black-box suite against a local or deployed stack"
	@echo "make lint    - ruff, mypy, cfn-lint, ASL lint, checkov"
	@echo "make bench   - latency/cost benchmark against a local stack"
	@echo "make bench-coldstart - each function's cold import against boto3 + its clients + Logger"
	@echo "make bench-bytecode  - what the layer's shipped bytecode saves a deployed cold start"
	@echo "make standin - only the WaveSpeed stand-in on :3001"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,cli]'
	touch $(STAMP)

install: $(STAMP)

# The playground's browser test drives the system's Chromium (Playwright downloads no browser
# here): Debian's package, installed when missing (CI runs as root; others get the command).
CHROMIUM ?= chromium
chromium:
	@command -v $(CHROMIUM) >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; \
	  else echo "the playground test needs Chromium: sudo apt-get install chromium (or set CHROMIUM=/path/to/it)"; exit 1; fi; }

test: $(STAMP) chromium
	$(BIN)/pytest

test-unit: $(STAMP)
	$(BIN)/pytest tests/unit tests/contract

test-integration: $(STAMP)
	$(BIN)/pytest tests/integration

test-e2e: $(STAMP) chromium
	$(BIN)/pytest tests/e2e

# The black-box suite: against the running `make run` (.local/stack.json) or a local stack started
# for the run; with STACK=<name> [REGION=<region>] against that deployed stack (AWS credentials).
STACK ?=
REGION ?=
acceptance: $(STAMP)
	ACCEPTANCE_STACK='$(STACK)' ACCEPTANCE_REGION='$(REGION)' ACCEPTANCE_STACK_JSON='$(if $(STACK),,.local/stack.json)' \
	  $(BIN)/pytest tests/acceptance $(PYTEST_ARGS)

run: $(STAMP)
	$(BIN)/python -m fluxrelay_local

# The local stack saves its data here when it stops and restores it when it starts.
reset:
	rm -rf .local/state .local/state.saving .local/state.old
	@echo "local stack data wiped: the next make run starts empty, with a new dev key"

standin: $(STAMP)
	$(BIN)/python -m fluxrelay_local.standin --port $${UPSTREAM_PORT:-3001}

bench: $(STAMP)
	$(BIN)/python -m fluxrelay_local.bench

# Exactly the layer's requirements, as a deployed function has them on its path (bench-coldstart).
COLDSTART_VENV ?= .venv-coldstart
$(COLDSTART_VENV)/.installed: layers/fluxrelay/requirements.txt
	rm -rf $(COLDSTART_VENV)
	$(PYTHON) -m venv $(COLDSTART_VENV)
	$(COLDSTART_VENV)/bin/pip install --quiet -r layers/fluxrelay/requirements.txt
	touch $@

# INSTRUCTIONS=1: exact user-space instruction counts with valgrind instead of CPU times.
bench-coldstart: $(STAMP) $(COLDSTART_VENV)/.installed
	$(BIN)/python -m fluxrelay_local.coldstart --python $(COLDSTART_VENV)/bin/python $(if $(filter-out 0,$(INSTRUCTIONS)),--instructions)

# What shipping the layer's bytecode saves a deployed cold start (needs Python 3.13; pip downloads the
# layer's pins for this machine).
bench-bytecode: $(STAMP)
	@test -n "$(PY313_BIN)" || { echo "python3.13 not found (pyenv install 3.13 or put it on PATH)"; exit 1; }
	$(BIN)/python -m fluxrelay_local.bytecode --python $(PY313_BIN)/python3

lint: $(STAMP) lint-template lint-security
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) $(SAM_VENV) $(CHECKOV_VENV) $(COLDSTART_VENV) .local .aws-sam .pytest_cache .mypy_cache .ruff_cache

-include mk/infra.mk

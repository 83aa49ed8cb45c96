# Infra targets (template, state machine, layer). Included by the top-level Makefile.
VENV ?= .venv
SAM_VENV ?= .venv-sam
SAM := $(SAM_VENV)/bin/sam
# checkov pins dependencies of its own that clash with the dev ones: it too lives in its own venv.
CHECKOV_VERSION := 3.3.30
CHECKOV_VENV ?= .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.checkov-$(CHECKOV_VERSION)
CHECKOV := $(CHECKOV_VENV)/bin/checkov --quiet --compact --skip-download --framework cloudformation --file
# Options that add resources, switched on for a second scan: checkov skips a resource whose
# Condition is false with the parameter defaults, so only that scan sees them.
CHECKOV_OPTIONS := EncryptionKey=customer-managed MediaAccessLogs=enabled
ASL := $(wildcard statemachines/*.asl.json)
# sam build runs the layer Makefile with the runtime's Python: find 3.13 (pyenv has it, not activated).
ifndef PY313_BIN
PY313_BIN := $(or $(lastword $(wildcard $(shell pyenv root 2>/dev/null)/versions/3.13*/bin)),$(patsubst %/python3.13,%,$(shell command -v python3.13 2>/dev/null)))
endif
export SAM_CLI_TELEMETRY ?= 0
SAM_PYTHON ?= $(if $(PY313_BIN),$(PY313_BIN)/python3,python3)
DEPLOY_ARGS ?= --guided
# $(STAMP) (the main venv's install stamp) comes from the top-level Makefile; empty when run alone.

.PHONY: lint-template lint-security validate build deploy

# cfn-lint on the template, statelint on the ASL once every ${...} is substituted
# ("${X}" -> a Lambda ARN, bare ${X} -> a number).
lint-template: $(STAMP)
	$(VENV)/bin/cfn-lint template.yaml
	@tmp=$$(mktemp); trap 'rm -f $$tmp' EXIT; \
	for asl in $(ASL); do \
	  sed -E -e 's/"\$$\{([A-Za-z0-9_]+)\}"/"arn:aws:lambda:us-east-1:123456789012:function:\1"/g' \
	         -e 's/\$$\{[A-Za-z0-9_]+\}/3600/g' $$asl > $$tmp; \
	  if grep -n '\$${' $$tmp; then echo "unsubstituted placeholder in $$asl"; exit 1; fi; \
	  $(VENV)/bin/statelint $$tmp && echo "statelint: $$asl OK" || exit 1; \
	done

$(CHECKOV_STAMP):
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet checkov==$(CHECKOV_VERSION)
	touch $@

# checkov on the template as deployed by default, then with every option on. It fails on any finding
# that is neither fixed nor skipped with a `checkov:skip=ID: reason` comment on its resource.
lint-security: $(CHECKOV_STAMP)
	$(CHECKOV) template.yaml
	@tmp=$$(mktemp --suffix=.yaml); trap 'rm -f $$tmp' EXIT; cp template.yaml $$tmp; \
	for opt in $(CHECKOV_OPTIONS); do \
	  name=$${opt%%=*}; value=$${opt#*=}; \
	  sed -i -E "/^  $$name:$$/,/^    Default:/s/^(    Default:).*/\1 $$value/" $$tmp; \
	  grep -A3 -x "  $$name:" $$tmp | grep -qx "    Default: $$value" || { echo "template.yaml: no parameter $$name"; exit 1; }; \
	done; \
	echo "$(CHECKOV) template.yaml with $(CHECKOV_OPTIONS)"; \
	$(CHECKOV) $$tmp

# aws-sam-cli pins its own dependencies: it lives in its own venv, created on first use.
$(SAM):
	$(SAM_PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet aws-sam-cli==1.170.0

validate: $(SAM)
	$(SAM) validate --lint

build: $(SAM)
	@test -n "$(PY313_BIN)" || { echo "python3.13 not found (pyenv install 3.13 or put it on PATH)"; exit 1; }
	PATH="$(PY313_BIN):$$PATH" $(SAM) build

# First deploy: interactive (--guided) and saved to samconfig.toml; later: make deploy DEPLOY_ARGS=
deploy: build
	$(SAM) deploy $(DEPLOY_ARGS)

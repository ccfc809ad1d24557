# One-command entry points. `make test` and `make demo` each run `install` first,
# so either works on a fresh machine with nothing but python3, node and npm.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
CDK := node_modules/.bin/cdk
STACK ?= WorkosDsyncPipeline
# Extra CDK CLI arguments, e.g. CDK_ARGS="-c alarmEmail=oncall@example.com -c enableWaf=true"
CDK_ARGS ?=
# `make rehearse`: MiniStack in a venv of its own (from the project's interpreter: it runs the functions, whose
# bundles are built for that interpreter), and the rehearsal's cloud assembly (kept: bundles are reused).
REHEARSE_VENV := .rehearse-venv
REHEARSE_OUT := .rehearse-cdk.out

# jsii (the CDK bridge) runs on the Node.js pinned in package.json, not on whatever node is installed.
export PATH := $(CURDIR)/node_modules/.bin:$(PATH)
export CDK_DISABLE_CLI_TELEMETRY := true
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: help install lint format typecheck pytest test synth deploy-check demo rehearse deploy destroy bench simulate clean

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

install: $(VENV)/.installed node_modules/.installed ## create .venv, install Python and npm dependencies (idempotent)

$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	@touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

lint: install ## ruff lint and format check, and the import layers of shared/ (import-linter)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

format: install ## apply ruff formatting and safe fixes
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

typecheck: install ## mypy (strict)
	$(VENV)/bin/mypy .

pytest: install ## unit, integration, infra and end-to-end tests
	$(VENV)/bin/pytest -n 2 -q

test: install lint typecheck pytest ## everything CI runs: lint, types, all test suites

synth: install ## synthesize the stack into cdk.out/ (offline, cdk-nag on) and cfn-lint it
	rm -rf cdk.out
	$(CDK) synth --quiet --no-notices $(CDK_ARGS)
	$(VENV)/bin/cfn-lint -- cdk.out/$(STACK).template.json

deploy-check: install ## before a deploy: the template's contracts with the code, its IAM call by call, each bundle's imports
	$(VENV)/bin/pytest -q -n 2 tests/infra/test_contracts.py tests/infra/test_bundle_check.py tests/deploy
	$(PY) -m infra.deploy_check

demo: install ## run the whole pipeline locally (no AWS account) and check it against the fake WorkOS
	$(VENV)/bin/dsync demo

rehearse: REHEARSE_STARTED := $(shell date +%s.%N)
rehearse: install $(REHEARSE_VENV)/.installed ## deploy the real app into MiniStack (no account), drive it, destroy it: PASS|FAIL
	$(PY) -m rehearsal --ministack $(REHEARSE_VENV)/bin/ministack --outdir $(REHEARSE_OUT) --setup-started $(REHEARSE_STARTED)

$(REHEARSE_VENV)/.installed: requirements-rehearse.txt $(VENV)/.installed
	@test -x $(REHEARSE_VENV)/bin/python || $(PY) -m venv $(REHEARSE_VENV)
	$(REHEARSE_VENV)/bin/python -m pip install -q -r requirements-rehearse.txt
	@touch $@

deploy: install ## cdk deploy (needs AWS credentials; see README "Deploy")
	$(CDK) deploy $(STACK) --require-approval broadening $(CDK_ARGS)

destroy: install ## cdk destroy (the table and secrets are retained)
	$(CDK) destroy $(STACK) $(CDK_ARGS)

bench: install ## run every benchmark under bench/ and print its figures
	@set -e; for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b; done

simulate: install ## the scale model (docs/scale.md): every scenario beside its target, then verdict: PASS|FAIL
	$(PY) -m simulator

clean: ## remove build output (keeps .venv and node_modules)
	rm -rf cdk.out .build .pytest_cache .mypy_cache .ruff_cache .hypothesis $(REHEARSE_OUT) $(REHEARSE_VENV)

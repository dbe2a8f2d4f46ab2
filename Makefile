# Opora: `make run` starts everything, `make test` runs the whole suite. `make help` lists all.
SHELL := /bin/bash
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help install tools model run test test-unit test-integration test-e2e test-rules lint fmt docs bench bench-long chaos clean

help: ## list the targets
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml shared/pyproject.toml
	@$(PY) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is needed")'
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) ## create .venv and install everything (once; again when pyproject changes)

tools: ## install the system tools the tests use (Dovecot, Prometheus/promtool; needs root)
	scripts/ensure-test-tools

run: $(STAMP) ## start NATS (var/nats) and the four services; Ctrl-C stops all
	$(BIN)/opora run

test: $(STAMP) tools test-rules ## the whole suite: alert rules, unit, integration (real nats-server, Dovecot, Prometheus), end to end
	$(BIN)/pytest $(PYTEST_ARGS)

test-unit: $(STAMP) ## pure functions and single handlers, no sockets
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

test-integration: $(STAMP) tools ## against a real nats-server on a free port
	$(BIN)/pytest tests/integration $(PYTEST_ARGS)

test-e2e: $(STAMP) ## the four services as processes, real HTTP
	$(BIN)/pytest tests/e2e $(PYTEST_ARGS)

RULE_TESTS := $(wildcard deploy/prometheus/*test*.yml)
RULE_FILES := $(filter-out $(RULE_TESTS),$(wildcard deploy/prometheus/*rules*.yml))

test-rules: tools ## promtool: check the Prometheus config and rules, run the alert unit tests
	@if ! command -v promtool >/dev/null 2>&1; then \
	  echo "test-rules: SKIPPED, promtool (Debian package prometheus) is not installed;" \
	    "scripts/ensure-test-tools installs it as root" >&2; exit 0; fi; \
	set -e; \
	promtool check config deploy/prometheus/prometheus.yml; \
	promtool check rules $(RULE_FILES); \
	promtool test rules $(RULE_TESTS)

lint: $(STAMP) ## ruff (lint and format check) and mypy (strict on shared/)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy shared/src services/*/src

fmt: $(STAMP) ## format and autofix
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

docs: $(STAMP) ## regenerate docs/asyncapi/*.json and docs/openapi/intake.json from the code
	$(BIN)/opora docs

model: $(STAMP) ## rebuild the classifier model from services/classifier/data (reproducible)
	$(BIN)/python -m opora_classifier.train

bench: $(STAMP) ## every benchmark and the chaos run (~6 min); var/bench/results.json, docs/benchmarks.md
	$(BIN)/python bench/run_all.py $(BENCH_ARGS)

bench-long: $(STAMP) ## the same with longer runs and more repetitions
	$(BIN)/python bench/run_all.py --long $(BENCH_ARGS)

chaos: $(STAMP) ## kill -9 each service and nats-server under load; count lost and duplicated tickets
	$(BIN)/python bench/chaos.py

clean: ## remove runtime data (var/) and caches, keep .venv
	rm -rf var .pytest_cache .mypy_cache .ruff_cache

# The two README commands: `make dev` (whole local stack) and `make test` (every test).
# Both install what is missing into .venv first. Needs Python 3.11+.
SHELL := /bin/bash
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	if command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then command -v $$p; break; fi; done)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_WORKERS ?= 2

.PHONY: install dev test lint format unit integration e2e bench openapi clean

$(STAMP): pyproject.toml layers/domain/requirements.txt
	@test -n "$(PYTHON)" || { echo "Python 3.11+ is required" >&2; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

dev: install
	$(BIN)/relasify dev

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: install lint
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile

unit: install
	$(BIN)/pytest tests/unit

integration: install
	$(BIN)/pytest tests/integration tests/infrastructure

e2e: install
	$(BIN)/pytest tests/e2e

bench: install
	$(BIN)/python -m bench

openapi: install
	$(BIN)/relasify openapi

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis .aws-sam .local-stack

# Shopcast: `make run` serves on the embedded defaults; `make test` runs every check.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
WEB := static/node_modules/.installed

.PHONY: run install migrate test lint fmt openapi clean

run: install migrate
	$(PY) -m server serve

install: $(STAMP) $(WEB)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

$(WEB): static/package.json static/package-lock.json
	cd static && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	touch $@

migrate: $(STAMP)
	$(PY) -m server migrate

test: install lint
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

fmt: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

openapi: $(STAMP)
	$(PY) -m server openapi --output docs/openapi.json

clean:
	rm -rf $(VENV) static/node_modules

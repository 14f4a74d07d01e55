# Shopcast: `make run` serves on the embedded defaults; `make test` runs every check.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Every dependency, pinned with hashes: LOCK is what the image installs, DEV_LOCK adds the dev extra.
LOCK := requirements.txt
DEV_LOCK := requirements-dev.txt
WEB := static/node_modules/.installed

NETNS := shopcast-e2e

.PHONY: run install lock migrate test test-browser lint fmt openapi asyncapi bench clean

run: install migrate
	$(PY) -m server serve

install: $(STAMP) $(WEB)

$(STAMP): pyproject.toml $(DEV_LOCK)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --require-hashes -r $(DEV_LOCK)
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

# Resolves pyproject.toml again, keeping every pin that still fits (LOCK_FLAGS=--upgrade moves all
# to their newest releases, LOCK_FLAGS="--upgrade-package NAME" one). The runtime lock is
# constrained by the dev one, so both pin the same versions. Each is compiled from a copy (uv
# keeps the pins of its output file) and replaced only if it changed, so an unchanged lock does
# not make `make install` run again.
LOCK_FLAGS ?=
COMPILE = $(VENV)/bin/uv pip compile pyproject.toml --quiet --universal --python-version 3.11 \
	--generate-hashes --custom-compile-command 'make lock' $(LOCK_FLAGS)
lock: $(STAMP)
	@set -e; refresh() { out=$$1; shift; cp $$out $$out.new 2>/dev/null || true; \
		$(COMPILE) "$$@" --output-file $$out.new; \
		if cmp -s $$out.new $$out; then rm $$out.new; else mv $$out.new $$out; echo "$$out changed"; fi; }; \
		refresh $(DEV_LOCK) --extra dev; refresh $(LOCK) --constraints $(DEV_LOCK)

$(WEB): static/package.json static/package-lock.json
	cd static && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	touch $@

migrate: $(STAMP)
	$(PY) -m server migrate

# The suite waits more than it computes (peers, timers, child processes): a few workers at once
# halve its time. A test file runs in one worker (its module fixtures are set up once).
TEST_WORKERS ?= 3

test: install lint
	$(PY) -m pytest -m "not browser" -n $(TEST_WORKERS) --dist loadfile
	$(MAKE) test-browser

# Chromium and the server share a network namespace with only a loopback interface, so no
# test traffic can reach another address, removed after the run. Creating it needs root (CI runs
# as root).
test-browser: install
	@if [ "$$(id -u)" != 0 ]; then echo "test-browser: needs root for ip netns; skipped"; exit 0; fi; \
	ip netns add $(NETNS) 2>/dev/null || true; \
	ip netns exec $(NETNS) ip link set lo up; \
	ip netns exec $(NETNS) $(PY) -m pytest -m browser tests/browser tests/net; \
	status=$$?; ip netns del $(NETNS); exit $$status

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-logo --no-cache

fmt: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# Every benchmark at a load and at twice that load, then a table of the figures (minutes).
bench: install
	$(PY) -m bench

openapi: $(STAMP)
	$(PY) -m server openapi --output docs/openapi.json

asyncapi: $(STAMP)
	$(PY) -m server asyncapi --output docs/asyncapi.yaml

clean:
	rm -rf $(VENV) static/node_modules

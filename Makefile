# Mercato — every target installs what it needs on a bare Debian machine.
#   make test   set up, then run the whole suite (unit, contracts, integration)
#   make demo   set up, start the devnet, run the demo, stop what it started
#   make chaos  set up, then only the chaos test (tests/chaos) with 300 s of injections
#               and a random seed (MERCATO_CHAOS_S=…, MERCATO_CHAOS_SEED=N replays a schedule;
#               `make test` runs a 40 s form with seed 4)
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
ANVIL := node_modules/.bin/anvil
APT_PACKAGES := nodejs npm
# the container runtime's engine and the static busybox its tests build an image from
CONTAINER_PACKAGES := podman runc busybox-static
PYTEST_ARGS ?=

.PHONY: setup containers chromium test test-unit test-contracts test-integration chaos demo bench examples toolchain lint clean

setup: $(STAMP) $(ANVIL) containers chromium

# System packages only when missing (CI and fresh machines are root, as here).
.apt.stamp:
	@missing=""; for p in $(APT_PACKAGES); do command -v $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing system packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_PACKAGES); fi
	@touch $@

# podman + runc + busybox-static, checked on every run (cheap) and installed when missing.
containers:
	@if ! command -v podman >/dev/null 2>&1 || ! command -v runc >/dev/null 2>&1 || \
	    ! dpkg-query -W -f='$${Status}' busybox-static 2>/dev/null | grep -q 'ok installed'; then \
	  echo "installing system packages: $(CONTAINER_PACKAGES)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(CONTAINER_PACKAGES); fi

# Debian's Chromium for the explorer's browser tests (Playwright drives it; no browser download).
chromium:
	@if ! command -v chromium >/dev/null 2>&1 || ! dpkg-query -W -f='$${Status}' chromium-driver 2>/dev/null | grep -q 'ok installed'; then \
	  echo "installing system packages: chromium chromium-driver"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; fi

$(STAMP): pyproject.toml .apt.stamp
	@command -v $(PYTHON) >/dev/null || (apt-get update -qq && apt-get install -y -qq python3 python3-venv)
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[dev]'
	@touch $@

$(ANVIL): package.json .apt.stamp
	npm install --no-audit --no-fund --loglevel=error
	@touch $@

test: setup
	$(VENV)/bin/lint-imports --no-cache
	$(PY) -m pytest $(PYTEST_ARGS)

test-unit: setup
	$(PY) -m pytest -m "unit" $(PYTEST_ARGS)

test-contracts: setup
	$(PY) -m pytest tests/contracts $(PYTEST_ARGS)

test-integration: setup
	$(PY) -m pytest -m integration $(PYTEST_ARGS)

MERCATO_CHAOS_S ?= 300
MERCATO_CHAOS_SEED ?= random
chaos: setup
	MERCATO_CHAOS_S=$(MERCATO_CHAOS_S) MERCATO_CHAOS_SEED=$(MERCATO_CHAOS_SEED) $(PY) -m pytest tests/chaos -s $(PYTEST_ARGS)

demo: setup
	$(PY) scripts/demo.py

bench: setup
	$(PY) bench/gas.py
	$(PY) bench/sandbox_overhead.py
	$(PY) bench/python_overhead.py
	$(PY) bench/ttfb.py
	$(PY) bench/load.py
	$(PY) bench/verification.py
	$(PY) bench/container_overhead.py
	$(PY) bench/map.py

# C toolchain for rebuilding the example workloads (the built .wasm files are committed).
toolchain:
	@command -v clang >/dev/null && [ -f /usr/lib/wasm32-wasi/libc.a ] || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clang lld wasi-libc libclang-rt-14-dev-wasm32)

examples: toolchain
	bash examples/build.sh

clean:
	rm -rf $(VENV) node_modules .apt.stamp .pytest_cache .hypothesis

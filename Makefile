# examkiosk: `make demo` starts a whole demo centre, `make test` runs the test suite.
# Both install what is missing first (Debian packages as root, then a virtualenv in .venv).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTHON ?= python3

.PHONY: demo test test-e2e test-faults system venv postgres clean

demo: venv
	$(PY) -m provisioning.demo

test: venv postgres
	$(PY) -m pytest

test-e2e: venv postgres
	$(PY) -m pytest -m e2e

# Every one of the twenty kill -9 points (make test runs a seeded subset of five).
test-faults: venv postgres
	EXAMKIOSK_FAULTS=all $(PY) -m pytest -m faults

system:
	@bash scripts/install-system.sh

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	@touch $(STAMP)

venv: system $(STAMP)

postgres: system
	@bash scripts/ensure-postgres.sh

clean:
	rm -rf var/demo tests/artifacts .pytest_cache

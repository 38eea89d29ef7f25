# examkiosk: `make demo` starts a whole demo centre, `make test` runs the test suite, `make bench` the benchmarks.
# Each installs what is missing first (Debian packages as root, then a virtualenv in .venv).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTHON ?= python3
# Central storage of `make demo`: directory (embedded default) or s3 (a Ceph RADOS Gateway the demo starts).
STORAGE ?= directory

.PHONY: demo test lint test-e2e test-faults bench system venv postgres clean

demo: venv
	$(PY) -m provisioning.demo --storage $(STORAGE)

test: venv postgres lint
	$(PY) -m pytest

# The agreed rules (pyflakes, import order, bugbear) and the import contracts in pyproject.toml.
lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

test-e2e: venv postgres
	$(PY) -m pytest -m e2e

# Every one of the twenty kill -9 points (make test runs a seeded subset of five).
test-faults: venv postgres
	EXAMKIOSK_FAULTS=all $(PY) -m pytest -m faults

# Every benchmark in bench/ (each prints one JSON line on stdout, its logs on stderr), after
# installing what they compare against (scripts/install-bench-peers.sh); modules without a main
# are their parts (simulated stations, peers). One failing benchmark
# does not stop the others; the target fails at the end naming it.
bench: venv
	@bash scripts/install-bench-peers.sh $(VENV)
	@failed=(); for path in bench/*.py; do name=$$(basename "$$path" .py); \
	  grep -q '__name__ == "__main__"' "$$path" || continue; \
	  echo "--- bench.$$name" >&2; \
	  $(PY) -m "bench.$$name" || failed+=("$$name"); \
	done; \
	if (( $${#failed[@]} )); then echo "benchmarks failed: $${failed[*]}" >&2; exit 1; fi

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

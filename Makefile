# Everything runs in a virtual environment that the first target creates: a fresh machine
# needs nothing but Python 3.11+.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: install test demo bench lint clean

$(STAMP): pyproject.toml
	rm -f $(VENV)/.installed-*
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(STAMP)

## Run the tests: against PYES_TEST_DSN if set, else a throwaway embedded PostgreSQL 18.
test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## The demo: against PYES_DATABASE_URL if set, else a throwaway embedded PostgreSQL.
demo: $(STAMP)
	$(BIN)/python examples/demo.py

## Benchmarks against plain SQL on the same server (results in bench/results/).
## Each script exits non-zero if a pyes run or its reference fails. report.py gathers every
## bench/results/*.json into bench/results/latest.{json,md} and append.png: keep it last.
bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python bench/append.py
	@if command -v valgrind >/dev/null; then $(BIN)/python bench/instructions.py; \
	 else echo "valgrind is not installed: bench/instructions.py skipped (its last results stay)"; fi
	$(BIN)/python bench/snapshots.py
	$(BIN)/python bench/reads.py
	$(BIN)/python bench/concurrency.py
	$(BIN)/python bench/peer.py
	$(BIN)/python bench/notify.py
	$(BIN)/python bench/projections.py
	$(BIN)/python bench/capture.py
	$(BIN)/python bench/subscriptions.py
	$(BIN)/python bench/report.py

lint: $(STAMP)
	$(BIN)/python -m ruff check pyes tests bench examples migrations
	$(BIN)/python -m mypy

clean:
	rm -rf $(VENV) dist build .pytest_cache .mypy_cache .ruff_cache

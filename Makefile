# The two commands a new user needs: `make demo` runs the system, `make test` runs the tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

$(BIN)/nurturehub: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

.PHONY: install demo sync-demo test test-sqlite test-postgres lint
install: $(BIN)/nurturehub

demo: install
	$(BIN)/nurturehub demo

sync-demo: install
	$(BIN)/nurturehub demo --no-dagster

test: install lint test-sqlite test-postgres

test-sqlite: install
	NURTUREHUB_TEST_DB=sqlite $(BIN)/pytest -q $(PYTEST_ARGS)

test-postgres: install
	NURTUREHUB_TEST_DB=postgres $(BIN)/pytest -q -m "not browser" $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

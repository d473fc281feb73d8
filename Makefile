# Cloud Supermarket. `make run` serves it with demo data; `make test` runs every test.
# Both build the environment from the hashed lock file on first use: only Python 3.11+
# (with its venv module) and make are needed.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat requirements-dev.lock pyproject.toml 2>/dev/null | cksum | cut -d' ' -f1)

# The second test pass creates its own database on this server and its own Redis key prefix.
TEST_DATABASE_URL ?= postgresql://127.0.0.1:5432/postgres
TEST_REDIS_URL    ?= redis://127.0.0.1:6379/0
PYTEST_ARGS       ?=
# Test processes (pytest-xdist): one per core; each has its own database and Redis namespace.
TEST_WORKERS      ?= auto

.PHONY: help run test test-embedded test-postgres lint format bench lock translations clean

help:  ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

$(STAMP): requirements-dev.lock pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed (set PYTHON=...)")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r requirements-dev.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@rm -f $(VENV)/.installed-* && touch $(STAMP)

run: $(STAMP)  ## Serve on http://127.0.0.1:8000 with demo data (PORT changes the port)
	$(BIN)/cloudmarket serve

test: test-embedded test-postgres  ## Run the whole suite on SQLite, then on PostgreSQL + Redis

test-embedded: $(STAMP)  ## The suite on SQLite with the in-process broker
	$(BIN)/pytest -q -n $(TEST_WORKERS) $(PYTEST_ARGS)

test-postgres: $(STAMP)  ## The suite on PostgreSQL + Redis (TEST_DATABASE_URL, TEST_REDIS_URL)
	@if $(BIN)/python -m tests.services_up "$(TEST_DATABASE_URL)" "$(TEST_REDIS_URL)"; then \
		DATABASE_URL="$(TEST_DATABASE_URL)" REDIS_URL="$(TEST_REDIS_URL)" $(BIN)/pytest -q -n $(TEST_WORKERS) $(PYTEST_ARGS); \
	elif [ "$$CI" = "true" ]; then \
		echo "PostgreSQL or Redis is not reachable; CI must run both passes"; exit 1; \
	else \
		echo "SKIPPED the PostgreSQL + Redis pass: nothing answers at $(TEST_DATABASE_URL) / $(TEST_REDIS_URL)."; \
		echo "Start both (see README, 'Tests') or set TEST_DATABASE_URL and TEST_REDIS_URL."; \
	fi

lint: $(STAMP)  ## ruff (lint and format check) and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)  ## Format the code
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)  ## Run the benchmarks and print their figures (needs PostgreSQL + Redis)
	$(BIN)/python -m bench

lock:  ## Re-pin every dependency with hashes (needs uv)
	uv pip compile pyproject.toml --generate-hashes --python-version 3.11 -q -o requirements.lock
	uv pip compile pyproject.toml --extra dev --generate-hashes --python-version 3.11 -q -o requirements-dev.lock

translations: $(STAMP)  ## Extract messages and update every package's catalogs
	$(BIN)/python -m marketplace.catalogs update

clean:  ## Remove the environment and local data
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache

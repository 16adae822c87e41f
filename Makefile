# nxdata — set-up, tests, demo, benchmarks and the migration workflow.
# `make demo` and `make test` work on a fresh machine with only Python 3.11+: they create .venv,
# install nxdata with its dev extras and, unless NXDATA_DATABASE_URL / DATABASE_URL is set, start
# an embedded PostgreSQL.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# Without NXDATA_DATABASE_URL / DATABASE_URL, the db-* targets use the embedded server that
# `make demo` starts (.nxdata/embedded), as the demo does.
NXDATA := $(BIN)/nxdata
DB := $(if $(or $(NXDATA_DATABASE_URL),$(DATABASE_URL)),,--embedded)

.PHONY: install system-deps test test-embedded lint format demo bench bench-quick typecheck \
	db-generate db-generate-all db-migrate db-migrate-all db-seed db-check db-status db-lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,bench]"
	touch $(STAMP)

install: $(STAMP) system-deps

## system-deps: Debian's pgbouncer for the PgBouncer tests, installed when missing (as root,
## with apt-get); elsewhere a hint, and those tests are skipped
system-deps:
	@command -v pgbouncer >/dev/null 2>&1 || test -x /usr/sbin/pgbouncer || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing pgbouncer (apt-get)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer >/dev/null; \
	  else \
	    echo "pgbouncer is not installed: the PgBouncer tests will be skipped (apt-get install pgbouncer)" >&2; \
	  fi; }

## test: the whole suite (configured server, else embedded PostgreSQL), then the example
## service's tests (examples/, with the nxdata pytest plugin)
test: $(STAMP) system-deps
	$(BIN)/python -m pytest -q
	cd examples && ../$(BIN)/python -m pytest -q

## test-embedded: the whole suite on the embedded PostgreSQL, whatever the environment says
test-embedded: $(STAMP) system-deps
	env -u NXDATA_DATABASE_URL -u DATABASE_URL $(BIN)/python -m pytest -q
	cd examples && env -u NXDATA_DATABASE_URL -u DATABASE_URL ../$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: $(STAMP)
	$(BIN)/mypy
	$(BIN)/mypy --strict examples

## demo: migrate the reference schema, seed it and show repositories at work
demo: $(STAMP)
	$(BIN)/python -m schema.demo

bench: $(STAMP)
	$(BIN)/python -m benchmarks

bench-quick: $(STAMP)
	$(BIN)/python -m benchmarks --quick

# The migration workflow of the original design (schema=<name>).
db-generate: $(STAMP)
	@test -n "$(schema)" || (echo "usage: make db-generate schema=<name>" >&2; exit 2)
	$(NXDATA) diff $(DB) --schema $(schema) $(if $(name),--name $(name)) $(if $(unsafe),--unsafe)

db-generate-all: $(STAMP)
	$(NXDATA) diff $(DB) --all $(if $(name),--name $(name)) $(if $(unsafe),--unsafe)

db-migrate: $(STAMP)
	@test -n "$(schema)" || (echo "usage: make db-migrate schema=<name>" >&2; exit 2)
	$(NXDATA) migrate $(DB) --schema $(schema) $(if $(allow),--allow $(allow))

db-migrate-all: $(STAMP)
	$(NXDATA) migrate $(DB) --all $(if $(allow),--allow $(allow))

# The original workflow's db-migrate-package-dev: one schema's seed processes (again=<process>).
db-seed: $(STAMP)
	@test -n "$(schema)" || (echo "usage: make db-seed schema=<name> [again=<process>]" >&2; exit 2)
	$(NXDATA) seed $(DB) --schema $(schema) $(if $(again),--again $(again))

db-check: $(STAMP)
	$(NXDATA) check $(DB) --all

db-status: $(STAMP)
	$(NXDATA) status $(DB)

db-lint: $(STAMP)
	$(NXDATA) lint $(DB)

clean:
	rm -rf $(VENV) .nxdata .pytest_cache .ruff_cache .hypothesis

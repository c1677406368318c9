# ls-extensions: `make run` starts the product on its embedded defaults, `make test` runs the suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DATA_DIR ?= $(CURDIR)/data
PORT ?= 8080

.PHONY: run run-prod test test-fast install system-deps lint format bench clean

$(VENV)/.installed: pyproject.toml scripts/install-ml.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -e '.[test]'
	scripts/install-ml.sh
	touch $@

install: $(VENV)/.installed

## Start Label Studio with ls_extensions on http://localhost:$(PORT) (SQLite and media in $(DATA_DIR)).
run: install
	DATA_DIR=$(DATA_DIR) PORT=$(PORT) scripts/run.sh

## The production layout on loopback: PostgreSQL, Redis, gunicorn (4 workers), 2 Celery workers + beat, ML backend.
run-prod: install system-deps
	DATA_DIR=$(DATA_DIR)/prod PORT=$(PORT) scripts/run_prod.sh

## Install what the tests need (Debian packages included) and run the whole suite.
test: install system-deps
	scripts/test.sh

## The suite without the browser and PostgreSQL passes.
test-fast: install
	$(BIN)/pytest -q -m "not browser and not postgres"

system-deps:
	scripts/system-deps.sh

lint: install
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

## Speed and memory against the Label Studio baseline, printed as tables.
bench: install system-deps
	scripts/bench.sh

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

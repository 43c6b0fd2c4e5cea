# Everything a newcomer needs: `make run` and `make test` set up .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CONFIG ?= config/default.yaml

.PHONY: run test lint typecheck pytest bench schema clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.run-installed: pyproject.toml setup.py mm_daemon/_levels.c mm_daemon/_orderwire.c | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	@touch $@

$(VENV)/.dev-installed: pyproject.toml setup.py mm_daemon/_levels.c mm_daemon/_orderwire.c | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@ $(VENV)/.run-installed

run: $(VENV)/.run-installed
	$(BIN)/mm-daemon run --config $(CONFIG)

test: $(VENV)/.dev-installed lint typecheck pytest

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check mm_daemon tests bench tools
	$(BIN)/ruff format --check mm_daemon tests bench tools

typecheck: $(VENV)/.dev-installed
	$(BIN)/mypy --strict mm_daemon

pytest: $(VENV)/.dev-installed
	$(BIN)/python -m pytest

bench: $(VENV)/.dev-installed
	@for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

schema: $(VENV)/.run-installed
	$(BIN)/mm-daemon schema > config/schema.json
	$(BIN)/mm-daemon schema --control-api > docs/control-api.yaml

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache

# lr_lightning: `make help` lists the targets.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The torch build, installed first; pip arguments may follow (e.g. an index of CPU wheels), so it is not quoted.
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install demo test test-fast lint format bench clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_SPEC)
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)  ## create .venv and install torch (TORCH_SPEC, torch==2.13.0), then the package (skipped when done)

demo: $(STAMP)  ## fit sourdough, test the best checkpoint, compare with least squares
	$(BIN)/python scripts/demo.py

# Two pytest workers, each taking whole test files (module fixtures are built once): the suite is mostly
# subprocesses of the CLI waiting on imports, so it runs in about half the time on two cores.
PYTEST_WORKERS ?= 2

test: $(STAMP)  ## ruff, mypy and the whole pytest suite (what CI runs)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	TORCH_FORCE_WEIGHTS_ONLY_LOAD=1 $(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile

test-fast: $(STAMP)  ## the suite without tests marked slow
	TORCH_FORCE_WEIGHTS_ONLY_LOAD=1 $(BIN)/python -m pytest -m "not slow"

lint: $(STAMP)  ## ruff check, format check and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)  ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:  ## remove the venv, runs and caches
	rm -rf $(VENV) runs .pytest_cache .ruff_cache .mypy_cache *.egg-info

# Every target installs what it needs into .venv on first use.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTHON := $(BIN)/python

EPOCHS ?=
SEEDS ?=
WORKERS ?= 1
TRIALS ?=
ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help install train test test-slow lint format bench comparison ablation sweep report tensorboard optuna-dashboard clean

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*?## "}{printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(PYTHON) || $(PY) -m venv $(VENV)
	$(PYTHON) -m pip install -q --upgrade pip
	# torch first and pinned: a looser range would pull a multi-GB CUDA build.
	$(PYTHON) -m pip install -q torch==2.13.0
	$(PYTHON) -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) ## create .venv and install the package with dev extras (idempotent)

train: $(STAMP) ## main job: train + test once on the default config (synthetic sample)
	$(BIN)/lstm-tweets-train $(ARGS)

test: $(STAMP) ## the test suite (what .ci/run calls)
	$(BIN)/pytest -q $(ARGS)

test-slow: $(STAMP) ## only the slow-marked tests (DDP spawn, real-data studies)
	$(BIN)/pytest -q -m slow $(ARGS)

lint: $(STAMP) ## ruff
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP) ## ruff autofix + format
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean: ## remove caches (keeps .venv and outputs/)
	rm -rf .pytest_cache .ruff_cache

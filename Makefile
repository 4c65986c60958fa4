# Every target installs what it needs into .venv on first use.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTHON := $(BIN)/python

# Knobs for quick runs, e.g. `make comparison EPOCHS=3 SEEDS=1`, `make sweep TRIALS=5 WORKERS=2`.
EPOCHS ?=
SEEDS ?=
WORKERS ?= 1
TRIALS ?=
ROUNDS ?=
SEARCH ?= optuna
ARGS ?=
PORT ?= 6006
OUT ?= outputs/reports
TRAIN := $(BIN)/lstm-tweets-train
STUDY_ARGS := $(if $(EPOCHS),trainer.max_epochs=$(EPOCHS)) $(if $(SEEDS),seed=$(SEEDS)) callbacks.rich_progress_bar=null
# WORKERS=N > 1: a study runs N jobs at a time (Hydra's joblib launcher), cores/N torch threads each.
# Results do not depend on it (thread counts change float rounding, ~1e-7 in a probability).
WORKER_THREADS = $(shell n=$$(( $$(nproc) / $(WORKERS) )); [ $$n -ge 1 ] || n=1; echo $$n)
# make sweep SEARCH=real_sweep: another hparams_search config; its folder is named after its study.
SWEEP_STUDY = $(if $(filter optuna,$(SEARCH)),sweep,$(SEARCH))
PARALLEL = $(if $(filter 1,$(WORKERS)),,hydra/launcher=joblib hydra.launcher.n_jobs=$(WORKERS) threads=$(WORKER_THREADS))

.DEFAULT_GOAL := help
.PHONY: help install train test test-fast test-slow lint format bench bench-study comparison ablation sweep report event-study tensorboard optuna-dashboard clean

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

test: $(STAMP) ## the whole test suite, slow-marked checks included (what .ci/run calls)
	$(BIN)/pytest -q $(ARGS)

test-fast: $(STAMP) ## the suite without the slow-marked checks (DDP spawn)
	$(BIN)/pytest -q -m "not slow" $(ARGS)

test-slow: $(STAMP) ## only the slow-marked tests (DDP spawn)
	$(BIN)/pytest -q -m slow $(ARGS)

lint: $(STAMP) ## ruff
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP) ## ruff autofix + format
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

comparison: $(STAMP) ## study: test accuracy vs interval (5-50 min) x seeds, then its report
	$(TRAIN) -m experiment=comparison $(STUDY_ARGS) $(PARALLEL) $(ARGS)
	$(BIN)/lstm-tweets-report comparison --all

ablation: $(STAMP) ## study: pretrained embedding x count features at 5 min, then its report
	$(TRAIN) -m experiment=ablation $(STUDY_ARGS) $(PARALLEL) $(ARGS)
	$(BIN)/lstm-tweets-report ablation --all

sweep: $(STAMP) ## Optuna sweep (validation lift; SEARCH=real_sweep: the real-data sweep); resumable; WORKERS=N runs N processes on one storage, cores/N threads each
	@stamp=$$(date +%Y-%m-%d_%H-%M-%S); pids=""; \
	threads=$$(( $$(nproc) / $(WORKERS) )); [ $$threads -ge 1 ] || threads=1; \
	echo "sweep: $(WORKERS) worker(s) x $$threads torch thread(s) on $$(nproc) core(s)"; \
	for i in $$(seq 1 $(WORKERS)); do \
	  OMP_NUM_THREADS=$$threads MKL_NUM_THREADS=$$threads \
	  $(TRAIN) -m hparams_search=$(SEARCH) hydra.sweeper.sampler.seed=$$i $(if $(TRIALS),hydra.sweeper.n_trials=$(TRIALS)) \
	    $(if $(EPOCHS),trainer.max_epochs=$(EPOCHS)) callbacks.rich_progress_bar=null threads=$$threads \
	    hydra.sweep.dir=$${LSTM_TWEETS_ROOT:-.}/outputs/multiruns/$(SWEEP_STUDY)/$$stamp-worker$$i $(ARGS) & pids="$$pids $$!"; \
	done; status=0; for p in $$pids; do wait $$p || status=1; done; exit $$status

report: $(STAMP) ## rebuild every study's tables and plots from finished runs, and the event study (OUT=docs/results to publish)
	$(BIN)/lstm-tweets-report --all --out $(OUT)
	$(BIN)/lstm-tweets-event-study --out $(OUT)/event_study

event-study: $(STAMP) ## tweets vs matched control times: absolute returns and volume around the tweet (real data; ARGS="--tweets F --prices F")
	$(BIN)/lstm-tweets-event-study --out $(OUT)/event_study $(ARGS)

tensorboard: $(STAMP) ## serve TensorBoard over outputs/ (or $LSTM_TWEETS_ROOT/outputs)
	$(BIN)/tensorboard --logdir $${LSTM_TWEETS_ROOT:-.}/outputs --port $(PORT) --bind_all

optuna-dashboard: $(STAMP) ## serve the Optuna study (pip install -e '.[dashboard]' first)
	@test -x $(BIN)/optuna-dashboard || { echo "optuna-dashboard is not installed: $(BIN)/pip install -e '.[dashboard]'"; exit 2; }
	$(BIN)/optuna-dashboard sqlite:///outputs/optuna.db --port 8080

bench: $(STAMP) ## benchmarks; figures go to outputs/bench/*.json and docs/benchmarks.md
	$(PYTHON) benchmarks/bench_labels.py
	$(PYTHON) benchmarks/bench_embeddings.py
	$(PYTHON) benchmarks/bench_training.py
	$(PYTHON) benchmarks/bench_sweep_workers.py --rounds 3
	$(PYTHON) benchmarks/bench_study.py
	$(PYTHON) benchmarks/write_results.py

bench-study: $(STAMP) ## the real comparison study (LSTM, 7 intervals x SEEDS=5 seeds, WORKERS=cores) against its plain-loop floor, ROUNDS=1 pairs (needs ../shared/data)
	$(PYTHON) benchmarks/bench_study.py $(if $(SEEDS),--seeds $(SEEDS)) $(if $(ROUNDS),--rounds $(ROUNDS)) $(if $(filter command line environment,$(origin WORKERS)),--workers $(WORKERS))
	$(PYTHON) benchmarks/write_results.py

clean: ## remove caches (keeps .venv and outputs/)
	rm -rf .pytest_cache .ruff_cache

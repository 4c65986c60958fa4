"""The Hydra training app: check the config, seed, build the datamodule, fit and test once from
the best-validation checkpoint (or score a baseline), record the run (record.py: metrics.json,
predictions, TensorBoard extras, console summary), and return the optimized (validation) metric
for sweeps.

    lstm-tweets-train [overrides]         # same as python -m lstm_tweets.train
    lstm-tweets-train -m data.interval=5,10,15

Bad input (a config value, a missing file, data that cannot be used) ends a run with one line,
`error: ...`, on stderr and exit code 2; any other error keeps its traceback. torch and Lightning
are imported once the config has passed its check, so a typo costs a second, not the import.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import hydra
from omegaconf import DictConfig, OmegaConf

from lstm_tweets import cells, objectives, record, resources
from lstm_tweets.cells import RunSetup
from lstm_tweets.config_check import ConfigError, check_config
from lstm_tweets.data.errors import DataError

if TYPE_CHECKING:
    import pytorch_lightning as pl

log = logging.getLogger("lstm_tweets.train")

# Config-controlled `_target_`s may only name these (Hydra's execution whitelist): a config file
# cannot make the app call arbitrary code.
TRUSTED_TARGETS = ["lstm_tweets.*", "pytorch_lightning.*", "torch.optim.*"]
# Loggers whose INFO lines only matter when asked for (`verbose=true`): Lightning's device lines
# and adverts, the vocabulary and embedding-cache notes.
CHATTY_LOGGERS = (
    "pytorch_lightning",
    "lightning_fabric",
    "lstm_tweets.data",
    "lstm_tweets.embeddings",
    "lstm_tweets.baselines",
)


def build(node, **kwargs):
    with hydra.utils.execution_whitelist(TRUSTED_TARGETS):  # Hydra 1.4's scoped whitelist
        return hydra.utils.instantiate(node, **kwargs)


def set_verbosity(verbose: bool) -> None:
    """Quiet by default: Lightning's INFO lines (device lines, tips, checkpoint restores) and the
    data notes go; warnings stay. Call after importing pytorch_lightning, which sets its own level."""
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.INFO if verbose else logging.WARNING)
    logging.getLogger("lstm_tweets").setLevel(logging.INFO)


def train(cfg: DictConfig) -> dict:
    """Run one experiment and return its metrics (also written to `<output_dir>/metrics.json`).
    A config that cannot work raises ConfigError before anything is written or loaded."""
    started = time.time()
    check_config(cfg)
    output_dir = Path(cfg.paths.output_dir)
    log.info("Run folder: %s", output_dir)  # before the imports: the first sign of life
    import pytorch_lightning as pl

    verbose = bool(cfg.get("verbose", False))
    set_verbosity(verbose)
    for noisy in ("gensim", "smart_open"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # Lightning's advice that does not apply here: the test trainer loads the best checkpoint's
    # weights on purpose without its callbacks, and the pytree notice is Lightning's own.
    warnings.filterwarnings(
        "ignore", message=".*when using `ckpt_path`, callbacks used to create.*"
    )
    warnings.filterwarnings("ignore", message=".*isinstance\\(treespec, LeafSpec\\).*")
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "metrics.json").unlink(missing_ok=True)  # a rerun into this folder starts clean
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    resources.apply_threads(cfg.get("threads"))  # make sweep WORKERS=k: cores / k each

    baseline = bool(cfg.model.get("baseline"))
    run = make_trainer(cfg, fit=not baseline)
    # A baseline needs no vocabulary, tensors or embedding (no word2vec training).
    datamodule = build(cfg.data, _convert_="all", encode=not baseline)
    datamodule.prepare_data()
    datamodule.setup("fit")
    datamodule.save_reports(output_dir)

    if baseline:
        from lstm_tweets.baselines import Task, run_baseline

        test_out, fit_info = run_baseline(
            cfg.model, Task.of(datamodule), cfg.optimized_metric, test=cfg.get("test", True)
        )
    else:
        test_out, fit_info = fit_and_test(cfg, datamodule, run)

    return record.record(cfg, run, datamodule, test_out, fit_info, started)


def make_trainer(cfg: DictConfig, fit: bool = True) -> RunSetup:
    """Callbacks, logger and trainer, built before any data work so that a trainer setting
    Lightning refuses fails at once (as a ConfigError naming it)."""
    from lightning_fabric.utilities.exceptions import MisconfigurationException

    from lstm_tweets.callbacks import MaxOverEpochsTestAccuracy, ParameterTable

    name, group_name, cell_keys = cells.run_identity(cfg)
    logger = False
    if cfg.get("logger"):
        # sub_dir null: the run's cell names its TensorBoard run (<output_dir>/tensorboard/<cell>;
        # a sub_dir, not a version, which the progress bar would show as "v_num").
        sub_dir = {} if cfg.logger.get("sub_dir") is not None else {"sub_dir": name}
        logger = build(cfg.logger, **sub_dir)
    if not fit:
        return RunSetup([], logger, None, name, group_name, cell_keys)
    callbacks = [build(c) for c in (cfg.get("callbacks") or {}).values() if c]
    if cfg.get("track_test_every_epoch"):
        callbacks.append(MaxOverEpochsTestAccuracy())
    from lstm_tweets import pruning

    if (reporter := pruning.callback_for(cfg)) is not None:  # a trial of an Optuna sweep
        callbacks.append(reporter)
    summary = cfg.trainer.get("enable_model_summary")
    if summary is None:
        summary = bool(cfg.get("verbose", False))
    if summary:  # Lightning's table without its FLOPs column, which reads 0 here
        callbacks.append(ParameterTable())
    from pytorch_lightning.callbacks import ProgressBar

    bar = cfg.trainer.get("enable_progress_bar")
    if bar is None:
        # A bar only where the config has one (callbacks.rich_progress_bar): without this,
        # `callbacks.rich_progress_bar=null` brings Lightning's default bar back, whose refresh
        # thread takes CPU from the run beside it when a study runs jobs side by side.
        bar = any(isinstance(c, ProgressBar) for c in callbacks)
    try:
        trainer = build(
            cfg.trainer,
            callbacks=callbacks,
            logger=logger,
            enable_model_summary=bool(summary),
            enable_progress_bar=bool(bar),
        )
    except MisconfigurationException as err:
        raise ConfigError(f"trainer: {' '.join(str(err).split())}") from err
    import torch.utils.deterministic

    # `deterministic: true` also makes torch fill every new tensor's memory with NaN, a debugging
    # aid against reading uninitialized memory; it changes no result (no op reads it) and cost
    # about 2 % of a real-data LSTM fit on one CPU thread. The deterministic algorithms stay on.
    torch.utils.deterministic.fill_uninitialized_memory = False
    return RunSetup(callbacks, logger, trainer, name, group_name, cell_keys)


def describe_device(trainer) -> str:
    """One line for the device, instead of Lightning's GPU/TPU availability lines."""
    import torch

    kind = type(trainer.accelerator).__name__.replace("Accelerator", "").lower() or "cpu"
    note = ""
    if kind == "cpu":
        note = (
            " (a GPU is available: trainer=gpu uses it)"
            if torch.cuda.is_available()
            else " (no GPU found)"
        )
    return f"{kind} x{trainer.num_devices}{note}"


def build_model(cfg: DictConfig, datamodule):
    """The LightningModule from `cfg.model`, sized by the data (vocabulary, embedding, classes)."""
    matrix = datamodule.embedding_matrix
    # The optimizer and scheduler configs stay plain dicts, built in configure_optimizers: Hydra's
    # partial factories cannot be pickled, and DDP-spawn pickles the module.
    model_cfg = OmegaConf.to_container(cfg.model, resolve=True)
    optim = {key: model_cfg.pop(key, None) for key in ("optimizer", "scheduler")}
    model = build(
        model_cfg,
        _convert_="all",
        vocab_size=matrix.shape[0],
        embedding_dim=matrix.shape[1],
        num_classes=datamodule.num_classes,
        embedding_matrix=matrix,
        class_counts=datamodule.class_counts,
        trainable_embedding=bool(cfg.embedding.get("trainable", True)),
    )
    model.hparams.update(optim)  # passed to build(), Hydra would turn them back into factories
    return model


def fit_and_test(cfg: DictConfig, datamodule, run: RunSetup):
    """Fit, pick the epoch on validation, and test once from that checkpoint. Returns
    `(test_out, fit_info)`; test_out is None with `test=false` (an Optuna trial)."""
    import torch
    from pytorch_lightning.utilities.model_summary import get_human_readable_count

    from lstm_tweets.callbacks import MaxOverEpochsTestAccuracy

    model = build_model(cfg, datamodule)
    trainer, callbacks, logger = run.trainer, run.callbacks, run.logger
    n_params = sum(p.numel() for p in model.parameters())
    epochs = trainer.max_epochs
    log.info(
        "Training %s (%s parameters) on %s, %s",
        record.model_name(cfg),
        get_human_readable_count(n_params).strip(),
        describe_device(trainer),
        "no epoch limit" if epochs in (None, -1) else f"up to {epochs} epoch{'s' * (epochs != 1)}",
    )
    fit_started = time.perf_counter()
    trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    fit_wall_s = round(time.perf_counter() - fit_started, 3)

    checkpoint, best_path, best_score, info = chosen_checkpoint(trainer)
    info["epochs_trained"] = int(trainer.current_epoch)
    from lstm_tweets.pruning import OptunaPruning

    for reporter in (c for c in callbacks if isinstance(c, OptunaPruning)):
        info.update(reporter.outcome())  # pruned: true/false, pruned_epoch
    tracker = next((c for c in callbacks if isinstance(c, MaxOverEpochsTestAccuracy)), None)
    if tracker is not None and tracker.accuracies:
        # Only to show the reference study's flawed number beside ours; never used for selection.
        info["test_accuracy_max_over_epochs"] = max(tracker.accuracies)
        info["test_accuracy_per_epoch"] = tracker.accuracies
    wanted = objectives.names(cfg.optimized_metric)
    if objectives.FIT_WALL_TIME in wanted:
        info["fit_wall_s"] = fit_wall_s
    values = [optimized_value(m, trainer, checkpoint, best_score, datamodule, info) for m in wanted]
    info["optimized_metric"], info["optimized_value"] = objectives.pack(
        cfg.optimized_metric, values
    )
    if trainer.world_size > 1 and torch.distributed.is_initialized():
        # Only rank 0 tests and writes; the others leave the process group so that no metric
        # waits on them.
        torch.distributed.barrier()
        rank = trainer.global_rank
        torch.distributed.destroy_process_group()
        if rank != 0:
            raise SystemExit(0)
    if not cfg.get("test", True):
        return None, info
    return test_once(cfg, model, datamodule, logger, best_path), info


def chosen_checkpoint(trainer: pl.Trainer):
    """The checkpoint that tracks a metric picks the test weights (last.ckpt only serves
    resuming): `(callback, best_path, best_score, info)`, info with best_epoch and selected_by
    (and `<monitor>_best`); `(None, "", None, info)` without one."""
    import torch

    checkpoint = next((c for c in trainer.checkpoint_callbacks if c.monitor), None)
    best_path = checkpoint.best_model_path if checkpoint else ""
    info = {"best_epoch": None, "selected_by": "last weights (no checkpoint)"}
    best_score = None
    if best_path:
        # Read from the file: after DDP-spawn this process holds the path but not the score.
        # The module wrote the epoch's metrics into it (best.ckpt holds weights, no callbacks).
        best = torch.load(best_path, map_location="cpu", weights_only=True)
        best_score = best.get("metrics", {}).get(checkpoint.monitor)
        if best_score is None:  # a best.ckpt from before this record (a resumed older run)
            best_score = float(checkpoint.best_model_score)
        info["best_epoch"] = int(best["epoch"])
        info["selected_by"] = f"best {checkpoint.monitor} checkpoint"
        info[f"{checkpoint.monitor.replace('/', '_')}_best"] = best_score
    return checkpoint, best_path, best_score, info


def test_once(cfg: DictConfig, model, datamodule, logger, best_path: str) -> dict:
    """Test once, on one device (DDP samplers would repeat samples), from the best checkpoint
    (the last weights without one): per-sample index, label and probabilities, and the test/
    metrics, which the test trainer also logs."""
    import pytorch_lightning as pl
    import torch

    if logger:
        logger.training_done = True  # the test logs no epoch (see tensorboard_log.RunLogger)
    test_trainer = pl.Trainer(
        accelerator=cfg.trainer.get("accelerator", "auto"),
        devices=1,
        logger=logger,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    test_trainer.test(model, datamodule=datamodule, ckpt_path=best_path or None, verbose=False)
    outputs = model.test_outputs
    return {
        "index": torch.cat([o["index"] for o in outputs]).numpy(),
        "label": torch.cat([o["label"] for o in outputs]).numpy(),
        "probs": torch.cat([o["probs"] for o in outputs]).float().numpy(),
        "metrics": {
            k: float(v) for k, v in test_trainer.callback_metrics.items() if k.startswith("test/")
        },
        "logged": True,  # the test trainer wrote these test/ scalars to TensorBoard
    }


def optimized_value(
    metric: str, trainer: pl.Trainer, checkpoint, best_score: float | None, datamodule, info: dict
) -> float | None:
    """One objective of the sweep at the chosen (best-validation) epoch. val/acc_lift is val/acc
    minus the validation split's majority-class share, a constant within a run: the checkpoint
    that tracks val/acc picks the same epoch, and the lift follows from its score.
    train/wall_time_s is the wall time of `trainer.fit`."""
    import numpy as np

    if metric == objectives.FIT_WALL_TIME:
        return info["fit_wall_s"]
    if checkpoint is not None and best_score is not None:
        if checkpoint.monitor == metric:
            return best_score
        if checkpoint.monitor == "val/acc" and metric == "val/acc_lift":
            val_labels = datamodule.labels[datamodule.split.val]
            return best_score - float(np.bincount(val_labels).max() / len(val_labels))
    value = trainer.callback_metrics.get(metric)
    return None if value is None else float(value)


# An absolute path: run as a console script, Hydra would resolve a relative one as a package.
CONFIG_DIR = str(Path(__file__).resolve().parent / "conf")


def stop_on_bad_input(err: DataError) -> None:
    """Bad input in a single run: `error: <message>` on stderr and in the run's log, exit code 2,
    no traceback. In a multirun the error goes on to the sweeper, which records the job as failed
    (hydra_callbacks.MultirunSummary ends the sweep the same way). HYDRA_FULL_ERROR=1 keeps the
    traceback."""
    from hydra.types import RunMode

    from lstm_tweets.hydra_callbacks import one_line

    message = f"error: {one_line(err, width=10_000)}"
    record = log.makeRecord(log.name, logging.ERROR, __file__, 0, message[7:], None, None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)
    hydra_cfg = cells.hydra_config()
    if hydra_cfg is not None and hydra_cfg.mode == RunMode.MULTIRUN:
        return
    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        return
    print(message, file=sys.stderr)
    raise SystemExit(2)


# The whitelist also covers what Hydra resolves for the app: logging handlers, a sweeper's
# custom_search_space, and the jobs its launcher starts.
@hydra.main(config_path=CONFIG_DIR, config_name="train", execution_whitelist=TRUSTED_TARGETS)
def main(cfg: DictConfig) -> float | tuple[float, ...] | None:
    """The optimized metric's value, or a tuple of values when `optimized_metric` is a list."""
    try:
        return objectives.returned(train(cfg))
    except DataError as err:
        stop_on_bad_input(err)
        raise


if __name__ == "__main__":
    main()

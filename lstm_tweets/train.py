"""The Hydra training app: seed, build from config, fit, test once from the best-validation
checkpoint, write metrics.json, and return the optimized (validation) metric for sweeps.

    lstm-tweets-train [overrides]         # same as python -m lstm_tweets.train
    lstm-tweets-train -m data.interval=5,10,15
"""

from __future__ import annotations

import logging
import time
import warnings
from pathlib import Path

import hydra
import numpy as np
import pandas as pd
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf

from lstm_tweets import stats
from lstm_tweets.data.io import atomic_path
from lstm_tweets.data.report import write_json_atomic

log = logging.getLogger("lstm_tweets.train")

# Config-controlled `_target_`s may only name these (Hydra's execution whitelist): a config file
# cannot make the app call arbitrary code.
TRUSTED_TARGETS = ["lstm_tweets.*", "pytorch_lightning.*", "torch.optim.*"]


def build(node, **kwargs):
    return hydra.utils.instantiate(node, _execution_whitelist_=TRUSTED_TARGETS, **kwargs)


def train(cfg: DictConfig) -> dict:
    """Run one experiment and return its metrics (also written to `<output_dir>/metrics.json`)."""
    started = time.time()
    if str(cfg.optimized_metric).startswith("test"):
        raise ValueError(
            f"optimized_metric={cfg.optimized_metric}: sweeps select on validation, never on test"
        )
    for noisy in ("gensim", "smart_open"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # Lightning's advice that does not apply here: the test trainer loads the best checkpoint's
    # weights on purpose without its callbacks, and the pytree notice is Lightning's own.
    warnings.filterwarnings(
        "ignore", message=".*when using `ckpt_path`, callbacks used to create.*"
    )
    warnings.filterwarnings("ignore", message=".*isinstance\\(treespec, LeafSpec\\).*")
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "metrics.json").unlink(missing_ok=True)  # a rerun into this folder starts clean
    pl.seed_everything(cfg.seed, workers=True)

    datamodule = build(cfg.data, _convert_="all")
    datamodule.prepare_data()
    datamodule.setup("fit")
    datamodule.save_reports(output_dir)

    if cfg.model.get("baseline"):
        from lstm_tweets.baselines import run_baseline

        test_out, fit_info = run_baseline(cfg, datamodule)
    else:
        test_out, fit_info = fit_and_test(cfg, datamodule, output_dir)

    metrics = (
        {**fit_info, **summarize(cfg, datamodule, test_out)}
        if test_out is not None
        else dict(fit_info)
    )
    metrics.update(
        seed=int(cfg.seed),
        interval=int(datamodule.interval),
        model=model_name(cfg),
        study=cfg.get("study"),
        n_train=len(datamodule.split.train),
        n_val=len(datamodule.split.val),
        n_test=len(datamodule.split.test),
        data_report=datamodule.report.to_dict(),
        embedding_coverage=datamodule.coverage,
        wall_time_s=round(time.time() - started, 2),
    )
    if test_out is not None:
        save_predictions(output_dir, datamodule, test_out)
    write_json_atomic(
        output_dir / "metrics.json", metrics
    )  # last: its presence marks a finished run
    print_summary(metrics, output_dir)
    return metrics


def fit_and_test(cfg: DictConfig, datamodule, output_dir: Path):
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
    callbacks = [build(c) for c in (cfg.get("callbacks") or {}).values() if c]
    if cfg.get("track_test_every_epoch"):
        callbacks.append(MaxOverEpochsTestAccuracy())
    logger = build(cfg.logger) if cfg.get("logger") else False
    trainer: pl.Trainer = build(cfg.trainer, callbacks=callbacks, logger=logger)
    trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))

    # The checkpoint that tracks a metric picks the test weights (last.ckpt only serves resuming).
    checkpoint = next((c for c in trainer.checkpoint_callbacks if c.monitor), None)
    best_path = checkpoint.best_model_path if checkpoint else ""
    info = {"best_epoch": None, "selected_by": "last weights (no checkpoint)"}
    best_score = None
    if best_path:
        # Read from the file: after DDP-spawn this process holds the path but not the score.
        best = torch.load(best_path, map_location="cpu", weights_only=True)
        state = next(
            v
            for k, v in best["callbacks"].items()
            if k.startswith("ModelCheckpoint") and v.get("monitor") == checkpoint.monitor
        )
        best_score = float(state["best_model_score"])
        info["best_epoch"] = int(best["epoch"])
        info["selected_by"] = f"best {checkpoint.monitor} checkpoint"
        info[f"{checkpoint.monitor.replace('/', '_')}_best"] = best_score
    info["epochs_trained"] = int(trainer.current_epoch)
    tracker = next((c for c in callbacks if isinstance(c, MaxOverEpochsTestAccuracy)), None)
    if tracker is not None and tracker.accuracies:
        # Only to show the reference study's flawed number beside ours; never used for selection.
        info["test_accuracy_max_over_epochs"] = max(tracker.accuracies)
        info["test_accuracy_per_epoch"] = tracker.accuracies
    info["optimized_metric"] = cfg.optimized_metric
    info["optimized_value"] = optimized_value(cfg, trainer, checkpoint, best_score, datamodule)
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

    # Test once, on one device (DDP samplers would repeat samples), from the best checkpoint.
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
    test_out = {
        "index": torch.cat([o["index"] for o in outputs]).numpy(),
        "label": torch.cat([o["label"] for o in outputs]).numpy(),
        "probs": torch.cat([o["probs"] for o in outputs]).float().numpy(),
        "metrics": {
            k: float(v) for k, v in test_trainer.callback_metrics.items() if k.startswith("test/")
        },
    }
    if logger:
        log_to_tensorboard(logger, cfg, datamodule, test_out, info)
    return test_out, info


class MaxOverEpochsTestAccuracy(pl.Callback):
    """Scores the test split after every epoch, as the reference study did before it reported the
    best of those scores. Kept apart from the real test, which happens once, from the best-val
    checkpoint."""

    def __init__(self):
        self.accuracies: list[float] = []

    @torch.no_grad()
    def on_validation_epoch_end(self, trainer, module):
        if trainer.sanity_checking:
            return
        correct = total = 0
        was_training = module.training
        module.eval()
        for batch in trainer.datamodule.test_dataloader():
            batch = {k: v.to(module.device) for k, v in batch.items()}
            correct += int((module(batch).argmax(1) == batch["label"]).sum())
            total += len(batch["label"])
        module.train(was_training)
        self.accuracies.append(correct / total)


def optimized_value(
    cfg: DictConfig, trainer: pl.Trainer, checkpoint, best_score: float | None, datamodule
) -> float | None:
    """The sweep's objective at the chosen (best-validation) epoch. val/acc_lift is val/acc minus
    the validation split's majority-class share, a constant within a run: the checkpoint that
    tracks val/acc picks the same epoch, and the lift follows from its score."""
    metric = cfg.optimized_metric
    if checkpoint is not None and best_score is not None:
        if checkpoint.monitor == metric:
            return best_score
        if checkpoint.monitor == "val/acc" and metric == "val/acc_lift":
            val_labels = datamodule.labels[datamodule.split.val]
            return best_score - float(np.bincount(val_labels).max() / len(val_labels))
    value = trainer.callback_metrics.get(metric)
    return None if value is None else float(value)


def summarize(cfg: DictConfig, datamodule, test_out: dict) -> dict:
    """The run's test numbers, with trading days as the independent units (stats module)."""
    probs, labels = test_out["probs"], test_out["label"]
    majority = datamodule.majority_class
    days = stats.trading_days(datamodule.frame["created_at"].to_numpy()[test_out["index"]])
    summary = stats.evaluate_predictions(labels, probs, days, majority, seed=int(cfg.seed))
    metrics = {
        "test_accuracy": summary["accuracy"],
        "test_accuracy_ci_low": summary["ci_low"],
        "test_accuracy_ci_high": summary["ci_high"],
        "test_accuracy_wilson_low": summary["wilson_low"],
        "test_accuracy_wilson_high": summary["wilson_high"],
        "n_test_days": summary["n_days"],
        "majority_class": majority,
        "majority_accuracy": summary["majority_accuracy"],
        "lift_vs_majority": summary["lift"],
        "lift_vs_majority_ci_low": summary["lift_ci_low"],
        "lift_vs_majority_ci_high": summary["lift_ci_high"],
        "p_value_vs_majority": summary["p_vs_majority"],
        "p_value_vs_majority_test": "one-sided paired sign-flip permutation over trading days",
        "test_auroc_ci_low": summary["auroc_ci_low"],
        "test_auroc_ci_high": summary["auroc_ci_high"],
        "test_log_loss": summary["log_loss"],
        "test_log_loss_ci_low": summary["log_loss_ci_low"],
        "test_log_loss_ci_high": summary["log_loss_ci_high"],
        "predicted_share_top_class": summary["predicted_share_top_class"],
        "verdict": stats.verdict(summary, model_name(cfg)),
    }
    for key in ("f1", "auroc", "mcc", "loss"):
        value = test_out["metrics"].get(f"test/{key}")
        metrics[f"test_{key}"] = None if value is None or np.isnan(value) else float(value)
    # JSON has no NaN: an undefined interval (one day, one class) is null.
    return {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in metrics.items()}


def save_predictions(output_dir: Path, datamodule, test_out: dict) -> None:
    """Per-sample test predictions: the reports pair them across models for McNemar's test."""
    frame = datamodule.frame.iloc[test_out["index"]]
    table = pd.DataFrame(
        {
            "id": frame["id"].to_numpy(),
            "created_at": frame["created_at"].to_numpy(),
            "label": test_out["label"],
            "predicted": test_out["probs"].argmax(axis=1),
        }
    )
    for c in range(test_out["probs"].shape[1]):
        table[f"prob_{c}"] = test_out["probs"][:, c]
    with atomic_path(output_dir / "predictions_test.csv") as tmp:
        table.sort_values(["created_at", "id"]).to_csv(tmp, index=False)


def log_to_tensorboard(logger, cfg: DictConfig, datamodule, test_out: dict, info: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    writer = logger.experiment
    flat = pd.json_normalize(OmegaConf.to_container(cfg, resolve=True), sep=".").iloc[0].to_dict()
    params = {
        k: (v if isinstance(v, int | float | str | bool) else str(v))
        for k, v in flat.items()
        if not k.startswith(("hydra", "paths", "callbacks", "logger"))
    }
    final = {f"hp/{k.split('/')[-1]}": v for k, v in test_out["metrics"].items()}
    if info.get("val_acc_best") is not None:
        final["hp/val_acc_best"] = info["val_acc_best"]
    logger.log_hyperparams(params, metrics=final)

    labels, predicted = test_out["label"], test_out["probs"].argmax(axis=1)
    k = test_out["probs"].shape[1]
    matrix = np.zeros((k, k), dtype=int)
    np.add.at(matrix, (labels, predicted), 1)
    fig, ax = plt.subplots(figsize=(3.5, 3))
    ax.imshow(matrix, cmap="Blues")
    names = ["down", "up", "flat"][:k]
    ax.set_xticks(range(k), names)
    ax.set_yticks(range(k), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for (i, j), n in np.ndenumerate(matrix):
        ax.text(j, i, str(n), ha="center", va="center")
    fig.tight_layout()
    writer.add_figure("test/confusion_matrix", fig)
    plt.close(fig)
    table = "\n".join(f"| {k} | {v} |" for k, v in datamodule.report.to_dict().items())
    writer.add_text("data_report", "| count | value |\n|---|---|\n" + table)
    writer.add_text("embedding_coverage", str(datamodule.coverage))
    writer.flush()


def model_name(cfg: DictConfig) -> str:
    return str(cfg.model.get("name") or cfg.model.get("baseline") or "lstm")


def print_summary(metrics: dict, output_dir: Path) -> None:
    from rich.console import Console

    console = Console()
    console.print(f"\n[bold]Run folder[/bold]: {output_dir}")
    console.print(f"  metrics.json: {output_dir / 'metrics.json'}")
    console.print(f"  TensorBoard:  tensorboard --logdir {output_dir}")
    if metrics.get("test_accuracy") is None:
        console.print(
            f"  {metrics['optimized_metric']} = {metrics.get('optimized_value')} (test not evaluated)"
        )
        return
    console.print(
        f"[bold]Test accuracy[/bold] {metrics['test_accuracy']:.3f} "
        f"(95% day-block CI {fmt(metrics['test_accuracy_ci_low'])}-"
        f"{fmt(metrics['test_accuracy_ci_high'])}, n={metrics['n_test']} tweets on "
        f"{metrics['n_test_days']} trading days); epoch chosen on validation: "
        f"{metrics.get('best_epoch')}"
    )
    console.print(f"[bold]Verdict[/bold]: {metrics['verdict']}")


def fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


# An absolute path: run as a console script, Hydra would resolve a relative one as a package.
CONFIG_DIR = str(Path(__file__).resolve().parents[1] / "conf")


@hydra.main(config_path=CONFIG_DIR, config_name="train")
def main(cfg: DictConfig) -> float | None:
    metrics = train(cfg)
    return metrics.get("optimized_value")


if __name__ == "__main__":
    main()

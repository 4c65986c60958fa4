"""What a finished run leaves behind, written in this order: the test numbers summarized with
trading days as the independent units, per-sample test predictions (`predictions_test.csv`), the
TensorBoard extras (HParams, confusion matrix, data report), `metrics.json` (atomically and last:
its presence marks a finished run), and the console summary.

    metrics = record.record(cfg, run, datamodule, test_out, fit_info, started)
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from omegaconf import DictConfig, OmegaConf

from lstm_tweets import cells, objectives

if TYPE_CHECKING:
    from lstm_tweets.cells import RunSetup


def record(
    cfg: DictConfig,
    run: RunSetup,
    datamodule,
    test_out: dict | None,
    fit_info: dict,
    started: float,
) -> dict:
    """Write everything a finished run leaves behind and return its metrics (as in metrics.json).
    `test_out` is None when test did not run (an Optuna trial); `started` is the run's time.time()."""
    from lstm_tweets.data.io import write_json_atomic

    output_dir = Path(cfg.paths.output_dir)
    metrics = assemble(cfg, datamodule, test_out, fit_info, started)
    if run.logger:
        log_to_tensorboard(run, cfg, datamodule, test_out, metrics, started)
    if test_out is not None:
        save_predictions(output_dir, datamodule, test_out)
    write_json_atomic(
        output_dir / "metrics.json", metrics
    )  # last: its presence marks a finished run
    print_summary(metrics, output_dir)
    return metrics


def assemble(
    cfg: DictConfig, datamodule, test_out: dict | None, fit_info: dict, started: float
) -> dict:
    """metrics.json's content: what fitting found, the test summary (when test ran) and what
    the run was (seed, interval, target, model, study, split sizes, data report, coverage)."""
    metrics = (
        {**fit_info, **summarize(cfg, datamodule, test_out)}
        if test_out is not None
        else dict(fit_info)
    )
    metrics.update(
        seed=int(cfg.seed),
        interval=int(datamodule.interval),
        target=datamodule.target,
        window_start=datamodule.window_start,
        model=model_name(cfg),
        study=cfg.get("study"),
        n_train=len(datamodule.split.train),
        n_val=len(datamodule.split.val),
        n_test=len(datamodule.split.test),
        data_report=datamodule.report.to_dict(),
        embedding_coverage=datamodule.coverage,
        wall_time_s=round(time.time() - started, 2),
        # What the study report reads from this file alone: the run's cell (its swept keys and
        # values) and the data it saw (for the report's title).
        cell=cells.run_cell(cfg),
        data_config={
            key: OmegaConf.select(cfg, f"data.{key}", default=None)
            for key in ("source", "path", "prices_path", "shuffle_train_labels")
        },
    )
    return metrics


def model_name(cfg: DictConfig) -> str:
    return str(cfg.model.get("name") or cfg.model.get("baseline") or "lstm")


def summarize(cfg: DictConfig, datamodule, test_out: dict) -> dict:
    """The run's test numbers, with trading days as the independent units (stats module)."""
    import numpy as np

    from lstm_tweets import stats

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
    import pandas as pd

    from lstm_tweets.data.io import atomic_path

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


def final_metrics(metrics: dict, test_out: dict | None) -> dict[str, float | None]:
    """What the HParams dashboard shows for a run, under names that say what they are: the test
    numbers (`test/...`, when test ran) and the validation score at the chosen epoch."""
    final: dict[str, float | None] = {}
    if test_out is not None:
        final.update(
            {
                "test/acc": metrics.get("test_accuracy"),
                "test/acc_ci_low": metrics.get("test_accuracy_ci_low"),
                "test/acc_ci_high": metrics.get("test_accuracy_ci_high"),
                "test/acc_lift": test_out["metrics"].get("test/acc_lift"),
                "test/lift_vs_majority": metrics.get("lift_vs_majority"),
                "test/p_vs_majority": metrics.get("p_value_vs_majority"),
                **{f"test/{k}": metrics.get(f"test_{k}") for k in ("auroc", "f1", "mcc", "loss")},
            }
        )
    val = metrics.get("val_metrics") or {}
    final["val/acc_best"] = metrics.get("val_acc_best", val.get("val/acc"))
    names = objectives.names(metrics.get("optimized_metric"))
    value = metrics.get("optimized_value")
    values = value if isinstance(value, list) else [value]
    for name, value in zip(names, values, strict=False):
        final[f"{name}_best" if name.startswith("val/") else name] = value
    return {k: (None if v is None else float(v)) for k, v in final.items()}


def log_to_tensorboard(
    run: RunSetup, cfg: DictConfig, datamodule, test_out, metrics: dict, started: float
) -> None:
    """HParams (tensorboard_log.write_hparams) and, when test ran, the confusion matrix and the
    data report."""
    from lstm_tweets.tensorboard_log import write_hparams

    logger = run.logger
    logged = set(test_out["metrics"]) if test_out is not None and test_out.get("logged") else set()
    write_hparams(
        logger,
        cells.hparams(cfg, first=run.cell_keys),
        set(run.cell_keys),
        final_metrics(metrics, test_out),
        run.group_name,
        started,
        already_logged=logged,
    )
    if test_out is None:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    writer = logger.experiment
    labels, predicted = test_out["label"], test_out["probs"].argmax(axis=1)
    k = test_out["probs"].shape[1]
    matrix = np.zeros((k, k), dtype=int)
    np.add.at(matrix, (labels, predicted), 1)
    fig, ax = plt.subplots(figsize=(3.5, 3))
    ax.imshow(matrix, cmap="Blues")
    names = datamodule.class_names[:k]
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

"""Study reports: one table, the missing runs and a few figures per study, built from each Hydra
job's `metrics.json`, `predictions_test.csv` and TensorBoard events (never logs); the study's
design and cells come from `studies.py`, what it compares from its `report:` block.

    lstm-tweets-report                       # every study under outputs/multiruns/
    lstm-tweets-report comparison ablation   # these studies, latest sweep of each
    lstm-tweets-report comparison --all      # pool every sweep of the study
    lstm-tweets-report --sweep-dir outputs/multiruns/comparison/2026-01-01_12-00-00

Writes `outputs/reports/<study>/report.md`, `summary.csv` and PNG figures.

Every expected cell x seed that has no finished job is listed as missing instead of failing the
report.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from lstm_tweets import root_dir, stats
from lstm_tweets.studies import (
    Design,
    Run,
    all_cells,
    cell_label,
    cell_runs,
    describe_data,
    is_optuna_study,
    is_sweep_dir,
    latest_finished,
    missing_runs,
    read_study,
    run_model_name,
    study_declaration,
    sweep_dirs,
)

CHANCE_TAG = "val/majority_share"  # the best constant guess on validation, per epoch
NULL_VALUE_COLUMNS = {
    "real_seeds",
    "real_accuracy",
    "permutations",
    "null_mean",
    "null_q95",
    "null_max",
    "permutation_p",
    "null_accuracies",
}
CURVES = {
    "accuracy": ("train/acc", "val/acc", "test/acc"),
    "loss": ("train/loss_epoch", "val/loss", "test/loss"),
}


# ---- the table ------------------------------------------------------------------------------
# A cell's seeds share ONE test set: their errors fall on the same tweets, so pooling their
# counts would pretend to have n_seeds times the data. A cell is scored once, as the seed
# ensemble (mean class probability over seeds) on the true n_test, with trading days as the
# independent units (stats.evaluate_predictions); the seeds' own accuracies are reported beside
# it as the model's instability, not as precision.


def read_predictions(run: Run) -> pd.DataFrame:
    frame = pd.read_csv(run.job_dir / "predictions_test.csv", dtype={"id": str})
    frame.index = pd.Index(frame["id"].to_numpy(), name=None)  # align seeds by tweet id
    return frame


def prob_columns(frame: pd.DataFrame) -> list[str]:
    return sorted((c for c in frame.columns if c.startswith("prob_")), key=lambda c: int(c[5:]))


def seed_ensemble(runs: list[Run]) -> pd.DataFrame:
    """The cell's test tweets (those every seed scored: normally all of them) with the mean class
    probability over seeds and the ensemble's predicted class."""
    frames = [read_predictions(run) for run in runs]
    common = frames[0].index
    for frame in frames[1:]:
        common = common.intersection(frame.index, sort=False)
    frames = [f.loc[common] for f in frames]
    base = frames[0][["id", "created_at", "label"]].copy()
    for run, frame in zip(runs[1:], frames[1:], strict=True):
        if not (frame["label"].to_numpy() == base["label"].to_numpy()).all():
            raise ValueError(
                f"{runs[0].job_dir} and {run.job_dir}: the seeds label the same tweets "
                "differently; they are not one cell"
            )
    columns = prob_columns(frames[0])
    mean = np.mean([f[columns].to_numpy(float) for f in frames], axis=0)
    base[columns] = mean
    base["predicted"] = mean.argmax(axis=1)
    return base.sort_values(["created_at", "id"])


def evaluate_cell(
    ensemble: pd.DataFrame, majority_class, baselines: dict[str, pd.Series], seed: int = 0
) -> dict:
    """stats.evaluate_predictions on an ensemble frame; baselines are predicted classes by id."""
    days = stats.trading_days(ensemble["created_at"].to_numpy())
    others = {}
    for name, predicted in baselines.items():
        aligned = predicted.reindex(ensemble["id"])
        if aligned.notna().all():
            others[name] = aligned.to_numpy(int)
    return stats.evaluate_predictions(
        ensemble["label"].to_numpy(int),
        ensemble[prob_columns(ensemble)].to_numpy(float),
        days,
        majority_class,
        baseline_predictions=others,
        seed=seed,
    )


def cell_ensemble(runs: list[Run]) -> pd.DataFrame:
    """The seed ensemble with each tweet's train majority class (one per cell)."""
    majority = {run.metrics["majority_class"] for run in runs}
    if len(majority) > 1:
        raise ValueError(f"the seeds of one cell disagree on the train majority class: {majority}")
    return seed_ensemble(runs).assign(majority=majority.pop())


def summarize_cell(
    runs: list[Run], ensemble: pd.DataFrame, baselines: dict[str, pd.Series]
) -> dict:
    """One row for the cell, from its runs and their ensemble predictions."""
    metrics = [run.metrics for run in runs]
    result = evaluate_cell(ensemble, ensemble["majority"].to_numpy(int), baselines)
    spread = stats.seed_spread([m["test_accuracy"] for m in metrics])
    row = {
        "model": run_model_name(runs[0]),
        "interval": int(metrics[0]["interval"]),
        "n_test": result["n"],
        "n_days": result["n_days"],
        "n_seeds": len(runs),
        "accuracy": result["accuracy"],
        "ci_low": result["ci_low"],
        "ci_high": result["ci_high"],
        "wilson_low": result["wilson_low"],
        "wilson_high": result["wilson_high"],
        "seed_mean": spread["mean"],
        "seed_std": spread["std"],
        "seed_min": spread["min"],
        "seed_max": spread["max"],
        "majority_accuracy": result["majority_accuracy"],
        "lift": result["lift"],
        "lift_ci_low": result["lift_ci_low"],
        "lift_ci_high": result["lift_ci_high"],
        "p_vs_majority": result["p_vs_majority"],
        "p_vs_momentum": result.get("p_vs_momentum", math.nan),
        "lift_vs_momentum": result.get("lift_vs_momentum", math.nan),
        "auroc": result["auroc"],
        "auroc_ci_low": result["auroc_ci_low"],
        "auroc_ci_high": result["auroc_ci_high"],
        "log_loss": result["log_loss"],
        "predicted_share_top_class": result["predicted_share_top_class"],
        "best_epoch_by_seed": ", ".join(f"{m['seed']}:{m.get('best_epoch')}" for m in metrics),
    }
    max_over_epochs = [
        m["test_accuracy_max_over_epochs"]
        for m in metrics
        if m.get("test_accuracy_max_over_epochs") is not None
    ]
    if max_over_epochs:
        spread = stats.seed_spread(max_over_epochs)
        row.update(acc_max_over_epochs_mean=spread["mean"], acc_max_over_epochs_std=spread["std"])
    return row


def model_axis(design: Design) -> str | None:
    return "model" if "model" in design.axes else None


def baseline_cell(design: Design, cell: tuple[str, ...], baseline: str) -> tuple[str, ...] | None:
    """The same cell with the model axis set to a baseline (None when the study has no such axis)."""
    if model_axis(design) is None:
        return None
    keys = list(design.axes)
    return tuple(baseline if key == "model" else v for key, v in zip(keys, cell, strict=True))


def cell_table(
    design: Design, runs: list[Run], declared: dict | None = None
) -> tuple[pd.DataFrame, dict[tuple, pd.DataFrame]]:
    """One row per cell (model x settings), and each finished cell's ensemble predictions;
    `declared` (the study's `report:` block) names the ablation, if any."""
    by_cell = cell_runs(design, runs)
    ensembles = {cell: cell_ensemble(done) for cell, done in by_cell.items() if done}
    momentum = {
        cell: ensembles[cell].set_index("id")["predicted"]
        for cell, done in by_cell.items()
        if done and run_model_name(done[0]) == "momentum"
    }
    rows = []
    for cell, done in by_cell.items():
        row = {
            **dict(zip(design.axes, cell, strict=True)),
            "seeds_found": len(done),
            "seeds_expected": len(design.seeds_for(cell)),
        }
        if done:
            reference = momentum.get(baseline_cell(design, cell, "momentum"))
            is_momentum = run_model_name(done[0]) == "momentum"
            baselines = {"momentum": reference} if reference is not None and not is_momentum else {}
            summary = summarize_cell(done, ensembles[cell], baselines)
            row = {**summary, **row} if "model" not in design.axes else {**row, **summary}
        rows.append(row)
    table = pd.DataFrame(rows)
    comparisons = mcnemar_vs_full(design, ensembles, (declared or {}).get("ablation"))
    if comparisons:
        table = table.join(pd.DataFrame([comparisons.get(cell, {}) for cell in by_cell]))
    return table, ensembles


def tested_against_majority(table: pd.DataFrame, null_key: str | None = None) -> pd.Series:
    """The rows in the study's family of tests against majority: every finished cell but the
    majority baseline itself (which is the null by construction) and, in a study with a
    permutation null (`null_key`), its permuted-label cells."""
    if "p_vs_majority" not in table:
        return pd.Series(False, index=table.index)
    rows = table["p_vs_majority"].notna() & (table.get("model") != "majority")
    if null_key and null_key in table:  # permuted-label runs are draws of the null, not hypotheses
        rows &= table[null_key].astype(str).str.lower() != "true"
    return rows


def add_holm(table: pd.DataFrame, column: str, rows: pd.Series) -> pd.DataFrame:
    table[f"{column}_holm"] = np.nan
    if rows.any():
        table.loc[rows, f"{column}_holm"] = stats.holm_correction(table.loc[rows, column].tolist())
    return table


def ablated_axes(design: Design, ablation: dict | None) -> list[int]:
    """The positions of the study's ablation switches (`report.ablation.axes`) among its axes."""
    keys = set((ablation or {}).get("axes") or [])
    return [i for i, key in enumerate(design.axes) if key in keys]


def is_reference(design: Design, cell: tuple[str, ...], conditions) -> bool:
    """Whether a cell is the ablation's reference (the full model): every condition
    (`key=value` or `key!=value`) on an axis of the study holds; one on another key is moot."""
    values = {key: value.lower() for key, value in zip(design.axes, cell, strict=True)}
    for condition in conditions or []:
        negated = "!=" in condition
        key, value = (part.strip() for part in condition.split("!=" if negated else "=", 1))
        if key in values and (values[key] == value.lower()) == negated:
            return False
    return True


def mcnemar_vs_full(
    design: Design, ensembles: dict[tuple, pd.DataFrame], ablation: dict | None
) -> dict[tuple, dict]:
    """McNemar's exact test of each ablation variant's seed ensemble against the reference (full
    model) ensemble at the same other settings, paired by tweet id: one test on the true n, never
    the seeds' predictions stacked. Holm-corrected across the variants. The ablation (its axes
    and reference cell) is the study's `report.ablation` block."""
    ablated = ablated_axes(design, ablation)
    if not ablated:
        return {}

    def context(cell):
        return tuple(v for i, v in enumerate(cell) if i not in ablated)

    full = {
        context(cell): cell
        for cell in ensembles
        if is_reference(design, cell, ablation.get("reference"))
    }
    results = {}
    for cell, ensemble in ensembles.items():
        reference = full.get(context(cell))
        if reference is None:
            continue
        if reference == cell:
            results[cell] = {"mcnemar_vs": "(reference)"}
            continue
        both = ensembles[reference].merge(ensemble, on="id", suffixes=("_full", ""))
        test = stats.mcnemar_test(
            (both.label_full == both.predicted_full).to_numpy(),
            (both.label == both.predicted).to_numpy(),
        )
        results[cell] = {
            "mcnemar_vs": cell_label(design, reference),
            "mcnemar_pairs": len(both),
            "mcnemar_b": test["b"],
            "mcnemar_c": test["c"],
            "mcnemar_p": test["p_value"],
        }
    tested = [r for r in results.values() if "mcnemar_p" in r]
    for result, adjusted in zip(
        tested, stats.holm_correction([r["mcnemar_p"] for r in tested]), strict=True
    ):
        result["mcnemar_p_holm"] = adjusted
    return results


def pooled_over_folds(
    design: Design, ensembles: dict[tuple, pd.DataFrame], fold_key: str | None
) -> pd.DataFrame | None:
    """Walk-forward (`report.pooled_over`: the fold key): per model, the folds' test quarters
    (distinct tweets, distinct periods) joined into one out-of-sample set, each tweet scored
    against its own fold's train majority class, and one paired day-level test: the study's
    primary test."""
    if not fold_key or fold_key not in design.axes or not ensembles:
        return None
    fold_at = list(design.axes).index(fold_key)
    others = [key for key in design.axes if key != fold_key]
    groups: dict[tuple, list[tuple]] = {}
    for cell in ensembles:
        groups.setdefault(tuple(v for i, v in enumerate(cell) if i != fold_at), []).append(cell)
    momentum_pooled = momentum_key = None
    if "model" in others:
        momentum_key = next((k for k in groups if k[others.index("model")] == "momentum"), None)
        if momentum_key is not None:
            momentum_pooled = pd.concat(
                [ensembles[c].set_index("id")["predicted"] for c in groups[momentum_key]]
            )
    rows = []
    for key, cells in groups.items():
        frame = pd.concat([ensembles[c] for c in cells]).sort_values(["created_at", "id"])
        is_momentum = momentum_key is not None and key == momentum_key
        baselines = {"momentum": momentum_pooled} if momentum_pooled is not None else {}
        baselines = {} if is_momentum else baselines
        result = evaluate_cell(frame, frame["majority"].to_numpy(int), baselines)
        rows.append(
            {
                **dict(zip(others, key, strict=True)),
                "folds": len(cells),
                "n": result["n"],
                "n_days": result["n_days"],
                "accuracy": result["accuracy"],
                "ci_low": result["ci_low"],
                "ci_high": result["ci_high"],
                "majority": result["majority_accuracy"],
                "lift": result["lift"],
                "lift_ci_low": result["lift_ci_low"],
                "lift_ci_high": result["lift_ci_high"],
                "p_vs_majority": result["p_vs_majority"],
                "p_vs_momentum": result.get("p_vs_momentum", math.nan),
            }
        )
    pooled = pd.DataFrame(rows)
    return add_holm(pooled, "p_vs_majority", tested_against_majority(pooled))


def permutation_null(
    design: Design, by_cell: dict[tuple, list[Run]], null_key: str | None
) -> pd.DataFrame | None:
    """Studies that declare `report.permutation_null` (e.g. `data.shuffle_train_labels`): each
    shuffled run (train labels permuted, one permutation per seed) is a draw from the no-signal
    null of the same model and cell; the real-label model's test accuracy (its seed mean) is
    placed in that distribution: permutation p = (1 + #null >= real) / (1 + K)."""
    if not null_key or null_key not in design.axes:
        return None
    at = list(design.axes).index(null_key)
    groups: dict[tuple, dict[str, list[Run]]] = {}
    for cell, done in by_cell.items():
        key = tuple(v for i, v in enumerate(cell) if i != at)
        groups.setdefault(key, {}).setdefault(cell[at].lower(), []).extend(done)
    others = [key for key in design.axes if key != null_key]
    rows = []
    for key, parts in groups.items():
        real, null = parts.get("false", []), parts.get("true", [])
        if not real or not null:
            continue
        observed = float(np.mean([r.metrics["test_accuracy"] for r in real]))
        null_accuracy = [r.metrics["test_accuracy"] for r in null]
        rows.append(
            {
                **dict(zip(others, key, strict=True)),
                "real_seeds": len(real),
                "real_accuracy": observed,
                "permutations": len(null),
                "null_mean": float(np.mean(null_accuracy)),
                "null_q95": float(np.quantile(null_accuracy, 0.95)),
                "null_max": float(np.max(null_accuracy)),
                "permutation_p": stats.permutation_p_value(observed, null_accuracy),
                "null_accuracies": null_accuracy,
            }
        )
    return pd.DataFrame(rows) if rows else None


# ---- figures --------------------------------------------------------------------------------


def ci_errors(table: pd.DataFrame) -> list[np.ndarray]:
    return [
        (table.accuracy - table.ci_low).clip(lower=0).to_numpy(),
        (table.ci_high - table.accuracy).clip(lower=0).to_numpy(),
    ]


def plot_accuracy_vs_x(
    table: pd.DataFrame, design: Design, path: Path, title: str, x_key: str, x_label: str
) -> None:
    """One series per combination of the other swept settings (e.g. per model), offset along x so
    that error bars do not overlap; the majority baseline as a grey band-free line drawn on top.
    x is the study's `report.x` key (numeric)."""
    done = table[table.seeds_found > 0].assign(x=lambda t: t[x_key].astype(float))
    others = [key for key in design.axes if key != x_key]
    groups = list(done.groupby(others, sort=False)) if others else [((), done)]
    fig = Figure(figsize=(8, 4.4))
    ax = fig.subplots()
    width = 0.8 * min(np.diff(np.unique(done.x)).min(initial=5), 5)
    for i, (name, group) in enumerate(groups):
        group = group.sort_values("x")
        name = name if isinstance(name, tuple) else (name,)
        label = ", ".join(f"{k}={v}" for k, v in zip(others, name, strict=True)) or "LSTM"
        if group.model.iloc[0] == "majority":
            continue  # the majority baseline is the dashed line below
        offset = (i - (len(groups) - 1) / 2) * width / max(len(groups), 1)
        ax.errorbar(
            group.x + offset,
            group.accuracy,
            yerr=ci_errors(group),
            marker="o",
            capsize=3,
            label=f"{label} (seed ensemble)",
        )
    majority = done.groupby("x").majority_accuracy.mean()
    ax.plot(
        majority.index,
        majority.to_numpy(),
        "k--",
        zorder=5,
        label="majority baseline (train class)",
    )
    ax.set_xlabel(x_label)
    ax.set_ylabel("test accuracy")
    ax.set_title(f"{title}\n(error bars: 95% trading-day block bootstrap)", fontsize="medium")
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=120, bbox_inches="tight")


def plot_ablation(table: pd.DataFrame, design: Design, path: Path, title: str) -> None:
    done = table[table.seeds_found > 0].reset_index(drop=True)
    labels = [
        "\n".join(f"{k.split('.')[-1]}={row[k]}" for k in design.axes) for _, row in done.iterrows()
    ]
    fig = Figure(figsize=(max(5, 1.8 * len(done)), 4.2))
    ax = fig.subplots()
    ax.bar(
        range(len(done)),
        done.accuracy,
        yerr=ci_errors(done),
        capsize=4,
        color="tab:blue",
        alpha=0.8,
    )
    ax.axhline(done.majority_accuracy.mean(), color="k", linestyle="--", label="majority baseline")
    ax.set_xticks(range(len(done)), labels, fontsize="small")
    ax.set_ylabel("test accuracy (seed ensemble)")
    ax.set_ylim(0, 1)
    ax.set_title(f"{title}\n(error bars: 95% trading-day block bootstrap)", fontsize="medium")
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=120, bbox_inches="tight")


def plot_permutation_null(null: pd.DataFrame, path: Path, title: str) -> None:
    """Per cell: the null accuracies as dots and the real-label model as a red bar."""
    labels = [
        ", ".join(f"{k}={row[k]}" for k in null.columns if k not in NULL_VALUE_COLUMNS)
        for _, row in null.iterrows()
    ]
    fig = Figure(figsize=(8, 0.6 * len(null) + 1.6))
    ax = fig.subplots()
    for i, (_, row) in enumerate(null.iterrows()):
        ax.plot(row.null_accuracies, [i] * len(row.null_accuracies), "o", color="0.6", ms=4)
        ax.plot([row.real_accuracy] * 2, [i - 0.35, i + 0.35], color="tab:red", lw=2.5)
    ax.plot([], [], "o", color="0.6", label="trained on permuted train labels")
    ax.plot([], [], color="tab:red", lw=2.5, label="trained on the real labels")
    ax.set_yticks(range(len(null)), labels, fontsize="small")
    ax.set_xlabel("test accuracy")
    ax.set_title(f"{title}: label-permutation null", fontsize="medium")
    ax.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120, bbox_inches="tight")


def read_curves(tensorboard_dir: Path) -> pd.DataFrame:
    """Per-epoch scalars (columns tag, epoch, value) from a run's TensorBoard event files."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    # A run's events live in tensorboard/<cell>/ (older runs: tensorboard/ itself).
    folders = sorted({p.parent for p in Path(tensorboard_dir).rglob("events.out.tfevents.*")})
    if not folders:
        return pd.DataFrame(columns=["tag", "epoch", "value"])
    events = EventAccumulator(str(folders[0]), size_guidance={"scalars": 0})
    events.Reload()
    tags = set(events.Tags()["scalars"])
    # The epoch number is logged at every step that logs: step -> epoch (older runs: "epoch").
    epoch_tag = "train/epoch" if "train/epoch" in tags else "epoch"
    epoch_at = (
        {e.step: int(e.value) for e in events.Scalars(epoch_tag)} if epoch_tag in tags else {}
    )
    rows = []
    for tag in (t for group in CURVES.values() for t in (*group, CHANCE_TAG) if t in tags):
        scalars = events.Scalars(tag)
        if tag.startswith("test/"):
            # The one final test is logged at step 0 by its own trainer: not a curve.
            scalars = [e for e in scalars if e.step > 0]
        rows += [
            {"tag": tag, "epoch": epoch_at.get(e.step, i), "value": e.value}
            for i, e in enumerate(scalars)
        ]
    return pd.DataFrame(rows, columns=["tag", "epoch", "value"]).drop_duplicates(
        ["tag", "epoch"], keep="last"
    )


def plot_curves(design: Design, runs: list[Run], path: Path, title: str = "") -> bool:
    """Per cell, one small panel: train and validation accuracy per epoch (mean over seeds, the
    validation spread over seeds as a band), the validation split's majority share as the chance
    line, and each seed's chosen (best-validation) epoch marked. False when no run has curves
    (baselines have none)."""
    finished = latest_finished(runs)
    panels = {}
    for cell in all_cells(design, runs):
        done = [r for (c, _), r in finished.items() if c == cell]
        frames = [read_curves(r.job_dir / "tensorboard") for r in done]
        frames = [(r, f) for r, f in zip(done, frames, strict=True) if not f.empty]
        if frames and any("val/acc" in set(f.tag) for _, f in frames):
            panels[cell] = frames
    if not panels:
        return False
    columns = min(4, len(panels))
    rows = -(-len(panels) // columns)
    fig = Figure(figsize=(3.3 * columns, 2.6 * rows + 0.6))
    axes = fig.subplots(rows, columns, squeeze=False, sharey=True)
    for ax, (cell, frames) in zip(axes.flat, panels.items(), strict=False):
        by_tag = pd.concat(f for _, f in frames).groupby(["tag", "epoch"]).value
        mean, low, high = by_tag.mean(), by_tag.min(), by_tag.max()
        tags = set(mean.index.get_level_values("tag"))
        if "train/acc" in tags:
            ax.plot(mean["train/acc"].index, mean["train/acc"], color="tab:blue", label="train")
        val = mean["val/acc"]
        ax.plot(val.index, val, color="tab:orange", label="validation")
        if len(frames) > 1:
            ax.fill_between(
                val.index, low["val/acc"], high["val/acc"], color="tab:orange", alpha=0.25
            )
        if "val/majority_share" in tags:
            ax.axhline(
                float(mean["val/majority_share"].mean()),
                color="k",
                linestyle="--",
                lw=1,
                label="val majority share",
            )
        for run, _ in frames:
            epoch = (run.metrics or {}).get("best_epoch")
            if epoch is not None and epoch in val.index:
                ax.plot(epoch, val[epoch], "v", color="tab:red", ms=6)
        ax.set_title(f"{cell_label(design, cell)} ({len(frames)} seeds)", fontsize="small")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.tick_params(labelsize="small")
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    axes[0][0].plot([], [], "v", color="tab:red", label="chosen epoch (per seed)")
    axes[0][0].legend(fontsize="x-small", loc="lower right")
    for ax in axes[:, 0]:
        ax.set_ylabel("accuracy")
    for ax in axes[-1]:
        ax.set_xlabel("epoch")
    fig.suptitle(f"{title.replace(chr(10), ': ')}: accuracy per epoch (band: min-max over seeds)")
    fig.tight_layout()
    fig.savefig(path, dpi=100, bbox_inches="tight")
    return True


# ---- the report -----------------------------------------------------------------------------


def fmt(value, spec: str = ".3f") -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "—"
    return format(value, spec)


def markdown_rows(table: pd.DataFrame, design: Design) -> tuple[list[str], list[list[str]]]:
    shown_axes = list(design.axes)
    header = [
        *shown_axes,
        *([] if "model" in shown_axes else ["model"]),
        "seeds",
        "n_test (days)",
        "accuracy (seed ensemble) [95% day-block CI]",
        "seed mean ± std",
        "majority",
        "lift over majority [95% CI]",
        "p vs majority (Holm)",
        "p vs momentum",
        "rules out a lift above",
        "best epoch (seed:epoch)",
    ]
    max_over_epochs = "acc_max_over_epochs_mean" in table
    ablation = "mcnemar_vs" in table
    if max_over_epochs:
        header.append("test acc, max over epochs (mean ± std)")
    if ablation:
        header += ["McNemar vs full: b / c", "p (McNemar)", "p (Holm)"]
    rows = []
    for _, r in table.iterrows():
        row = [str(r[key]) for key in shown_axes]
        if "model" not in shown_axes:
            row.append(str(r["model"]) if pd.notna(r.get("model")) else "—")
        row.append(f"{r.seeds_found}/{r.seeds_expected}")
        if r.seeds_found:
            holm = r.get("p_vs_majority_holm")
            row += [
                f"{int(r.n_test)} ({int(r.n_days)})",
                f"{fmt(r.accuracy)} [{fmt(r.ci_low)}, {fmt(r.ci_high)}]",
                f"{fmt(r.seed_mean)} ± {fmt(r.seed_std)}",
                fmt(r.majority_accuracy),
                f"{points(r.lift)} [{points(r.lift_ci_low)}, {points(r.lift_ci_high)}]",
                f"{fmt(r.p_vs_majority, '.2g')} ({fmt(holm, '.2g')})",
                fmt(r.get("p_vs_momentum"), ".2g"),
                points(r.lift_ci_high) + " pts",
                r.best_epoch_by_seed,
            ]
            if r.predicted_share_top_class >= stats.NEAR_CONSTANT:
                row[len(shown_axes) + (0 if "model" in shown_axes else 1) + 2] += " (near-constant)"
        else:
            row += ["—"] * 9
        if max_over_epochs:
            mean = r.get("acc_max_over_epochs_mean")
            row.append("—" if pd.isna(mean) else f"{fmt(mean)} ± {fmt(r.acc_max_over_epochs_std)}")
        if ablation:
            if r.get("mcnemar_vs") == "(reference)":
                row += ["full model (reference)", "", ""]
            elif pd.notna(r.get("mcnemar_p")):
                row += [
                    f"{int(r.mcnemar_b)} / {int(r.mcnemar_c)}",
                    fmt(r.mcnemar_p, ".3g"),
                    fmt(r.mcnemar_p_holm, ".3g"),
                ]
            else:
                row += ["—", "—", "—"]
        rows.append(row)
    return header, rows


def points(value) -> str:
    """An accuracy difference in percentage points, signed."""
    return "—" if value is None else fmt(100 * value, "+.1f")


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def frame_table(frame: pd.DataFrame) -> str:
    """A data frame as a markdown table, floats to 3 significant digits."""
    rows = [[f"{v:.3g}" if isinstance(v, float) else str(v) for v in row] for row in frame.values]
    return markdown_table(list(frame.columns), rows)


HOW_TO_READ = (
    "How to read this table: the seeds of a cell share ONE test set, so a cell is scored once, as "
    "the seed ensemble (mean class probability over seeds) on its true n_test tweets; the seed "
    "mean ± std beside it is the model's instability, not its precision. Tweets of one trading day "
    "share the day's market, so the 95% intervals resample whole trading days (a day-block "
    "bootstrap, 2,000 resamples) and the p-values are paired tests on the same tweets that flip "
    "the sign of whole days (one-sided: the model is better). 'majority' is the train split's "
    "majority class scored on the same test tweets; the lift is the accuracy difference to it, in "
    "points. 'Rules out a lift above' is the upper end of the lift interval: the largest true "
    "lift over majority these data still allow. A model that predicts one class for 95% or more "
    "of the tweets is marked near-constant: its accuracy is the base rate's."
)


def write_markdown(
    study: str,
    sweeps: list[Path],
    design: Design,
    runs: list[Run],
    table: pd.DataFrame,
    extra: dict,
    figures: list[str],
    path: Path,
) -> None:
    axes = (
        " x ".join(f"`{k}` in {{{', '.join(v)}}}" for k, v in design.axes.items())
        or "no swept parameter"
    )
    n_expected = len(design.pairs())
    notes = extra["notes"]
    null_key = notes.get("permutation_null")
    family = int(tested_against_majority(table, null_key).sum())
    lines = [
        f"# Study `{study}`: {extra['data']}",
        "",
        f"Sweep folder{'s' if len(sweeps) > 1 else ''}: " + ", ".join(f"`{s}`" for s in sweeps),
        f"({len(runs)} jobs, {sum(r.finished for r in runs)} finished). Built from each job's "
        "metrics.json, predictions_test.csv and .hydra/ files by `lstm-tweets-report`.",
        "",
        "Reproduce:",
        "",
        "```bash",
        design.command,
        "```",
        "",
        f"Cells: {axes}; replicates: `seed` in {{{', '.join(design.seeds)}}} "
        f"({len(design.cells())} cell(s), {n_expected} runs expected).",
        "",
        "## Results",
        "",
        markdown_table(*markdown_rows(table, design)),
        "",
        f"Test family for Holm (the tests against majority): "
        f"{notes.get('test_family') or 'every model x cell of this study'}; {family} tests with "
        "results here (the majority baseline itself is not tested).",
        "",
        HOW_TO_READ,
    ]
    if "acc_max_over_epochs_mean" in table:
        lines += [
            "",
            "The max-over-epochs column is the best TEST accuracy over all epochs, the number the "
            "reference study reported. Choosing the epoch on test is optimistic: compare it with the "
            "accuracy at the best-validation epoch beside it.",
        ]
    if "mcnemar_vs" in table:
        ablation = notes.get("ablation") or {}
        reference = ablation.get("reference_label") or ", ".join(ablation.get("reference") or [])
        lines += [
            "",
            "## Ablation: McNemar's test against the full model",
            "",
            f"Each variant's seed ensemble is compared with the full model's ({reference}) at the "
            "same other settings, paired by tweet id on the true n_test (b = full right and "
            "variant wrong, c = full wrong and variant right), in one exact two-sided McNemar "
            "test. The p-values are Holm-corrected across the variants.",
        ]
        if ablation.get("note"):
            lines += ["", f"Note: {ablation['note']}"]
    pooled = extra.get("pooled")
    if pooled is not None:
        lines += [
            "",
            "## Pooled over walk-forward folds (the primary test)",
            "",
            "Each fold's test quarter is a different period, so the folds' test tweets join into one "
            "out-of-sample set over the whole span; each tweet is scored against its own fold's "
            "train majority class, and the paired day-level test runs on all of them. Holm across "
            f"the models ({int(tested_against_majority(pooled, null_key).sum())} tests).",
            "",
            frame_table(pooled),
        ]
    null = extra.get("null")
    if null is not None:
        shown = [c for c in null.columns if c != "null_accuracies"]
        lines += [
            "",
            "## Label-permutation null",
            "",
            "Each shuffled run was trained on train labels permuted at random (one permutation per "
            "seed; validation and test keep the truth): a draw of the model's test accuracy when "
            "the text carries no signal. The real-label model's accuracy (its seed mean) is placed "
            "in that distribution: permutation p = (1 + #null >= real) / (1 + K).",
            "",
            frame_table(null[shown]),
        ]
    missing = missing_runs(design, runs)
    lines += ["", "## Missing", ""] + (
        [f"- {m}" for m in missing] or ["None: every expected run finished."]
    )
    if figures:
        lines += ["", "## Figures", ""] + [f"![{name}]({name})" for name in figures]
    path.write_text("\n".join(lines) + "\n")


def build_report(study: str, sweeps: list[Path], out_dir: Path) -> Path:
    """Write report.md, summary.csv and the figures of one study; returns the report's path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    design, runs = read_study(sweeps)
    notes = study_declaration(sweeps)
    table, ensembles = cell_table(design, runs, notes)
    if not table.empty:
        null_key = notes.get("permutation_null")
        table = add_holm(table, "p_vs_majority", tested_against_majority(table, null_key))
    table.to_csv(out_dir / "summary.csv", index=False)
    extra = {
        "data": describe_data(runs),
        "notes": notes,
        "pooled": pooled_over_folds(design, ensembles, notes.get("pooled_over")),
        "null": permutation_null(design, cell_runs(design, runs), notes.get("permutation_null")),
    }
    if extra["pooled"] is not None:
        extra["pooled"].to_csv(out_dir / "pooled_over_folds.csv", index=False)
    if extra["null"] is not None:
        extra["null"].to_csv(out_dir / "permutation_null.csv", index=False)
    title = f"{study}\n{extra['data']}"
    figures = []
    has_results = bool((table.seeds_found > 0).any())
    x_key = notes.get("x")
    if has_results and x_key and x_key in design.axes:
        name = f"accuracy_vs_{x_key.split('.')[-1]}.png"
        x_label = notes.get("x_label") or x_key
        plot_accuracy_vs_x(table, design, out_dir / name, title, x_key, x_label)
        figures.append(name)
    if has_results and ablated_axes(design, notes.get("ablation")):
        plot_ablation(table, design, out_dir / "ablation.png", title)
        figures.append("ablation.png")
    if extra["null"] is not None:
        plot_permutation_null(extra["null"], out_dir / "permutation_null.png", title)
        figures.append("permutation_null.png")
    if plot_curves(design, runs, out_dir / "curves.png", title):
        figures.append("curves.png")
    write_markdown(study, sweeps, design, runs, table, extra, figures, out_dir / "report.md")
    return out_dir / "report.md"


def build_optuna_report(study: str, sweeps: list[Path], out_dir: Path) -> Path:
    """The Optuna sweep, simply: each sweep folder's optimization_results.yaml."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for sweep in sweeps:
        results_path = sweep / "optimization_results.yaml"
        results = (
            yaml.safe_load(results_path.read_text()) if results_path.is_file() else None
        ) or {}
        rows.append(
            {
                "sweep_dir": str(sweep),
                "study_name": results.get("study_name"),
                "n_complete": results.get("n_complete"),
                "n_failed": results.get("n_failed"),
                "best_value": results.get("best_value"),
                "best_trial": results.get("best_trial"),
                "best_params": json.dumps(results.get("best_params")),
            }
        )
    table = pd.DataFrame(rows)
    table.to_csv(out_dir / "summary.csv", index=False)
    shown = [[str(v) for v in row.values()] for row in rows]
    lines = [
        f"# Optuna sweep `{study}`",
        "",
        "The objective is VALIDATION accuracy; trials are not tested.",
        "A sweep folder without results is still running or crashed.",
        "",
        markdown_table(list(rows[0]) if rows else ["sweep_dir"], shown),
        "",
    ]
    lines += [
        "Run more trials of the same study (resumable): `make sweep` or "
        "`lstm-tweets-train hparams_search=optuna`.",
        "",
    ]
    (out_dir / "report.md").write_text("\n".join(lines))
    return out_dir / "report.md"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="lstm-tweets-report", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "studies", nargs="*", help="study names (default: every study under --multiruns)"
    )
    parser.add_argument(
        "--sweep-dir", type=Path, help="report this one sweep folder (multiruns/<study>/<time>)"
    )
    parser.add_argument(
        "--all",
        dest="pool_all",
        action="store_true",
        help="pool every sweep of a study, not the latest",
    )
    parser.add_argument(
        "--multiruns",
        type=Path,
        default=root_dir() / "outputs" / "multiruns",
        help="where the studies are",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=root_dir() / "outputs" / "reports",
        help="reports go to OUT/<study>/",
    )
    args = parser.parse_args(argv)

    if args.sweep_dir is not None:
        if len(args.studies) > 1:
            parser.error("--sweep-dir reports one study")
        study = (args.studies or [args.sweep_dir.resolve().parent.name])[0]
        if not is_sweep_dir(args.sweep_dir):
            parser.error(f"{args.sweep_dir} has no multirun.yaml: not a Hydra sweep folder")
        targets = {study: [args.sweep_dir]}
    else:
        names = args.studies or sorted(d.name for d in args.multiruns.glob("*") if d.is_dir())
        targets = {name: sweep_dirs(args.multiruns, name, args.pool_all) for name in names}
    status = 0
    for study, sweeps in targets.items():
        if not sweeps:
            print(f"{study}: no sweep folder under {args.multiruns / study}", file=sys.stderr)
            status = 1 if args.studies else status
            continue
        build = build_optuna_report if is_optuna_study(sweeps) else build_report
        print(f"{study}: {build(study, sweeps, args.out / study)}")
    if not targets:
        print(f"no studies under {args.multiruns}", file=sys.stderr)
    return status


if __name__ == "__main__":
    raise SystemExit(main())

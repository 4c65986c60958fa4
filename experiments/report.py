"""Study reports: one table, the missing runs and a few figures per study, built from each Hydra
job's `metrics.json`, `predictions_test.csv`, `.hydra/` files and TensorBoard events (never logs).

    python -m experiments.report                       # every study under outputs/multiruns/
    python -m experiments.report comparison ablation   # these studies, latest sweep of each
    python -m experiments.report comparison --all      # pool every sweep of the study
    python -m experiments.report --sweep-dir outputs/multiruns/comparison/2026-01-01_12-00-00

Writes `outputs/reports/<study>/report.md`, `summary.csv` and PNG figures.

A study is a Hydra multirun. Its cells are the swept parameters other than `seed` (read from the
sweep's `multirun.yaml`: `hydra.sweeper.params`, then the command line's sweeps, which win, as
in Hydra's basic sweeper); `seed` is the replicate axis. Every expected cell x seed that has no
finished job is listed as missing instead of failing the report.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from lstm_tweets import stats

# As conf/paths/default.yaml: the checkout, unless LSTM_TWEETS_ROOT moves it.
ROOT = Path(os.environ.get("LSTM_TWEETS_ROOT") or Path(__file__).resolve().parents[1])
OPTUNA_STUDY = "sweep"
INTERVAL_KEY = "data.interval"
FOLD_KEY = "data.fold"
SHUFFLE_KEY = "data.shuffle_train_labels"
CHANCE_TAG = "val/majority_share"  # the best constant guess on validation, per epoch
POOLING_GROUPS = ("model", "data", "embedding")
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
# Axes of the pretrained-embedding x count-features ablation.
ABLATION_KEYS = ("embedding", "embedding.kind", "model.concat_counts")
CURVES = {
    "accuracy": ("train/acc", "val/acc", "test/acc"),
    "loss": ("train/loss_epoch", "val/loss", "test/loss"),
}
LOOK_AHEAD_NOTE = (
    "Archive retweet/favorite counts are FINAL counts, collected after the fact, not the counts "
    "at tweet time: a model that uses them (`model.concat_counts=true`) sees the future. Read the "
    "counts-on cells as an upper bound, not as a tradeable signal."
)


@dataclass
class Design:
    """What a sweep asked for: the cell axes (swept keys other than seed) and the seeds."""

    axes: dict[str, list[str]]
    seeds: list[str]
    command: str
    fixed: dict[str, str] = field(
        default_factory=dict
    )  # other command-line overrides, key -> value
    expected: list[tuple[tuple[str, ...], str]] | None = None  # (cell, seed) pairs, when pooled

    def cells(self) -> list[tuple[str, ...]]:
        return list(dict.fromkeys(cell for cell, _ in self.pairs()))

    def pairs(self) -> list[tuple[tuple[str, ...], str]]:
        """Every expected (cell, seed): the product of the axes, or the union of pooled sweeps'."""
        if self.expected is not None:
            return self.expected
        return [
            (cell, seed) for cell in itertools.product(*self.axes.values()) for seed in self.seeds
        ]

    def seeds_for(self, cell: tuple[str, ...]) -> list[str]:
        return [seed for c, seed in self.pairs() if c == cell]


@dataclass
class Run:
    job_dir: Path
    cell: tuple[str, ...]  # the job's value of each Design.axes key, in order
    seed: str
    config: dict  # the job's .hydra/config.yaml
    metrics: dict | None  # None: no metrics.json (crashed or still running)

    @property
    def finished(self) -> bool:
        return self.metrics is not None and self.metrics.get("test_accuracy") is not None


# ---- reading the sweeps ---------------------------------------------------------------------


def sweep_dirs(multiruns: Path, study: str, pool_all: bool = False) -> list[Path]:
    """The study's sweep folders, oldest first: all of them, or those of the latest launch
    (the workers of one `make sweep` share its timestamp prefix). Basic sweeps hold a
    multirun.yaml; Optuna sweeps (study `sweep`) do not."""
    marker = "*" if study == OPTUNA_STUDY else "multirun.yaml"
    found = sorted(d for d in (multiruns / study).glob("*") if d.is_dir() and any(d.glob(marker)))
    if pool_all or not found:
        return found
    latest = found[-1].name[:19]  # %Y-%m-%d_%H-%M-%S
    return [d for d in found if d.name[:19] == latest]


def override_key(override) -> str:
    return override.get_key_element().lstrip("+~")


def read_design(sweep_dir: Path) -> Design:
    multirun = yaml.safe_load((sweep_dir / "multirun.yaml").read_text())
    hydra_cfg = multirun.get("hydra") or {}
    params = (hydra_cfg.get("sweeper") or {}).get("params") or {}
    task = list((hydra_cfg.get("overrides") or {}).get("task") or [])
    # The basic sweeper's rule: params first, then the command line; the last one of a key wins.
    merged = {}
    for override in OverridesParser.create().parse_overrides(
        [f"{k}={v}" for k, v in params.items()] + task
    ):
        merged[override_key(override)] = override
    axes = {
        key: list(o.sweep_string_iterator()) for key, o in merged.items() if o.is_sweep_override()
    }
    seed = axes.pop("seed", None)
    if seed is None:
        seed = (
            [merged["seed"].get_value_element_as_str()]
            if "seed" in merged
            else [str(multirun.get("seed"))]
        )
    hydra_overrides = [
        o
        for o in (hydra_cfg.get("overrides") or {}).get("hydra") or []
        if not o.startswith("hydra.mode=")
    ]
    command = " ".join(["lstm-tweets-train", "-m", *map(shlex.quote, task + hydra_overrides)])
    # Keys left at their defaults still have a value, for pooling with a sweep that varies them.
    defaults = {**flatten(multirun), **((hydra_cfg.get("runtime") or {}).get("choices") or {})}
    fixed = {
        key: o.get_value_element_as_str()
        for key, o in merged.items()
        if not o.is_sweep_override() and key != "seed"
    }
    return Design(axes, seed, command, {**{k: str(v) for k, v in defaults.items()}, **fixed})


def flatten(tree: dict, prefix: str = "") -> dict[str, object]:
    """{"data": {"interval": 5}} -> {"data.interval": 5} (leaves only; hydra's own node skipped)."""
    flat = {}
    for key, value in (tree or {}).items():
        if key == "hydra" and not prefix:
            continue
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def merge_designs(designs: list[Design]) -> Design:
    """One design for pooled sweeps. A key swept in one sweep and fixed on another's command line
    (`model=lstm` beside `model=tfidf_logreg,momentum`) becomes an axis of both; the expected runs
    are the union of each sweep's own cells x seeds."""
    keys = list(dict.fromkeys(key for d in designs for key in d.axes))
    # A config group fixed to different options in different sweeps (`model=lstm` in one,
    # `model=tfidf_logreg` in another) separates their runs too: it is an axis of the pool.
    for group in POOLING_GROUPS:
        if group not in keys and len({d.fixed.get(group) for d in designs}) > 1:
            keys.append(group)
    expected, axes = [], {key: [] for key in keys}
    for design in designs:
        unknown = [key for key in keys if key not in design.axes and key not in design.fixed]
        if unknown:
            raise ValueError(f"cannot pool sweeps: one neither sweeps nor fixes {unknown}")
        own = {key: design.axes.get(key, [design.fixed.get(key)]) for key in keys}
        for key in keys:
            axes[key] = list(dict.fromkeys(axes[key] + own[key]))
        expected += [
            (cell, seed) for cell in itertools.product(*own.values()) for seed in design.seeds
        ]
    seeds = list(dict.fromkeys(s for d in designs for s in d.seeds))
    command = "\n".join(dict.fromkeys(d.command for d in designs))
    return Design(axes, seeds, command, expected=list(dict.fromkeys(expected)))


def read_runs(sweep_dir: Path, design: Design) -> list[Run]:
    runs = []
    job_dirs = [d for d in sweep_dir.iterdir() if (d / ".hydra" / "overrides.yaml").is_file()]
    for job_dir in sorted(job_dirs, key=lambda d: (len(d.name), d.name)):
        lines = yaml.safe_load((job_dir / ".hydra" / "overrides.yaml").read_text()) or []
        values = {
            override_key(o): o.get_value_element_as_str()
            for o in OverridesParser.create().parse_overrides(lines)
        }
        config_path = job_dir / ".hydra" / "config.yaml"
        config = (yaml.safe_load(config_path.read_text()) if config_path.is_file() else None) or {}
        metrics_path = job_dir / "metrics.json"
        metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else None
        hydra_path = job_dir / ".hydra" / "hydra.yaml"
        choices = (
            (yaml.safe_load(hydra_path.read_text()) or {})
            .get("hydra", {})
            .get("runtime", {})
            .get("choices", {})
            if hydra_path.is_file()
            else {}
        )
        defaults = {**flatten(config), **(choices or {})}
        cell = tuple(str(values.get(key, defaults.get(key, "?"))) for key in design.axes)
        runs.append(
            Run(job_dir, cell, values.get("seed", str(config.get("seed"))), config, metrics)
        )
    return runs


def latest_finished(runs: list[Run]) -> dict[tuple, Run]:
    """(cell, seed) -> its finished run; a later sweep's run replaces an earlier one (`--all`)."""
    return {(r.cell, r.seed): r for r in runs if r.finished}


def all_cells(design: Design, runs: list[Run]) -> list[tuple[str, ...]]:
    return list(dict.fromkeys(design.cells() + [r.cell for r in runs]))


def missing_runs(design: Design, runs: list[Run]) -> list[str]:
    finished = latest_finished(runs)
    unfinished = {(r.cell, r.seed): r for r in runs if not r.finished}
    lines = []
    for cell in all_cells(design, runs):
        seeds = list(
            dict.fromkeys(design.seeds_for(cell) + [r.seed for r in runs if r.cell == cell])
        )
        for seed in seeds:
            if (cell, seed) in finished:
                continue
            where = f"`{cell_label(design, cell)}`, seed {seed}"
            run = unfinished.get((cell, seed))
            if run is None:
                lines.append(f"{where}: no job in the sweep")
            elif run.metrics is None:
                lines.append(
                    f"{where}: job `{run.job_dir.name}` has no metrics.json (crashed or still running)"
                )
            else:
                lines.append(f"{where}: job `{run.job_dir.name}` has no test metrics (test=false)")
        if not any((cell, seed) in finished for seed in seeds):
            lines.append(
                f"`{cell_label(design, cell)}`: the whole cell is missing (no finished seed)"
            )
    return lines


def cell_label(design: Design, cell: tuple[str, ...]) -> str:
    return (
        ", ".join(f"{key}={value}" for key, value in zip(design.axes, cell, strict=True))
        or "all runs"
    )


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


def run_model_name(run: Run) -> str:
    return str((run.metrics or {}).get("model") or (run.config.get("model") or {}).get("name"))


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


def cell_runs(design: Design, runs: list[Run]) -> dict[tuple, list[Run]]:
    finished = latest_finished(runs)
    return {
        cell: sorted(
            (run for (c, _), run in finished.items() if c == cell),
            key=lambda r: (len(r.seed), r.seed),
        )
        for cell in all_cells(design, runs)
    }


def cell_table(design: Design, runs: list[Run]) -> tuple[pd.DataFrame, dict[tuple, pd.DataFrame]]:
    """One row per cell (model x settings), and each finished cell's ensemble predictions."""
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
    comparisons = mcnemar_vs_full(design, ensembles, by_cell)
    if comparisons:
        table = table.join(pd.DataFrame([comparisons.get(cell, {}) for cell in by_cell]))
    return table, ensembles


def tested_against_majority(table: pd.DataFrame) -> pd.Series:
    """The rows in the study's family of tests against majority: every finished cell but the
    majority baseline itself (which is the null by construction)."""
    if "p_vs_majority" not in table:
        return pd.Series(False, index=table.index)
    rows = table["p_vs_majority"].notna() & (table.get("model") != "majority")
    if SHUFFLE_KEY in table:  # permuted-label runs are draws of the null, not hypotheses
        rows &= table[SHUFFLE_KEY].astype(str).str.lower() != "true"
    return rows


def add_holm(table: pd.DataFrame, column: str, rows: pd.Series) -> pd.DataFrame:
    table[f"{column}_holm"] = np.nan
    if rows.any():
        table.loc[rows, f"{column}_holm"] = stats.holm_correction(table.loc[rows, column].tolist())
    return table


def is_full_model(config: dict) -> bool:
    """Pretrained-on (any embedding but random) and counts-on."""
    return (config.get("embedding") or {}).get("kind") != "random" and bool(
        (config.get("model") or {}).get("concat_counts")
    )


def mcnemar_vs_full(
    design: Design, ensembles: dict[tuple, pd.DataFrame], by_cell: dict[tuple, list[Run]]
) -> dict[tuple, dict]:
    """McNemar's exact test of each ablation variant's seed ensemble against the full model's
    ensemble at the same other settings, paired by tweet id: one test on the true n, never the
    seeds' predictions stacked. Holm-corrected across the variants."""
    ablated = [i for i, key in enumerate(design.axes) if key in ABLATION_KEYS]
    if not ablated:
        return {}

    def context(cell):
        return tuple(v for i, v in enumerate(cell) if i not in ablated)

    full = {
        context(cell): cell
        for cell, done in by_cell.items()
        if done and cell in ensembles and is_full_model(done[0].config)
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


def pooled_over_folds(design: Design, ensembles: dict[tuple, pd.DataFrame]) -> pd.DataFrame | None:
    """Walk-forward: per model, the folds' test quarters (distinct tweets, distinct periods)
    joined into one out-of-sample set, each tweet scored against its own fold's train majority
    class, and one paired day-level test: the study's primary test."""
    if FOLD_KEY not in design.axes or not ensembles:
        return None
    fold_at = list(design.axes).index(FOLD_KEY)
    others = [key for key in design.axes if key != FOLD_KEY]
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


def permutation_null(design: Design, by_cell: dict[tuple, list[Run]]) -> pd.DataFrame | None:
    """Studies that sweep `data.shuffle_train_labels`: each shuffled run (train labels permuted,
    one permutation per seed) is a draw from the no-signal null of the same model and cell; the
    real-label model's test accuracy (its seed mean) is placed in that distribution:
    permutation p = (1 + #null >= real) / (1 + K)."""
    if SHUFFLE_KEY not in design.axes:
        return None
    at = list(design.axes).index(SHUFFLE_KEY)
    groups: dict[tuple, dict[str, list[Run]]] = {}
    for cell, done in by_cell.items():
        key = tuple(v for i, v in enumerate(cell) if i != at)
        groups.setdefault(key, {}).setdefault(cell[at].lower(), []).extend(done)
    others = [key for key in design.axes if key != SHUFFLE_KEY]
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


def plot_accuracy_vs_interval(table: pd.DataFrame, design: Design, path: Path, title: str) -> None:
    """One series per combination of the other swept settings (e.g. per model), offset along x so
    that error bars do not overlap; the majority baseline as a grey band-free line drawn on top."""
    done = table[table.seeds_found > 0].assign(x=lambda t: t[INTERVAL_KEY].astype(float))
    others = [key for key in design.axes if key != INTERVAL_KEY]
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
    ax.set_xlabel("interval (minutes after the tweet)")
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


def describe_data(runs: list[Run]) -> str:
    """Which data the study used, for titles: synthetic, real (files), shuffled labels, the label
    rule and the target (direction, abs_move or volume)."""
    config = next((r.config for r in runs if r.finished), runs[0].config if runs else {})
    data = config.get("data") or {}
    if data.get("source") == "synthetic":
        text = "synthetic sample (planted signal)"
    elif data.get("source") == "prelabeled":
        text = f"prelabeled {Path(str(data.get('path'))).name}"
    else:
        prices = Path(str(data.get("prices_path"))).name
        text = f"real tweets x {prices}"
    if data.get("shuffle_train_labels") is True:
        text += ", SHUFFLED train labels"
    if data.get("window_start"):
        text += f", {data['window_start']} labels"
    # What the accuracies are of: runs from before data.target existed predicted the direction.
    text += f", target {data.get('target') or 'direction'}"
    return text


def study_notes(sweeps: list[Path]) -> dict:
    """The experiment config's `report:` block (what the study declares about its tests)."""
    notes = {}
    for sweep in sweeps:  # pooled sweeps: the newest declaration wins
        multirun = yaml.safe_load((sweep / "multirun.yaml").read_text()) or {}
        notes.update(multirun.get("report") or {})
    return notes


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
    family = int(tested_against_majority(table).sum())
    notes = extra["notes"]
    lines = [
        f"# Study `{study}`: {extra['data']}",
        "",
        f"Sweep folder{'s' if len(sweeps) > 1 else ''}: " + ", ".join(f"`{s}`" for s in sweeps),
        f"({len(runs)} jobs, {sum(r.finished for r in runs)} finished). Built from each job's "
        "metrics.json, predictions_test.csv and .hydra/ files by `python -m experiments.report`.",
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
        lines += [
            "",
            "## Ablation: McNemar's test against the full model",
            "",
            "Each variant's seed ensemble is compared with the full model's (pretrained embedding "
            "on, count features on) at the same other settings, paired by tweet id on the true "
            "n_test (b = full right and variant wrong, c = full wrong and variant right), in one "
            "exact two-sided McNemar test. The p-values are Holm-corrected across the variants.",
            "",
            f"Note: {LOOK_AHEAD_NOTE}",
        ]
    pooled = extra.get("pooled")
    if pooled is not None:
        lines += [
            "",
            "## Pooled over walk-forward folds (the primary test)",
            "",
            "Each fold's test quarter is a different period, so the folds' test tweets join into one "
            "out-of-sample set over the whole span; each tweet is scored against its own fold's "
            "train majority class, and the paired day-level test runs on all of them. Holm across "
            f"the models ({int(tested_against_majority(pooled).sum())} tests).",
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
    design = merge_designs([read_design(s) for s in sweeps])
    runs = [run for s in sweeps for run in read_runs(s, design)]
    table, ensembles = cell_table(design, runs)
    if not table.empty:
        table = add_holm(table, "p_vs_majority", tested_against_majority(table))
    table.to_csv(out_dir / "summary.csv", index=False)
    extra = {
        "data": describe_data(runs),
        "notes": study_notes(sweeps),
        "pooled": pooled_over_folds(design, ensembles),
        "null": permutation_null(design, cell_runs(design, runs)),
    }
    if extra["pooled"] is not None:
        extra["pooled"].to_csv(out_dir / "pooled_over_folds.csv", index=False)
    if extra["null"] is not None:
        extra["null"].to_csv(out_dir / "permutation_null.csv", index=False)
    title = f"{study}\n{extra['data']}"
    figures = []
    has_results = bool((table.seeds_found > 0).any())
    if has_results and INTERVAL_KEY in design.axes:
        plot_accuracy_vs_interval(table, design, out_dir / "accuracy_vs_interval.png", title)
        figures.append("accuracy_vs_interval.png")
    if has_results and any(key in ABLATION_KEYS for key in design.axes):
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
        prog="python -m experiments.report", description=__doc__.split("\n\n")[0]
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
        default=ROOT / "outputs" / "multiruns",
        help="where the studies are",
    )
    parser.add_argument(
        "--out", type=Path, default=ROOT / "outputs" / "reports", help="reports go to OUT/<study>/"
    )
    args = parser.parse_args(argv)

    if args.sweep_dir is not None:
        if len(args.studies) > 1:
            parser.error("--sweep-dir reports one study")
        study = (args.studies or [args.sweep_dir.resolve().parent.name])[0]
        if study != OPTUNA_STUDY and not (args.sweep_dir / "multirun.yaml").is_file():
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
        build = build_optuna_report if study == OPTUNA_STUDY else build_report
        print(f"{study}: {build(study, sweeps, args.out / study)}")
    if not targets:
        print(f"no studies under {args.multiruns}", file=sys.stderr)
    return status


if __name__ == "__main__":
    raise SystemExit(main())

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

ROOT = Path(os.environ.get("LSTM_TWEETS_ROOT", "."))  # as conf/paths/default.yaml
OPTUNA_STUDY = "sweep"
INTERVAL_KEY = "data.interval"
FOLD_KEY = "data.fold"
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


def summarize_cell(metrics: list[dict]) -> dict:
    """Seed spread of test accuracy, and the Wilson CI and binomial test of the counts pooled
    over seeds (correct summed over seeds / test samples summed over seeds)."""
    accuracy = [m["test_accuracy"] for m in metrics]
    n = [int(m["n_test"]) for m in metrics]
    k = [round(a * size) for a, size in zip(accuracy, n, strict=True)]
    spread = stats.seed_spread(accuracy)
    majority = float(np.mean([m["majority_accuracy"] for m in metrics]))
    ci_low, ci_high = stats.wilson_interval(sum(k), sum(n))
    row = {
        "n_test": n[0] if len(set(n)) == 1 else float(np.mean(n)),
        "acc_mean": spread["mean"],
        "acc_std": spread["std"],
        "acc_min": spread["min"],
        "acc_max": spread["max"],
        "k_pooled": sum(k),
        "n_pooled": sum(n),
        "ci_low": ci_low,
        "ci_high": ci_high,
        "majority_accuracy": majority,
        "p_value_vs_majority": stats.binomial_p_value(sum(k), sum(n), majority),
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


def cell_table(design: Design, runs: list[Run]) -> pd.DataFrame:
    finished = latest_finished(runs)
    rows = []
    for cell in all_cells(design, runs):
        done = sorted(
            (run for (c, _), run in finished.items() if c == cell),
            key=lambda r: (len(r.seed), r.seed),
        )
        row = {
            **dict(zip(design.axes, cell, strict=True)),
            "seeds_found": len(done),
            "seeds_expected": len(design.seeds_for(cell)),
        }
        if done:
            row.update(summarize_cell([run.metrics for run in done]))
        rows.append(row)
    table = pd.DataFrame(rows)
    comparisons = mcnemar_vs_full(design, runs)
    if comparisons:
        table = table.join(
            pd.DataFrame([comparisons.get(cell, {}) for cell in all_cells(design, runs)])
        )
    return table


def is_full_model(config: dict) -> bool:
    """Pretrained-on (any embedding but random) and counts-on."""
    return (config.get("embedding") or {}).get("kind") != "random" and bool(
        (config.get("model") or {}).get("concat_counts")
    )


def paired_correct(run_a: Run, run_b: Run) -> tuple[np.ndarray, np.ndarray]:
    """Was each test tweet predicted right by A and by B, paired by tweet id."""
    a, b = (
        pd.read_csv(r.job_dir / "predictions_test.csv", dtype={"id": str}) for r in (run_a, run_b)
    )
    both = a.merge(b, on="id", suffixes=("_a", "_b"))
    return (both.label_a == both.predicted_a).to_numpy(), (
        both.label_b == both.predicted_b
    ).to_numpy()


def mcnemar_vs_full(design: Design, runs: list[Run]) -> dict[tuple, dict]:
    """McNemar's exact test of each ablation variant against the full model at the same other
    settings. Tweets are paired by id within a seed; the pairs of all seeds found in both cells
    are pooled into one test (b and c summed over seeds). Holm-corrected across the variants."""
    ablated = [i for i, key in enumerate(design.axes) if key in ABLATION_KEYS]
    if not ablated:
        return {}
    finished = latest_finished(runs)

    def context(cell):
        return tuple(v for i, v in enumerate(cell) if i not in ablated)

    full = {context(cell): cell for (cell, _), run in finished.items() if is_full_model(run.config)}
    results = {}
    for cell in all_cells(design, runs):
        reference = full.get(context(cell))
        if reference is None:
            continue
        if reference == cell:
            results[cell] = {"mcnemar_vs": "(reference)"}
            continue
        seeds = [
            s
            for (c, s) in finished
            if c == cell
            and (reference, s) in finished
            and all(
                (r.job_dir / "predictions_test.csv").is_file()
                for r in (finished[(c, s)], finished[(reference, s)])
            )
        ]
        if not seeds:
            continue
        pairs = [paired_correct(finished[(reference, s)], finished[(cell, s)]) for s in seeds]
        test = stats.mcnemar_test(
            np.concatenate([p[0] for p in pairs]), np.concatenate([p[1] for p in pairs])
        )
        results[cell] = {
            "mcnemar_vs": cell_label(design, reference),
            "mcnemar_seeds": len(seeds),
            "mcnemar_pairs": sum(len(p[0]) for p in pairs),
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


# ---- figures --------------------------------------------------------------------------------


def ci_errors(table: pd.DataFrame) -> list[np.ndarray]:
    return [
        (table.acc_mean - table.ci_low).clip(lower=0).to_numpy(),
        (table.ci_high - table.acc_mean).clip(lower=0).to_numpy(),
    ]


def plot_accuracy_vs_interval(table: pd.DataFrame, design: Design, path: Path) -> None:
    """One line per combination of the other swept settings (e.g. per model)."""
    done = table[table.seeds_found > 0].assign(x=lambda t: t[INTERVAL_KEY].astype(float))
    others = [key for key in design.axes if key != INTERVAL_KEY]
    fig = Figure(figsize=(7, 4.2))
    ax = fig.subplots()
    for name, group in done.groupby(others, sort=False) if others else [((), done)]:
        group = group.sort_values("x")
        label = (
            ", ".join(f"{k}={v}" for k, v in zip(others, name, strict=True))
            or "LSTM (mean over seeds)"
        )
        ax.errorbar(
            group.x, group.acc_mean, yerr=ci_errors(group), marker="o", capsize=3, label=label
        )
    majority = done.groupby("x").majority_accuracy.mean()
    ax.plot(majority.index, majority.to_numpy(), "k--", label="majority baseline")
    ax.set_xlabel("interval (minutes after the tweet)")
    ax.set_ylabel("test accuracy")
    ax.set_title("Test accuracy vs interval (error bars: pooled Wilson 95% CI)")
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def plot_ablation(table: pd.DataFrame, design: Design, path: Path) -> None:
    done = table[table.seeds_found > 0].reset_index(drop=True)
    labels = [
        "\n".join(f"{k.split('.')[-1]}={row[k]}" for k in design.axes) for _, row in done.iterrows()
    ]
    fig = Figure(figsize=(max(5, 1.8 * len(done)), 4.2))
    ax = fig.subplots()
    ax.bar(
        range(len(done)),
        done.acc_mean,
        yerr=ci_errors(done),
        capsize=4,
        color="tab:blue",
        alpha=0.8,
    )
    ax.axhline(done.majority_accuracy.mean(), color="k", linestyle="--", label="majority baseline")
    ax.set_xticks(range(len(done)), labels, fontsize="small")
    ax.set_ylabel("test accuracy (mean over seeds)")
    ax.set_ylim(0, 1)
    ax.set_title("Ablation (error bars: pooled Wilson 95% CI)")
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def read_curves(tensorboard_dir: Path) -> pd.DataFrame:
    """Per-epoch scalars (columns tag, epoch, value) from a run's TensorBoard event files."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tensorboard_dir), size_guidance={"scalars": 0})
    events.Reload()
    tags = set(events.Tags()["scalars"])
    # Lightning logs the epoch number at every step it logs epoch metrics: step -> epoch.
    epoch_at = {e.step: int(e.value) for e in events.Scalars("epoch")} if "epoch" in tags else {}
    rows = []
    for tag in (t for group in CURVES.values() for t in group if t in tags):
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


def plot_curves(design: Design, runs: list[Run], path: Path) -> bool:
    """Per cell: accuracy and loss per epoch (train, validation, and test when it was tracked
    every epoch), averaged over seeds. False when no run has TensorBoard events."""
    finished = latest_finished(runs)
    curves = {}
    for cell in all_cells(design, runs):
        frames = [
            read_curves(run.job_dir / "tensorboard")
            for (c, _), run in finished.items()
            if c == cell and (run.job_dir / "tensorboard").is_dir()
        ]
        frames = [f for f in frames if not f.empty]
        if frames:
            curves[cell] = (len(frames), pd.concat(frames).groupby(["tag", "epoch"]).value.mean())
    if not curves:
        return False
    fig = Figure(figsize=(10, 2.6 * len(curves)))
    axes = fig.subplots(len(curves), 2, squeeze=False)
    for row, (cell, (n_seeds, mean)) in zip(axes, curves.items(), strict=True):
        for ax, (quantity, tags) in zip(row, CURVES.items(), strict=True):
            for tag in (t for t in tags if t in mean.index.get_level_values("tag")):
                ax.plot(mean[tag].index, mean[tag].to_numpy(), marker=".", label=tag.split("/")[0])
            ax.set_title(f"{cell_label(design, cell)} (mean of seeds: {n_seeds})", fontsize="small")
            ax.set_xlabel("epoch (from 0, as best_epoch)")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_ylabel(quantity)
            ax.legend(fontsize="x-small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return True


# ---- the report -----------------------------------------------------------------------------


def fmt(value, spec: str = ".3f") -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "—"
    return format(value, spec)


def markdown_rows(table: pd.DataFrame, design: Design) -> tuple[list[str], list[list[str]]]:
    header = [
        *design.axes,
        "seeds",
        "n_test",
        "test acc (mean ± std)",
        "pooled 95% CI",
        "majority",
        "p vs majority",
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
        row = [str(r[key]) for key in design.axes] + [f"{r.seeds_found}/{r.seeds_expected}"]
        if r.seeds_found:
            row += [
                fmt(r.n_test, ".0f" if float(r.n_test).is_integer() else ".1f"),
                f"{fmt(r.acc_mean)} ± {fmt(r.acc_std)}",
                f"[{fmt(r.ci_low)}, {fmt(r.ci_high)}]",
                fmt(r.majority_accuracy),
                fmt(r.p_value_vs_majority, ".3g"),
                r.best_epoch_by_seed,
            ]
        else:
            row += ["—"] * 6
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


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def pooled_over_folds(table: pd.DataFrame, design: Design) -> pd.DataFrame | None:
    """Walk-forward studies: each remaining cell's counts summed over `data.fold`."""
    if FOLD_KEY not in design.axes or table.empty or "k_pooled" not in table:
        return None
    others = [key for key in design.axes if key != FOLD_KEY]
    rows = []
    for values, group in (
        table.dropna(subset=["k_pooled"]).groupby(others, sort=False) if others else [((), table)]
    ):
        k, n = int(group.k_pooled.sum()), int(group.n_pooled.sum())
        majority = float((group.majority_accuracy * group.n_pooled).sum() / n)
        low, high = stats.wilson_interval(k, n)
        rows.append(
            {
                **dict(
                    zip(others, values if isinstance(values, tuple) else (values,), strict=True)
                ),
                "folds": len(group),
                "n": n,
                "accuracy": k / n,
                "ci_low": low,
                "ci_high": high,
                "majority": majority,
                "p_vs_majority": stats.binomial_p_value(k, n, majority),
            }
        )
    return pd.DataFrame(rows)


def write_markdown(
    study: str,
    sweeps: list[Path],
    design: Design,
    runs: list[Run],
    table: pd.DataFrame,
    figures: list[str],
    path: Path,
) -> None:
    axes = (
        " x ".join(f"`{k}` in {{{', '.join(v)}}}" for k, v in design.axes.items())
        or "no swept parameter"
    )
    n_expected = len(design.pairs())
    lines = [
        f"# Study `{study}`",
        "",
        f"Sweep folder{'s' if len(sweeps) > 1 else ''}: " + ", ".join(f"`{s}`" for s in sweeps),
        f"({len(runs)} jobs, {sum(r.finished for r in runs)} finished). Built from each job's metrics.json "
        "and .hydra/ files by `python -m experiments.report`.",
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
        "Test accuracy is the mean ± sample std over seeds, each seed tested once at its best-validation "
        "epoch. The 95% CI is the Wilson interval of the counts pooled over seeds (correct predictions "
        "summed over seeds / test samples summed over seeds), and p is the one-sided exact binomial test "
        "of those pooled counts against the mean majority-class accuracy (the train majority class "
        "applied to test). The seeds share one test set, so pooling overstates the number of independent "
        "samples: the pooled CI is the precision of the seed average, not of a single model "
        "(each run's own CI is in its metrics.json).",
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
            "Each variant is compared with the full model (pretrained embedding on, count features on) at "
            "the same other settings. Test tweets are paired by id within a seed; the discordant pairs are "
            "pooled over the seeds found in both cells (b = full right and variant wrong, c = full wrong and "
            "variant right, summed over seeds) into one exact two-sided McNemar test. The p-values are "
            "Holm-corrected across the variants.",
            "",
            f"Note: {LOOK_AHEAD_NOTE}",
        ]
    missing = missing_runs(design, runs)
    pooled = pooled_over_folds(table, design)
    if pooled is not None:
        lines += [
            "",
            "## Pooled over walk-forward folds",
            "",
            "Each fold's test quarter is a different period, so pooling the folds' correct counts "
            "(and their majority baselines, weighted by n) gives one out-of-sample score over the "
            "whole span.",
            "",
            markdown_table(
                list(pooled.columns),
                [
                    [f"{v:.3g}" if isinstance(v, float) else str(v) for v in row]
                    for row in pooled.values
                ],
            ),
        ]
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
    table = cell_table(design, runs)
    table.to_csv(out_dir / "summary.csv", index=False)
    figures = []
    has_results = bool((table.seeds_found > 0).any())
    if has_results and INTERVAL_KEY in design.axes:
        plot_accuracy_vs_interval(table, design, out_dir / "accuracy_vs_interval.png")
        figures.append("accuracy_vs_interval.png")
    if has_results and any(key in ABLATION_KEYS for key in design.axes):
        plot_ablation(table, design, out_dir / "ablation.png")
        figures.append("ablation.png")
    if plot_curves(design, runs, out_dir / "curves.png"):
        figures.append("curves.png")
    write_markdown(study, sweeps, design, runs, table, figures, out_dir / "report.md")
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

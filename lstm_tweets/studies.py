"""A study's runs -> its design and cells. A study is a Hydra multirun under
`outputs/multiruns/<study>/<time>/`; its design (the cell axes: the swept keys other than `seed`,
and the seeds) is the sweep's `multirun.yaml` (`hydra.sweeper.params`, then the command line's
sweeps, which win, as in Hydra's basic sweeper). Each finished job's `metrics.json` names its own
cell (`cell`: the swept keys and their values, recorded by the training app), its seed, model and
data; jobs written before metrics.json carried the cell (and jobs that never finished) are read
from their `.hydra/` files instead. What a study compares (its x axis, ablation axes and reference
cell, the key whose cells pool, the permutation-null key, the test family) is its experiment
config's `report:` block (`study_declaration`).
"""

from __future__ import annotations

import itertools
import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser

from lstm_tweets import CONF_DIR

# Config groups whose option, fixed differently in pooled sweeps, separates their runs.
POOLING_GROUPS = ("model", "data", "embedding")


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
    config: dict  # the job's .hydra/config.yaml, read only for runs without a recorded cell
    metrics: dict | None  # None: no metrics.json (crashed or still running)

    @property
    def finished(self) -> bool:
        return self.metrics is not None and self.metrics.get("test_accuracy") is not None

    @property
    def data(self) -> dict:
        """The data the run saw (source, files, shuffled labels, label rule, target): from
        metrics.json, or the .hydra/config.yaml of a run written before metrics.json said."""
        metrics = self.metrics or {}
        if "data_config" in metrics:
            return {
                **metrics["data_config"],
                "window_start": metrics.get("window_start"),
                "target": metrics.get("target"),
            }
        return self.config.get("data") or {}


# ---- finding the sweeps -----------------------------------------------------------------------


def is_sweep_dir(folder: Path) -> bool:
    """A basic sweep holds a multirun.yaml; an Optuna sweep (the resumable_optuna sweeper writes
    none) holds optimization_results.yaml or its trials' job folders."""
    if not folder.is_dir():
        return False
    if (folder / "multirun.yaml").is_file() or (folder / "optimization_results.yaml").is_file():
        return True
    return any((job / ".hydra").is_dir() for job in folder.iterdir())


def is_optuna_study(sweeps: list[Path]) -> bool:
    """An Optuna study: its sweep folders hold no multirun.yaml (summarized from their
    optimization_results.yaml instead of cell by cell)."""
    return bool(sweeps) and not any((s / "multirun.yaml").is_file() for s in sweeps)


def sweep_dirs(multiruns: Path, study: str, pool_all: bool = False) -> list[Path]:
    """The study's sweep folders, oldest first: all of them, or those of the latest launch
    (the workers of one `make sweep` share its timestamp prefix)."""
    found = sorted(d for d in (multiruns / study).glob("*") if is_sweep_dir(d))
    if pool_all or not found:
        return found
    latest = found[-1].name[:19]  # %Y-%m-%d_%H-%M-%S
    return [d for d in found if d.name[:19] == latest]


# ---- what the study declares: its experiment config's `report:` block ------------------------


def _report_block(path: Path) -> dict:
    if not path.is_file():
        return {}
    return dict((yaml.safe_load(path.read_text()) or {}).get("report") or {})


def study_declaration(sweeps: list[Path]) -> dict:
    """The `report:` block the sweeps recorded in their multirun.yaml (pooled sweeps: the newest
    wins). A sweep written before the block held every key is completed from the packaged
    configs it named: train.yaml's defaults, then its `experiment=` file."""
    declared = _report_block(CONF_DIR / "train.yaml")
    for sweep in sweeps:
        path = sweep / "multirun.yaml"
        multirun = (yaml.safe_load(path.read_text()) if path.is_file() else None) or {}
        choices = ((multirun.get("hydra") or {}).get("runtime") or {}).get("choices") or {}
        experiment = choices.get("experiment")
        if experiment:
            declared.update(_report_block(CONF_DIR / "experiment" / f"{experiment}.yaml"))
        declared.update(multirun.get("report") or {})
    return declared


# ---- the design and the runs -----------------------------------------------------------------


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


def read_runs(sweep_dir: Path, design: Design, own: Design | None = None) -> list[Run]:
    """The sweep's jobs, each with its cell (its values of `design.axes`, in order). A finished
    job's cell is its metrics.json `cell`; an axis its own sweep did not vary takes the value that
    sweep fixed (`own`: the sweep's own design). Jobs without a recorded cell (written before
    metrics.json carried it, or never finished) are read from their .hydra/ files."""
    own = own if own is not None else design
    runs = []
    job_dirs = [
        d
        for d in sweep_dir.iterdir()
        if (d / "metrics.json").is_file() or (d / ".hydra" / "overrides.yaml").is_file()
    ]
    for job_dir in sorted(job_dirs, key=lambda d: (len(d.name), d.name)):
        metrics_path = job_dir / "metrics.json"
        metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else None
        if metrics is not None and isinstance(metrics.get("cell"), dict):
            values = {key: str(value) for key, value in metrics["cell"].items()}
            cell = tuple(values.get(key, str(own.fixed.get(key, "?"))) for key in design.axes)
            runs.append(
                Run(job_dir, cell, values.get("seed", str(metrics.get("seed"))), {}, metrics)
            )
        else:
            runs.append(read_legacy_run(job_dir, design, metrics))
    return runs


def read_legacy_run(job_dir: Path, design: Design, metrics: dict | None) -> Run:
    """A job without a recorded cell: its overrides and defaults from its .hydra/ files."""
    lines = yaml.safe_load((job_dir / ".hydra" / "overrides.yaml").read_text()) or []
    values = {
        override_key(o): o.get_value_element_as_str()
        for o in OverridesParser.create().parse_overrides(lines)
    }
    config_path = job_dir / ".hydra" / "config.yaml"
    config = (yaml.safe_load(config_path.read_text()) if config_path.is_file() else None) or {}
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
    return Run(job_dir, cell, values.get("seed", str(config.get("seed"))), config, metrics)


def read_study(sweeps: list[Path]) -> tuple[Design, list[Run]]:
    """The pooled design of the sweeps and every job of them."""
    designs = [read_design(s) for s in sweeps]
    design = merge_designs(designs)
    runs = [
        run for s, own in zip(sweeps, designs, strict=True) for run in read_runs(s, design, own)
    ]
    return design, runs


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


def run_model_name(run: Run) -> str:
    return str((run.metrics or {}).get("model") or (run.config.get("model") or {}).get("name"))


def cell_runs(design: Design, runs: list[Run]) -> dict[tuple, list[Run]]:
    finished = latest_finished(runs)
    return {
        cell: sorted(
            (run for (c, _), run in finished.items() if c == cell),
            key=lambda r: (len(r.seed), r.seed),
        )
        for cell in all_cells(design, runs)
    }


def describe_data(runs: list[Run]) -> str:
    """Which data the study used, for titles: synthetic, real (files), shuffled labels, the label
    rule and the target (direction, abs_move or volume)."""
    run = next((r for r in runs if r.finished), runs[0] if runs else None)
    data = run.data if run is not None else {}
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

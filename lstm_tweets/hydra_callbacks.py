"""Hydra callbacks of the training app (registered in conf/hydra/default.yaml).

`MultirunSummary` ends every multirun with what a person needs next: the sweep folder, one line
per job (its cell, test or validation number, wall time, or why it failed) and the command that
builds the study's report. When the sweep stopped on bad input (a config or data error: the
message names the key or file), it then exits with code 2 and that message instead of a
traceback, as a single run does; HYDRA_FULL_ERROR=1 keeps the traceback.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from lstm_tweets import cells
from lstm_tweets.data.errors import DataError


def one_line(error: BaseException, width: int = 160) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    if not isinstance(error, DataError):
        text = f"{type(error).__name__}: {text}"
    return text if len(text) <= width else text[: width - 3] + "..."


def job_dirs(sweep_dir: Path) -> list[Path]:
    found = [d for d in sweep_dir.iterdir() if (d / ".hydra" / "overrides.yaml").is_file()]
    return sorted(found, key=lambda d: (int(d.name) if d.name.isdigit() else 10**9, d.name))


def seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0f} s" if value < 600 else f"{value / 60:.1f} min"


def number(value: Any, signed: bool = False) -> str:
    """0.512 (or +0.012); several objectives' values joined with '/'."""
    if isinstance(value, list):
        return "/".join(number(v, signed) for v in value) or "-"
    if not isinstance(value, int | float):
        return "-"
    return f"{value:+.3f}" if signed else f"{value:.3f}"


def summary_lines(
    sweep_dir: Path, swept: dict, study: str | None, failures: dict[str, str]
) -> list[str]:
    """The multirun summary as printed (also used by the tests)."""
    jobs = job_dirs(sweep_dir) if sweep_dir.is_dir() else []
    rows, n_failed, metric_name = [], 0, None
    for job in jobs:
        config = OmegaConf.load(job / ".hydra" / "config.yaml")
        keys = list(swept) or list(cells.RUN_CELL_KEYS)
        name = cells.cell_name(cells.cell(config, keys))
        metrics_path = job / "metrics.json"
        if metrics_path.is_file():
            metrics = json.loads(metrics_path.read_text())
            named = metrics.get("optimized_metric")
            metric_name = metric_name or ("/".join(named) if isinstance(named, list) else named)
            rows.append(
                [
                    job.name,
                    name,
                    number(metrics.get("test_accuracy")),
                    number(metrics.get("lift_vs_majority"), signed=True),
                    number(metrics.get("optimized_value"), signed=True),
                    seconds(metrics.get("wall_time_s")),
                    "",
                ]
            )
            continue
        n_failed += 1
        log = job / f"{config.get('task_name', 'train')}.log"
        why = failures.get(str(job.resolve())) or f"no metrics.json (see {log})"
        elapsed = None
        if log.is_file():
            elapsed = log.stat().st_mtime - (job / ".hydra" / "config.yaml").stat().st_mtime
        rows.append([job.name, name, "-", "-", "-", seconds(elapsed), f"FAILED: {why}"])

    header = ["job", "cell", "test acc", "lift", metric_name or "val metric", "wall", ""]
    finished = len(jobs) - n_failed
    lines = [
        "",
        f"Multirun done: {len(jobs)} job{'s' * (len(jobs) != 1)}, {finished} finished, "
        f"{n_failed} failed",
        f"Sweep folder: {sweep_dir}",
    ]
    if rows:
        widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header) - 1)]
        for row in [header, *rows]:
            cells_ = [str(c).ljust(w) for c, w in zip(row, widths, strict=False)]
            lines.append(("  " + "  ".join(cells_) + ("  " + row[-1] if row[-1] else "")).rstrip())
    lines.append(
        f"Report: lstm-tweets-report {study or sweep_dir.parent.name} --all"
        "   (every study: make report)"
    )
    lines.append(f"TensorBoard: tensorboard --logdir {sweep_dir}")
    return lines


class MultirunSummary(Callback):
    """Prints the multirun summary (see the module doc)."""

    def __init__(self) -> None:
        self.failures: dict[str, str] = {}  # job folder -> why it failed

    @staticmethod
    def _job_dir(config: DictConfig) -> str | None:
        output = OmegaConf.select(config, "hydra.runtime.output_dir", default=None)
        return str(Path(output).resolve()) if output else None

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        error = getattr(job_return, "_return_value", None)
        job = self._job_dir(config)
        if job and isinstance(error, BaseException):
            self.failures[job] = one_line(error)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        error = sys.exc_info()[1]
        sweep_dir = Path(str(config.hydra.sweep.dir))
        try:
            swept = cells.swept_keys(config.hydra)
        except Exception:  # an unparsable sweep: the table falls back to interval, model, seed
            swept = {}
        print("\n".join(summary_lines(sweep_dir, swept, config.get("study"), self.failures)))
        sys.stdout.flush()
        if isinstance(error, DataError) and not os.environ.get("HYDRA_FULL_ERROR") == "1":
            print(f"error: {one_line(error, width=10_000)}", file=sys.stderr)
            raise SystemExit(2)

"""What a finished sweep leaves in `<sweep dir>/optuna/`, written by the sweeper when it ends:
plots of the whole study made with Optuna's matplotlib backend (PNG files, no browser), and
`best.yaml`, the best parameters with the exact command that retrains that config and tests it once.

- one objective: `optimization_history.png`, `param_importances.png`, `parallel_coordinate.png`,
  `intermediate_values.png` (what each trial reported after every validation; pruned ones stop
  early);
- several objectives: `pareto_front.png` (every completed trial, the front highlighted), and
  `best.yaml` lists each solution of the front with its command.
"""

from __future__ import annotations

import logging
import shlex
import sys
import warnings
from pathlib import Path
from typing import Any

import optuna
from omegaconf import DictConfig, OmegaConf
from optuna.trial import TrialState

from lstm_tweets.cells import quoted

log = logging.getLogger(__name__)

SINGLE_OBJECTIVE_PLOTS = (
    "optimization_history",
    "param_importances",
    "parallel_coordinate",
    "intermediate_values",
)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # no display in a sweep
    import matplotlib.pyplot as plt

    return plt


def _save(axes, path: Path) -> None:
    plt = _pyplot()
    figure = axes.figure if hasattr(axes, "figure") else axes.flat[0].figure
    width, height = figure.get_size_inches()
    figure.set_size_inches(max(width, 8), max(height, 5))
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def write(
    study: optuna.Study,
    sweep_dir: Path,
    metrics: list[str] | None = None,
    config: DictConfig | None = None,
) -> list[Path]:
    """Writes `<sweep_dir>/optuna/`: the plots that apply to this study and best.yaml; returns
    the paths. A plot that fails is logged and skipped: the sweep's results are already saved."""
    folder = Path(sweep_dir) / "optuna"
    folder.mkdir(parents=True, exist_ok=True)
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        return []
    _pyplot()
    from optuna.visualization import matplotlib as plots

    jobs: list[tuple[str, Any]] = []
    if len(study.directions) == 1:
        name = metrics[0] if metrics else "Objective Value"
        for kind in SINGLE_OBJECTIVE_PLOTS:
            plot = getattr(plots, f"plot_{kind}")
            kwargs = {} if kind == "intermediate_values" else {"target_name": name}
            jobs.append((f"{kind}.png", lambda plot=plot, kwargs=kwargs: plot(study, **kwargs)))
    elif len(study.directions) in (2, 3):
        jobs.append(
            ("pareto_front.png", lambda: plots.plot_pareto_front(study, target_names=metrics))
        )
    written: list[Path] = []
    for filename, draw in jobs:
        path = folder / filename
        try:
            with warnings.catch_warnings():  # Optuna marks its matplotlib plots experimental
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                warnings.filterwarnings("ignore", message=".*not enough.*|.*no .*trials.*")
                _save(draw(), path)
            written.append(path)
        except Exception as err:
            log.warning(f"sweep plot {filename} not written: {type(err).__name__}: {err}")
    written.append(write_best(study, folder / "best.yaml", metrics, config))
    log.info(f"Sweep report: {folder} ({', '.join(p.name for p in written)})")
    return written


# ---- best.yaml ---------------------------------------------------------------------------------
def override_value(value: Any) -> str:
    """A parameter value as Hydra override text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return repr(value)
    text = str(value)
    plain = text and all(c.isalnum() or c in "._-/" for c in text) and text not in ("true", "false")
    return text if plain else quoted(text)


def app_command() -> str:
    """How this app was started: its console script (`lstm-tweets-train`), or `python app.py`."""
    argv0 = sys.argv[0] if sys.argv and sys.argv[0] else "app"
    return f"python {argv0}" if argv0.endswith(".py") else Path(argv0).name


def retrain_command(config: DictConfig | None, params: dict[str, Any]) -> str:
    """The single run that retrains `params` and tests it once: the sweep's own command-line
    overrides without its search axes, the trial's values pinned, `hydra.mode=RUN` (a search
    config sets MULTIRUN) and `test=true`."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    task: list[str] = []
    if config is not None:
        task = [str(o) for o in OmegaConf.select(config, "hydra.overrides.task", default=[]) or []]
    pinned = {key.lstrip("+~") for key in params}
    parser = OverridesParser.create()
    kept = []
    for line in task:
        try:
            override = parser.parse_overrides([line])[0]
        except Exception:
            kept.append(line)
            continue
        key = override.get_key_element().lstrip("+~")
        if override.is_sweep_override() or key in pinned or key.startswith("optuna_trial"):
            continue
        kept.append(line)
    pins = [f"{key}={override_value(value)}" for key, value in params.items()]
    words = [*kept, *pins, "hydra.mode=RUN"]
    if config is not None and "test" in config:
        words.append("test=true")
    return " ".join([app_command(), *(shlex.quote(w) for w in words)])


def write_best(
    study: optuna.Study, path: Path, metrics: list[str] | None, config: DictConfig | None
) -> Path:
    best: dict[str, Any] = {"study_name": study.study_name}
    if len(study.directions) == 1:
        trial = study.best_trial
        best.update(
            objective=metrics[0] if metrics else "value",
            direction=study.direction.name.lower(),
            trial=trial.number,
            value=trial.value,
            params=trial.params,
            command=retrain_command(config, trial.params),
        )
    else:
        best.update(
            objectives=list(metrics or [f"objective {i}" for i in range(len(study.directions))]),
            directions=[d.name.lower() for d in study.directions],
            solutions=[
                {
                    "trial": t.number,
                    "values": t.values,
                    "params": t.params,
                    "command": retrain_command(config, t.params),
                }
                for t in study.best_trials
            ],
        )
    OmegaConf.save(OmegaConf.create(best), path)
    return path

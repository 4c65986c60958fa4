"""`hydra/sweeper=resumable_optuna` keeps every feature of the plugin it extends: the scenarios of
hydra-optuna-sweeper's own examples and tests (sphere with SQLite storage, grid sampler,
multi-objective with and without command-line ranges, custom search space, failure rate, n_jobs
batches, the override grammar), run against our sweeper with tiny Hydra apps written into
tmp_path. Trials are a few arithmetic operations, so each sweep takes seconds.

Every app runs under `python -W error`: no deprecated Hydra call (and no other warning) is left
in the sweeper's path."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

SPHERE = '''
import hydra
from omegaconf import DictConfig
from optuna.trial import Trial


# The app trusts its own custom search space (Hydra 1.4's execution whitelist).
@hydra.main(config_path="conf", config_name="config", execution_whitelist=("__main__.configure",))
def sphere(cfg: DictConfig) -> float:
    if cfg.get("error", False) and cfg.x <= cfg.get("fail_below", 100):
        raise RuntimeError("cfg.error is True")
    return cfg.x**2 + cfg.y**2 + cfg.get("w", 0) ** 2


def configure(cfg: DictConfig, trial: Trial) -> None:
    """The plugin example's custom search space: z near x, and a new key w."""
    x = trial.params["x"]
    trial.suggest_float("z", x - cfg.max_z_difference_from_x, x + cfg.max_z_difference_from_x)
    trial.suggest_float("+w", 0.0, 1.0)


if __name__ == "__main__":
    sphere()
'''

SPHERE_CONFIG = """
defaults:
  - override hydra/sweeper: resumable_optuna
  - override hydra/sweeper/sampler: tpe

hydra:
  sweeper:
    direction: minimize
    study_name: sphere
    storage: null
    n_trials: 20
    n_jobs: 1
    params:
      x: range(-5.5, 5.5, step=0.5)
      y: choice(-5, 0, 5)

x: 1
y: 1
z: 1
max_z_difference_from_x: 0.5
"""

GRID_CONFIG = """
defaults:
  - override hydra/sweeper: resumable_optuna
  - override hydra/sweeper/sampler: grid

hydra:
  sweeper:
    direction: minimize
    study_name: sphere
    storage: null
    n_trials: 20
    params:
      x: choice(-1, 1)
      y: range(-1.0, 1.0, step=1)
      z: choice("foo", "bar")

x: 1
y: 1
z: foo
"""

BINH_AND_KORN = """
import hydra
from omegaconf import DictConfig


@hydra.main(config_path="conf", config_name="config")
def binh_and_korn(cfg: DictConfig) -> tuple[float, float]:
    x, y = cfg.x, cfg.y
    return 4 * x**2 + 4 * y**2, (x - 5) ** 2 + (y - 5) ** 2


if __name__ == "__main__":
    binh_and_korn()
"""

MULTI_OBJECTIVE_CONFIG = """
defaults:
  - override hydra/sweeper: resumable_optuna
  - override hydra/sweeper/sampler: nsgaii

hydra:
  sweeper:
    sampler:
      seed: 123
    direction: [minimize, minimize]
    study_name: multi-objective
    storage: null
    n_trials: 20
    params:
      x: range(0, 5, step=0.5)
      y: range(0, 3, step=0.5)

x: 1
y: 1
"""


def write_app(root: Path, source: str, config: str) -> Path:
    (root / "conf").mkdir(parents=True, exist_ok=True)
    (root / "conf" / "config.yaml").write_text(textwrap.dedent(config))
    script = root / "app.py"
    script.write_text(textwrap.dedent(source))
    return script


def run(script: Path, *overrides: str, expect_ok: bool = True) -> str:
    """Runs a multirun of the app under `-W error`; returns its output."""
    proc = subprocess.run(
        [sys.executable, "-W", "error", str(script), "--multirun", *overrides],
        cwd=script.parent,
        capture_output=True,
        text=True,
        timeout=180,
    )
    out = proc.stdout + proc.stderr
    if expect_ok:
        assert proc.returncode == 0, out[-4000:]
    else:
        assert proc.returncode != 0, out[-4000:]
    return out


def results(sweep_dir: Path) -> dict:
    return yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())


def dominates(a: list[float], b: list[float]) -> bool:
    """a is at least as good everywhere and better somewhere (both objectives minimized)."""
    return all(x <= y for x, y in zip(a, b, strict=True)) and any(
        x < y for x, y in zip(a, b, strict=True)
    )


@pytest.fixture
def sphere(tmp_path) -> Path:
    return write_app(tmp_path / "sphere", SPHERE, SPHERE_CONFIG)


# ---- the plugin's sphere example, with SQLite storage ----------------------------------------
@pytest.mark.parametrize("with_commandline", [True, False])
def test_sphere_with_sqlite_storage(sphere, tmp_path, with_commandline):
    storage = f"sqlite:///{tmp_path / 'test.db'}"
    common = [
        "hydra.sweeper.n_jobs=1",
        f"hydra.sweeper.storage={storage}",
        "hydra.sweeper.study_name=test-optuna-example",
        "hydra/sweeper/sampler=tpe",
        "hydra.sweeper.sampler.seed=123",
        "~z",  # a deletion, passed to every trial
    ]
    extra = ["x=choice(0, 1, 2)", "y=0"] if with_commandline else []  # y=0: a fixed parameter
    n = 6 if with_commandline else 20  # the plugin's TPE threshold below is for 20 trials
    run(
        sphere,
        f"hydra.sweep.dir={tmp_path / 'first'}",
        f"hydra.sweeper.n_trials={n}",
        *common,
        *extra,
    )

    returns = results(tmp_path / "first")
    study = optuna.load_study(storage=storage, study_name="test-optuna-example")
    best = study.best_trial
    assert returns["name"] == "optuna"
    assert returns["best_params"] == best.params and returns["best_value"] == best.value
    if with_commandline:
        assert "y" not in returns["best_params"] and "y" not in best.params
        assert best.user_attrs["y"] == "0"  # recorded as the plugin records fixed parameters
        assert returns["best_value"] == 0
    else:
        assert returns["best_params"]["y"] == best.params["y"]
        assert returns["best_value"] <= 2.27  # the plugin's threshold for TPE on this problem
    job_config = yaml.safe_load((tmp_path / "first" / "0" / ".hydra" / "config.yaml").read_text())
    assert "z" not in job_config and "x" in job_config  # `~z` reached the job
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == n
    if with_commandline:
        return

    # n_trials is the study's total, read from the storage: a second run of the same sweep adds
    # nothing, a larger total adds the difference.
    out = run(
        sphere,
        f"hydra.sweep.dir={tmp_path / 'again'}",
        "hydra.sweeper.n_trials=20",
        *common,
        *extra,
    )
    assert "Launching" not in out
    assert results(tmp_path / "again")["best_value"] == returns["best_value"]
    run(
        sphere, f"hydra.sweep.dir={tmp_path / 'more'}", "hydra.sweeper.n_trials=23", *common, *extra
    )
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 23


# ---- the plugin's grid-sampler test ---------------------------------------------------------
def test_grid_sampler_covers_the_grid_once(tmp_path):
    app = write_app(tmp_path / "grid", SPHERE, GRID_CONFIG)
    storage = f"sqlite:///{tmp_path / 'grid.db'}"
    common = [f"hydra.sweeper.storage={storage}", "hydra.sweeper.study_name=grid"]
    run(app, f"hydra.sweep.dir={tmp_path / 'one'}", "hydra.sweeper.n_trials=1", *common)
    one = results(tmp_path / "one")
    assert one["best_params"]["x"] in (-1, 1) and one["best_params"]["y"] in (-1.0, 0.0)
    assert one["best_params"]["z"] in ("foo", "bar")

    # 2 x 2 x 2 points; n_trials=10 is capped at 8, the point done above is not redone
    out = run(app, f"hydra.sweep.dir={tmp_path / 'all'}", "hydra.sweeper.n_trials=10", *common)
    assert "of 8 trials complete" in out
    study = optuna.load_study(storage=storage, study_name="grid")
    points = [
        tuple(sorted(t.params.items())) for t in study.get_trials(states=(TrialState.COMPLETE,))
    ]
    assert len(points) == 8 and len(set(points)) == 8
    best = results(tmp_path / "all")
    assert best["best_value"] == 1 and abs(best["best_params"]["x"]) == 1
    assert best["best_params"]["y"] == 0


def test_grid_workers_seeded_apart_share_one_grid(tmp_path):
    """Workers seeded apart (as `make sweep WORKERS=2` seeds them) shuffle Optuna's grid apart, so
    a grid_id names different points in each; interleaved on one SQLite study they must still
    cover every point once, including while the other worker's trial is running."""
    from lstm_tweets.sweeper import ResumableGridSampler

    space = {"a": [1, 2, 3], "b": ["x", "y"]}
    storage = f"sqlite:///{tmp_path / 'grid.db'}"
    workers = [
        optuna.create_study(
            study_name="g",
            storage=storage,
            sampler=ResumableGridSampler(space, seed=seed),
            load_if_exists=True,
        )
        for seed in (1, 2)
    ]
    assert workers[0].sampler._all_grids != workers[1].sampler._all_grids  # the premise
    points = []
    for _ in range(3):
        running = []
        for study in workers:  # both ask before either tells: a point is running, not done
            trial = study.ask()
            running.append(
                (
                    study,
                    trial,
                    (
                        trial.suggest_categorical("a", space["a"]),
                        trial.suggest_categorical("b", space["b"]),
                    ),
                )
            )
        for study, trial, point in running:
            study.tell(trial, 0.0)
            points.append(point)
    assert sorted(points) == sorted((a, b) for a in space["a"] for b in space["b"])


@pytest.mark.parametrize("skip_repeats", [True, False])
def test_tpe_repeats_are_replaced_by_untried_points(sphere, tmp_path, skip_repeats):
    """TPE on a space of choices proposes its best point again and again; each repeat would train
    the same model again. With skip_repeats (the default) every counted trial is a new point and
    the repeats are dropped (FAIL, `dropped`: samplers ignore them); without it they run."""
    storage = f"sqlite:///{tmp_path / 'repeats.db'}"
    run(
        sphere,
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        f"hydra.sweeper.storage={storage}",
        f"hydra.sweeper.skip_repeats={skip_repeats}",
        "hydra.sweeper.study_name=repeats",
        "hydra.sweeper.n_trials=12",
        "hydra.sweeper.sampler.seed=0",
        "hydra.sweeper.sampler.n_startup_trials=2",
        "x=choice(-2, -1, 0, 1, 2)",  # 15 points in all: TPE soon proposes its best again
        "y=choice(-1, 0, 1)",
    )
    study = optuna.load_study(storage=storage, study_name="repeats")
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    points = [tuple(sorted(t.params.items())) for t in complete]
    dropped = [t for t in study.trials if "repeats trial" in t.user_attrs.get("dropped", "")]
    assert len(complete) == 12
    if skip_repeats:
        assert len(set(points)) == 12, points
        assert dropped and all(t.state == TrialState.FAIL for t in dropped)
        assert not study.get_trials(states=(TrialState.PRUNED,))
        counted = results(tmp_path / "sweep")
        assert counted["n_failed"] == 0 and counted["n_dropped"] == len(dropped)
    else:
        assert len(set(points)) < 12 and not dropped  # the behaviour the option exists to stop


# ---- the plugin's multi-objective example -----------------------------------------------------
@pytest.mark.parametrize("with_commandline", [True, False])
def test_multi_objective(tmp_path, with_commandline):
    app = write_app(tmp_path / "mo", BINH_AND_KORN, MULTI_OBJECTIVE_CONFIG)
    cmd = [
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        "hydra.sweeper.n_trials=12",
        "hydra.sweeper.n_jobs=1",
        "hydra/sweeper/sampler=random",
        "hydra.sweeper.sampler.seed=123",
    ]
    if with_commandline:
        cmd += ["x=range(0, 5)", "y=range(0, 3)"]
    run(app, *cmd)
    returns = results(tmp_path / "sweep")
    assert returns["name"] == "optuna" and "best_value" not in returns
    solutions = returns["solutions"]
    assert solutions and all(set(s) == {"params", "values"} for s in solutions)
    for a in solutions:
        assert len(a["values"]) == 2
        if with_commandline:
            assert a["params"]["x"] % 1 == 0 and a["params"]["y"] % 1 == 0
        else:
            assert a["params"]["x"] % 1 in {0, 0.5} and a["params"]["y"] % 1 in {0, 0.5}
        for b in solutions:  # a front: no solution dominates another
            assert not dominates(a["values"], b["values"])
    assert returns["directions"] == ["minimize", "minimize"]
    assert (tmp_path / "sweep" / "optuna" / "pareto_front.png").stat().st_size > 10_000


def test_multi_objective_nsgaii_with_sqlite_storage(tmp_path):
    """The example's own config (NSGA-II), stored: the study has both directions, the front in
    the results is the study's, and a re-run with a larger total continues it."""
    app = write_app(tmp_path / "mo", BINH_AND_KORN, MULTI_OBJECTIVE_CONFIG)
    storage = f"sqlite:///{tmp_path / 'mo.db'}"
    run(
        app,
        f"hydra.sweep.dir={tmp_path / 'a'}",
        f"hydra.sweeper.storage={storage}",
        "hydra.sweeper.n_trials=6",
    )
    run(
        app,
        f"hydra.sweep.dir={tmp_path / 'b'}",
        f"hydra.sweeper.storage={storage}",
        "hydra.sweeper.n_trials=9",
    )
    study = optuna.load_study(storage=storage, study_name="multi-objective")
    assert [d.name for d in study.directions] == ["MINIMIZE", "MINIMIZE"]
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 9
    front = sorted(tuple(s["values"]) for s in results(tmp_path / "b")["solutions"])
    assert front == sorted(tuple(t.values) for t in study.best_trials)

    # the stored study keeps its two objectives: a single-objective sweep on it is refused
    out = run(
        app,
        f"hydra.sweep.dir={tmp_path / 'c'}",
        f"hydra.sweeper.storage={storage}",
        "hydra.sweeper.direction=minimize",
        expect_ok=False,
    )
    assert "was created with direction ['minimize', 'minimize']" in out


def test_multi_objective_return_must_match_the_directions(tmp_path):
    app = write_app(tmp_path / "mo", BINH_AND_KORN, MULTI_OBJECTIVE_CONFIG)
    out = run(
        app,
        f"hydra.sweep.dir={tmp_path / 's'}",
        "hydra.sweeper.direction=[minimize,minimize,maximize]",
        "hydra.sweeper.n_trials=2",
        expect_ok=False,
    )
    assert "Expect 3, but actually 2" in out


# ---- the plugin's custom search space example --------------------------------------------------
def test_custom_search_space(sphere, tmp_path):
    run(
        sphere,
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        "hydra.sweeper.n_trials=8",
        "hydra/sweeper/sampler=random",
        "hydra.sweeper.sampler.seed=123",
        "hydra.sweeper.custom_search_space=__main__.configure",
        "max_z_difference_from_x=0.3",
    )
    best = results(tmp_path / "sweep")["best_params"]
    assert abs(best["x"] - best["z"]) <= 0.3
    assert 0 <= best["+w"] <= 1


# ---- the override grammar: range, interval, tag(log, ...), int(...), choice -------------------
def test_search_space_grammar(sphere, tmp_path):
    storage = f"sqlite:///{tmp_path / 'grammar.db'}"
    run(
        sphere,
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        f"hydra.sweeper.storage={storage}",
        "hydra.sweeper.n_trials=3",
        "x=tag(log, interval(0.01, 1.0))",
        "y=int(interval(-3, 3))",
        "+a=range(1, 10, step=2)",
        "+b=tag(log, int(interval(1, 100)))",
        "+c=choice('hello', 'world')",
        "+d=range(0.5, 2.5, step=0.5)",
    )
    trial = optuna.load_study(storage=storage, study_name="sphere").trials[0]
    d = trial.distributions
    assert d["x"] == FloatDistribution(0.01, 1.0, log=True)
    assert d["y"] == IntDistribution(-3, 3)
    assert d["+a"] == IntDistribution(1, 9, step=2)
    assert d["+b"] == IntDistribution(1, 100, log=True)
    assert isinstance(d["+c"], CategoricalDistribution) and set(d["+c"].choices) == {
        "hello",
        "world",
    }
    assert d["+d"] == FloatDistribution(0.5, 2.0, step=0.5)


# ---- n_jobs: trials are launched in batches --------------------------------------------------
def test_n_jobs_batches(sphere, tmp_path):
    out = run(
        sphere,
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        "hydra.sweeper.n_trials=8",
        "hydra.sweeper.n_jobs=3",
        "hydra/sweeper/sampler=random",
    )
    assert out.count("Launching 3 jobs locally") == 2 and out.count("Launching 2 jobs locally") == 1
    assert len(list((tmp_path / "sweep").glob("[0-9]*"))) == 8


# ---- the plugin's failure-rate test ------------------------------------------------------------
def test_failure_rate_exceeded_stops_the_sweep(sphere, tmp_path):
    out = run(
        sphere,
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        "hydra.sweeper.n_jobs=2",
        "hydra/sweeper/sampler=random",
        "hydra.sweeper.sampler.seed=123",
        "hydra.sweeper.max_failure_rate=0.5",
        "+error=true",
        expect_ok=False,
    )
    assert "RuntimeError: cfg.error is True" in out
    assert "2 trial(s) failed (max_failure_rate=0.5)" in out


def test_tolerated_failures_are_replaced(sphere, tmp_path):
    """max_failure_rate=1.0 tolerates failing trials; with n_trials counting completed trials,
    the failed ones are replaced until 6 complete."""
    storage = f"sqlite:///{tmp_path / 'fail.db'}"
    out = run(
        sphere,
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        f"hydra.sweeper.storage={storage}",
        "hydra.sweeper.n_trials=6",
        "hydra.sweeper.n_jobs=2",
        "hydra/sweeper/sampler=random",
        "hydra.sweeper.sampler.seed=123",
        "hydra.sweeper.max_failure_rate=1.0",
        "+error=true",
        "+fail_below=0",  # about half the x range fails
    )
    study = optuna.load_study(storage=storage, study_name="sphere")
    states = [t.state for t in study.trials]
    assert states.count(TrialState.COMPLETE) == 6
    # A random point that repeats a tried one is told FAIL as `dropped` without running
    # (skip_repeats); only the others ran and failed.
    failed = [
        t for t in study.get_trials(states=(TrialState.FAIL,)) if "dropped" not in t.user_attrs
    ]
    assert failed
    assert out.count("Failed experiment") == len(failed)
    assert all(t.params["x"] > 0 for t in study.get_trials(states=(TrialState.COMPLETE,)))
    assert results(tmp_path / "sweep")["n_failed"] == len(failed)


# ---- pruners: a config group beside the sampler -----------------------------------------------
@pytest.mark.parametrize(
    ("option", "kind"),
    [
        ("nop", "NopPruner"),
        ("median", "MedianPruner"),
        ("percentile", "PercentilePruner"),
        ("successive_halving", "SuccessiveHalvingPruner"),
        ("hyperband", "HyperbandPruner"),
    ],
)
def test_every_pruner_option_builds(option, kind):
    from hydra import compose, initialize_config_dir

    from lstm_tweets.sweeper import make_pruner

    conf = Path(__file__).resolve().parents[1] / "lstm_tweets" / "conf"
    with initialize_config_dir(config_dir=str(conf)):
        cfg = compose(
            "train",
            ["hparams_search=optuna", f"hydra/sweeper/pruner={option}"],
            return_hydra_config=True,
        )
    assert type(make_pruner(cfg.hydra.sweeper.pruner)).__name__ == kind
    assert cfg.optuna_trial.number is None  # filled per trial by the sweeper


def test_pruning_needs_one_objective_and_a_storage(sphere, tmp_path):
    app = write_app(tmp_path / "mo", BINH_AND_KORN, MULTI_OBJECTIVE_CONFIG)
    out = run(
        app, f"hydra.sweep.dir={tmp_path / 'a'}", "hydra/sweeper/pruner=median", expect_ok=False
    )
    assert "Optuna prunes single-objective studies only" in out
    out = run(
        sphere,
        f"hydra.sweep.dir={tmp_path / 'b'}",
        "hydra/sweeper/pruner=hyperband",
        expect_ok=False,
    )
    assert "pruning needs a storage" in out
    assert "Launching" not in out

"""A Hydra sweeper plugin (entry point in pyproject.toml): the Optuna sweeper, made to survive crashes and to share a study between workers.

`hydra/sweeper=resumable_optuna` is the plugin's sweeper with these changes:
- `n_trials` is the study's TOTAL of finished trials (COMPLETE, and PRUNED by a pruner), read
  from the storage before each batch. Re-running a crashed sweep finishes the same study; several
  workers (processes or machines) sharing one storage stop together when the total is reached (one
  that gets there while others' trials still run waits for them, and redoes any that fails).
- Each trial records its owner process (host, boot id, pid, start time) and Optuna heartbeats
  while it runs. A trial whose process died (kill -9) is marked failed at once by the next run on
  the same machine (its owner is gone), or once its heartbeats stop (another machine's, with
  `optuna.storages.fail_stale_trials`); only finished trials count, so that one is redone and no
  completed one is.
- The storage is opened before any training starts, so a bad URL fails at once and clearly.
- With `hydra/sweeper/sampler=grid`, a grid point is done only once a trial COMPLETEs it: a
  resumed sweep redoes the failed point and repeats no completed one (ResumableGridSampler).
- Several objectives work as in the plugin (`hydra.sweeper.direction: [maximize, minimize]`, any
  multi-objective sampler; the app returns one value per objective, e.g. a list in
  `optimized_metric`), with all of the above; `optimization_results.yaml` then lists the Pareto
  front as `solutions` and `optuna/pareto_front.png` plots it.
- Pruning: `hydra/sweeper/pruner=median|percentile|successive_halving|hyperband|nop`. Each job
  gets its trial's identity in `optuna_trial` (app config); lstm_tweets/pruning.py reports from
  inside the Lightning run and records when the pruner stops it; the sweeper tells it PRUNED.
- When the sweep ends, `<sweep dir>/optuna/` gets the study's plots and `best.yaml`
  (lstm_tweets/sweep_report.py).
A sweep whose trials all fail stops with a summary of the errors instead of retrying forever.
Everything else is the plugin's: the `params` grammar (choice, range, interval, tag(log, ...)),
fixed parameters, `~key` deletions, `custom_search_space`, `n_jobs` batches, `max_failure_rate`.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import random
import socket
import threading
import time
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy
from hydra.core.config_store import ConfigStore
from hydra.core.utils import JobReturn
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from hydra.utils import execution_whitelist, instantiate
from hydra_plugins.hydra_optuna_sweeper._impl import OptunaSweeperImpl, create_params_from_overrides
from hydra_plugins.hydra_optuna_sweeper.config import OptunaSweeperConf
from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf
from optuna.trial import TrialState

from lstm_tweets.cells import quoted

log = logging.getLogger(__name__)


@dataclass
class PrunerConfig:
    _target_: str = MISSING


@dataclass
class NopPrunerConfig(PrunerConfig):
    """Every trial runs all its epochs (the default)."""

    _target_: str = "optuna.pruners.NopPruner"


@dataclass
class MedianPrunerConfig(PrunerConfig):
    """https://optuna.readthedocs.io/en/stable/reference/generated/optuna.pruners.MedianPruner.html"""

    _target_: str = "optuna.pruners.MedianPruner"
    n_startup_trials: int = 5
    n_warmup_steps: int = 0
    interval_steps: int = 1
    n_min_trials: int = 1


@dataclass
class PercentilePrunerConfig(PrunerConfig):
    """https://optuna.readthedocs.io/en/stable/reference/generated/optuna.pruners.PercentilePruner.html"""

    _target_: str = "optuna.pruners.PercentilePruner"
    percentile: float = 25.0
    n_startup_trials: int = 5
    n_warmup_steps: int = 0
    interval_steps: int = 1
    n_min_trials: int = 1


@dataclass
class SuccessiveHalvingPrunerConfig(PrunerConfig):
    """https://optuna.readthedocs.io/en/stable/reference/generated/optuna.pruners.SuccessiveHalvingPruner.html"""

    _target_: str = "optuna.pruners.SuccessiveHalvingPruner"
    min_resource: Any = "auto"
    reduction_factor: int = 4
    min_early_stopping_rate: int = 0
    bootstrap_count: int = 0


@dataclass
class HyperbandPrunerConfig(PrunerConfig):
    """https://optuna.readthedocs.io/en/stable/reference/generated/optuna.pruners.HyperbandPruner.html"""

    _target_: str = "optuna.pruners.HyperbandPruner"
    min_resource: int = 1
    max_resource: Any = "auto"
    reduction_factor: int = 3
    bootstrap_count: int = 0


@dataclass
class ResumableOptunaSweeperConf(OptunaSweeperConf):
    _target_: str = "lstm_tweets.sweeper.ResumableOptunaSweeper"
    defaults: list[Any] = field(default_factory=lambda: [{"sampler": "tpe"}, {"pruner": "nop"}])
    # hydra/sweeper/pruner=median|percentile|successive_halving|hyperband|nop: trials report the
    # optimized metric after every validation, and the pruner may stop them early.
    pruner: Any = MISSING
    heartbeat_interval: int = 30  # seconds between heartbeats of a running trial
    grace_period: int | None = None  # a trial silent this long is stale (default: 2 intervals)
    # A trial whose parameters a finished or running trial already has is dropped and replaced by
    # an untried point: a run's seed is fixed, so the repeat would train the same model again
    # (TPE on a space of choices proposes its best point again and again).
    skip_repeats: bool = True


ConfigStore.instance().store(
    group="hydra/sweeper",
    name="resumable_optuna",
    node=ResumableOptunaSweeperConf,
    provider="lstm_tweets",
)
for _name, _node in {
    "nop": NopPrunerConfig,
    "median": MedianPrunerConfig,
    "percentile": PercentilePrunerConfig,
    "successive_halving": SuccessiveHalvingPrunerConfig,
    "hyperband": HyperbandPrunerConfig,
}.items():
    ConfigStore.instance().store(
        group="hydra/sweeper/pruner", name=_name, node=_node, provider="lstm_tweets"
    )


# What a sampler config's `_target_` may name (Hydra's execution whitelist): Optuna's samplers and
# the plugin's factories for them.
SAMPLER_TARGETS = ("hydra_plugins.hydra_optuna_sweeper.*", "optuna.samplers.*")
PRUNER_TARGETS = ("optuna.pruners.*",)
# Trial system attributes: the process that runs the trial, and the epoch a pruned run stopped at.
OWNER_ATTR = "lstm_tweets:owner"
PRUNED_ATTR = "lstm_tweets:pruned_epoch"


class SweepFailed(RuntimeError):
    pass


def make_pruner(cfg: Any) -> optuna.pruners.BasePruner:
    """The sweep's pruner from its config (hydra.sweeper.pruner), only from `optuna.pruners`;
    NopPruner if none. The sweeper and each trial's job (lstm_tweets/pruning.py) build it here."""
    if not cfg:
        return optuna.pruners.NopPruner()
    with execution_whitelist(PRUNER_TARGETS):
        return instantiate(cfg)


def safe_url(url: str) -> str:
    """The storage URL with any password masked, for messages."""
    try:
        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("@")[-1]


def with_driver(url: str) -> str:
    """`postgresql://` with a driver that is installed: SQLAlchemy 2.1 made psycopg (3) the default
    for a bare `postgresql://`, while this project installs psycopg2."""
    parsed = sqlalchemy.engine.make_url(url)
    if parsed.drivername == "postgresql":
        try:
            import psycopg  # noqa: F401
        except ImportError:
            return parsed.set(drivername="postgresql+psycopg2").render_as_string(
                hide_password=False
            )
    return url


def open_storage(url: str | None, heartbeat_interval: int | None, grace_period: int | None):
    """An RDB storage with heartbeats, opened now so that an unreachable URL fails before training.
    heartbeat_interval=None: without heartbeats (a trial's job reporting to its study)."""
    if url is None:
        log.warning(
            "hydra.sweeper.storage is null: the study lives in memory and cannot be resumed"
        )
        return None
    url = str(url)
    engine_kwargs: dict[str, Any] = {"pool_pre_ping": True}
    for attempt in range(1, 6):
        try:
            if url.startswith("sqlite"):
                engine_kwargs["connect_args"] = {
                    "timeout": 60
                }  # workers wait for each other's writes
                database = sqlalchemy.engine.make_url(url).database
                if database and database != ":memory:" and not database.startswith("file:"):
                    # a fresh clone has no outputs/ for the default sqlite:///outputs/optuna.db
                    Path(database).parent.mkdir(parents=True, exist_ok=True)
            beats = (
                {}
                if heartbeat_interval is None
                else {
                    "heartbeat_interval": heartbeat_interval,
                    "grace_period": grace_period or 2 * heartbeat_interval,
                }
            )
            with warnings.catch_warnings():  # heartbeat_interval is "experimental" since Optuna 2.9
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(
                    with_driver(url), engine_kwargs=engine_kwargs, **beats
                )
        except Exception as err:
            if attempt < 5 and creating_concurrently(err):
                # Workers started together on a new database both create its tables; the loser
                # finds them made ("already exists", a UNIQUE failure) and opens them next time.
                log.info(
                    f"Optuna storage busy being created by another worker; retrying: {err!r:.200}"
                )
                time.sleep(0.5 * attempt)
                continue
            first_line = (str(err).strip().splitlines() or [""])[0].rstrip(".")
            raise SweepFailed(
                f"Optuna storage '{safe_url(url)}' cannot be opened: {type(err).__name__}: "
                f"{first_line}. Check hydra.sweeper.storage."
            ) from None


def creating_concurrently(err: Exception) -> bool:
    """Whether opening a storage failed because another process was creating its schema."""
    if isinstance(err, sqlalchemy.exc.IntegrityError):
        return True
    text = str(err).lower()
    return isinstance(err, sqlalchemy.exc.OperationalError) and (
        "already exists" in text or "database is locked" in text
    )


class ResumableGridSampler(optuna.samplers.GridSampler):
    """The grid sampler, made to resume and to share: a grid point is done only once a trial
    COMPLETEs it, and points are told apart by their values.

    Optuna's GridSampler gives trial number k the k-th point without looking at the storage and
    treats a FAILED point as visited, so after a crash it repeats completed points and never
    redoes the failed one. It also shuffles its grid by its seed, so the same `grid_id` names
    different points in workers seeded differently (`make sweep WORKERS=2` seeds each worker
    apart): two workers ran one point twice and skipped another. This one picks, at random, a
    point that no trial has completed and none is running, compared by value (the `grid_point`
    it records, or a finished trial's params); it never calls `study.stop()` (which raises
    outside `Study.optimize`).
    """

    def __init__(self, search_space, seed: int | None = None) -> None:
        super().__init__(search_space, seed=seed)
        self._pick = random.Random()  # not seeded: workers sharing a study should not pick alike

    def point_of(self, trial: optuna.trial.FrozenTrial) -> tuple | None:
        """The grid point a trial evaluates, as values in this grid's (sorted) parameter order."""
        point = trial.system_attrs.get("grid_point")
        if point is not None:
            return tuple(point)
        if trial.params and set(trial.params) == set(self._param_names):
            return tuple(trial.params[name] for name in self._param_names)
        return None

    def before_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if "grid_id" in trial.system_attrs or "fixed_params" in trial.system_attrs:
            return
        index = {point: i for i, point in enumerate(self._all_grids)}
        complete, running = set(), set()
        for other in study._storage.get_all_trials(study._study_id, deepcopy=False):
            point = self.point_of(other) if other.number != trial.number else None
            if point not in index:  # another search space, or no point yet
                continue
            if counts(other):  # COMPLETE, or pruned: the pruner judged that point
                complete.add(index[point])
            elif other.state == TrialState.RUNNING:
                running.add(index[point])
        every = set(range(len(self._all_grids)))
        todo = sorted(every - complete - running) or sorted(every - complete) or sorted(every)
        grid_id = self._pick.choice(todo)
        study._storage.set_trial_system_attr(trial._trial_id, "search_space", self._search_space)
        study._storage.set_trial_system_attr(trial._trial_id, "grid_id", grid_id)
        study._storage.set_trial_system_attr(
            trial._trial_id, "grid_point", list(self._all_grids[grid_id])
        )

    def after_trial(self, study, trial, state, values) -> None:
        pass


def point(params: dict) -> tuple:
    """A parameter set, comparable and hashable."""
    return tuple(sorted(params.items()))


def unbeaten_trial_ids(storage: optuna.storages.RDBStorage, study_id: int) -> list[int]:
    """RUNNING trials that never recorded a heartbeat and started longer than the grace period ago.

    Every trial of this sweeper records a heartbeat right after `study.ask()`; one without any
    died in between (a kill at the wrong millisecond), and Optuna's `fail_stale_trials` would
    leave it RUNNING forever. `datetime_start` is the asking client's clock.
    """
    from optuna.storages._rdb import models

    grace = timedelta(seconds=storage.grace_period or 2 * storage.heartbeat_interval)
    now = datetime.now()
    old = {
        t._trial_id
        for t in storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,))
        if t.datetime_start is not None and now - t.datetime_start > grace
    }
    if not old:
        return []
    session = storage.scoped_session()
    try:
        beaten = {
            row[0]
            for row in session.query(models.TrialHeartbeatModel.trial_id).filter(
                models.TrialHeartbeatModel.trial_id.in_(old)
            )
        }
        session.commit()
    finally:
        session.close()
    return sorted(old - beaten)


def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


def _process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), which tells a reused pid from
    the original; None where /proc is not there."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return None if fields[0] == "Z" else fields[19]  # a zombie has finished


def owner_record() -> dict:
    """Who runs a trial: this machine (host name and boot id) and this process (pid, start)."""
    pid = os.getpid()
    return {
        "host": socket.gethostname(),
        "boot": _boot_id(),
        "pid": pid,
        "start": _process_start(pid),
    }


def owner_is_gone(owner: dict | None) -> bool:
    """True when the trial's owning process is known to be dead: it ran on this machine since its
    last boot and its pid is gone, a zombie, or now another process. On another machine (or
    unknown) False: there only its heartbeats stopping tell."""
    if not owner or owner.get("host") != socket.gethostname():
        return False
    if owner.get("boot") is None or owner.get("boot") != _boot_id():
        return False
    pid = int(owner["pid"])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # alive, another user's
    start = _process_start(pid)
    if start is None:
        return Path("/proc").is_dir()  # /proc is there but not this pid: a zombie, or gone
    return owner.get("start") is not None and start != owner["start"]


def orphaned_trial_ids(study: optuna.Study) -> list[int]:
    """RUNNING trials whose owner process on this machine is dead (kill -9): known failed at once,
    without waiting for their heartbeats to go stale."""
    return [
        t._trial_id
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        if owner_is_gone(t.system_attrs.get(OWNER_ATTR))
    ]


def counts(trial: optuna.trial.FrozenTrial) -> bool:
    """Whether a finished trial counts toward n_trials: COMPLETE, or PRUNED by the pruner (a trial
    dropped as one too many, told PRUNED, does not)."""
    return trial.state == TrialState.COMPLETE or (
        trial.state == TrialState.PRUNED and "dropped" not in trial.user_attrs
    )


class Heartbeat:
    """Records a heartbeat for each running trial every interval, on a background thread."""

    def __init__(self, storage, trials, interval: int):
        self.storage, self.trials, self.interval = storage, trials, interval
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.beat, daemon=True)

    def beat(self) -> None:
        while not self.stop.is_set():
            for trial in self.trials:
                try:
                    self.storage.record_heartbeat(trial._trial_id)
                except Exception as err:  # a busy database must not end the heartbeat
                    log.warning(
                        f"heartbeat of trial {trial.number} not recorded: {type(err).__name__}: {err}"
                    )
            self.stop.wait(self.interval)

    def __enter__(self):
        if self.storage is not None:
            self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join()


# Keys that change which tweets get which label: across their values the validation base rate
# moves, so plain accuracy rewards the most lopsided labels rather than the best model.
LABEL_KEYS = (
    "data",
    "data.interval",
    "data.target",
    "data.window_start",
    "data.ties",
    "data.dead_band_bps",
    "data.include_retweets",
)


def warn_if_comparing_base_rates(metrics: list[str] | None, swept: list[str]) -> None:
    varied = [key for key in swept if key in LABEL_KEYS]
    plain = [m for m in metrics or [] if m in ("val/acc", "val_acc")]
    if plain and varied:
        log.warning(
            f"optimized_metric={plain[0]} while the sweep varies the labels ({', '.join(varied)}): "
            "the validation base rate differs between trials, so plain accuracy prefers the most "
            "lopsided labels. Optimize val/acc_lift (accuracy minus the split's majority share) "
            "instead: optimized_metric=val/acc_lift"
        )


def objective_names(metric: Any, n_directions: int) -> list[str] | None:
    """The app's `optimized_metric` as a list, checked against `hydra.sweeper.direction` before
    anything trains. None for an app without that key (only its return value is known)."""
    if metric is None:
        return None
    names = (
        [str(m) for m in metric] if isinstance(metric, list | tuple | ListConfig) else [str(metric)]
    )
    if len(names) != n_directions:
        raise SweepFailed(
            f"optimized_metric={names} has {len(names)} metric(s) but hydra.sweeper.direction has "
            f"{n_directions}: give one direction per metric, e.g. optimized_metric=[val/acc_lift,"
            f"train/wall_time_s] with hydra.sweeper.direction=[maximize,minimize]"
        )
    return names


def objective_values(returned: Any, n_objectives: int) -> list[float]:
    """A job's return value as the trial's values, with the plugin's messages; reading
    `JobReturn.return_value` re-raises the job's own exception."""
    if n_objectives == 1:
        try:
            values = [float(returned)]
        except (ValueError, TypeError):
            raise ValueError(f"Return value must be float-castable. Got '{returned}'.") from None
    else:
        try:
            values = [float(v) for v in returned]
        except (ValueError, TypeError):
            raise ValueError(
                f"Return value must be a list or tuple of float-castable values. Got '{returned}'."
            ) from None
        if len(values) != n_objectives:
            raise ValueError(
                "The number of the values and the number of the objectives are mismatched."
                f" Expect {n_objectives}, but actually {len(values)}."
            )
    bad = [v for v in values if not math.isfinite(v)]
    if bad:
        raise ValueError(f"objective is {bad[0] if n_objectives == 1 else values}")
    return values


def check_directions(study: optuna.Study, directions: list[str], storage) -> None:
    """A loaded study keeps the directions it was created with (Optuna ignores the ones asked for):
    a sweep that asks for others must use another study instead of mixing objectives."""
    stored = [d.name.lower() for d in study.directions]
    if stored != [d.lower() for d in directions]:
        raise SweepFailed(
            f"Study '{study.study_name}' in {safe_url(storage.url) if storage else 'memory'} was "
            f"created with direction {stored}, and this sweep asks for {directions}: give it "
            f"another hydra.sweeper.study_name (or study=...)"
        )


@dataclass
class SweepState:
    """What one sweep works with once its study is open: the study and its storage (None: in
    memory), n_trials (capped at the grid's size), the search space as the plugin splits it, the
    directions and the objectives' names, and the failures and completions so far."""

    study: optuna.Study
    storage: optuna.storages.RDBStorage | None
    total: int
    distributions: dict[str, Any]
    fixed_params: dict[str, Any]
    fixed_overrides: list[str]
    directions: list[str]
    metrics: list[str] | None
    failures: list[str] = field(default_factory=list)
    completed: int = 0


class ResumableOptunaSweeperImpl(OptunaSweeperImpl):
    def __init__(
        self,
        *args,
        pruner: optuna.pruners.BasePruner | None = None,
        heartbeat_interval: int = 30,
        grace_period: int | None = None,
        skip_repeats: bool = True,
    ):
        super().__init__(*args)
        self.pruner = pruner or optuna.pruners.NopPruner()
        self.heartbeat_interval, self.grace_period = heartbeat_interval, grace_period
        self.skip_repeats = skip_repeats

    def sweep(self, arguments: list[str]) -> None:
        """Open the study, then ask for a batch of trials, launch their jobs and tell the study
        their results until it has n_trials finished; then save the results and plots."""
        state = self.open_study(arguments)
        while (trials := self.ask_batch(state)) is not None:
            returns = self.launch_batch(state, trials)
            self.tell_batch(state, trials, returns)
        self.save_results(state.study, state.metrics)

    def open_study(self, arguments: list[str]) -> SweepState:
        """Before anything trains: parse the search space (the sweeper's params plus the command
        line's), check the objectives and the pruner against it, open the storage (a bad URL
        fails here) and create or load the study. A loaded study must have the same directions;
        its stale trials are failed, and the sampler is reseeded so that it does not repeat them."""
        self._process_searchspace_config()
        params_conf = self._parse_sweeper_params_config() + list(arguments)
        distributions, fixed_params, fixed_overrides = create_params_from_overrides(params_conf)
        total = self.n_trials
        if (
            isinstance(self.sampler, functools.partial)
            and self.sampler.func == optuna.samplers.GridSampler
        ):
            grid = {name: self._to_grid_sampler_choices(d) for name, d in distributions.items()}
            self.sampler = ResumableGridSampler(grid, *self.sampler.args, **self.sampler.keywords)
            total = min(total, math.prod(len(v) for v in grid.values()))
        for name in fixed_params:
            distributions.pop(name, None)
        directions = [str(d) for d in self._get_directions()]
        metrics = objective_names(self.config.get("optimized_metric"), len(directions))
        warn_if_comparing_base_rates(metrics, list(distributions))
        self.check_pruner(len(directions))

        storage = open_storage(self.storage, self.heartbeat_interval, self.grace_period)
        study = optuna.create_study(
            study_name=self.study_name,
            storage=storage,
            sampler=self.sampler,
            pruner=self.pruner,
            directions=directions,
            load_if_exists=True,
        )
        check_directions(study, directions, storage)
        self.fail_stale(study, storage)
        if study.get_trials(deepcopy=False) and not isinstance(self.sampler, ResumableGridSampler):
            # A seeded sampler would replay the first run's draws (TPE's startup trials are plain
            # random draws from `seed`) and repeat its parameter sets.
            self.sampler.reseed_rng()
            log.info(
                "The study has trials already: the sampler is reseeded so that it does not repeat them"
            )
        log.info(
            f"Study {study.study_name} in {safe_url(storage.url) if storage else 'memory'}: "
            f"{self.finished(study)} of {total} trials complete"
        )
        return SweepState(
            study, storage, total, distributions, fixed_params, fixed_overrides, directions, metrics
        )

    def check_pruner(self, n_objectives: int) -> None:
        """A pruner needs one objective and a storage that the jobs reach; without the app's
        `optuna_trial` key it prunes nothing (a warning)."""
        if isinstance(self.pruner, optuna.pruners.NopPruner):
            return
        if n_objectives > 1:
            raise SweepFailed(
                f"hydra/sweeper/pruner={type(self.pruner).__name__} with {n_objectives} "
                "objectives: Optuna prunes single-objective studies only. Use "
                "hydra/sweeper/pruner=nop, or one optimized_metric and one direction"
            )
        if self.storage is None:
            raise SweepFailed(
                "pruning needs a storage that the trials' jobs can reach: set "
                "hydra.sweeper.storage (e.g. sqlite:///outputs/optuna.db)"
            )
        if "optuna_trial" not in self.config:
            log.warning(
                "a pruner is set but the app's config has no `optuna_trial` key: its jobs cannot "
                "report to their trials, and none will be pruned"
            )

    def ask_batch(self, state: SweepState) -> list[optuna.Trial] | None:
        """The next batch of at most n_jobs new trials, each with a first heartbeat and its owner
        recorded; None once the study has n_trials finished and none running.

        A crashed run's or worker's trial is failed first (and so redone), not waited for. When
        the trials still to go are all running in other processes (other workers, or a crashed
        run whose trial is not known dead yet), this waits for them and redoes any that fails, so
        that the study has exactly n_trials when the sweep ends. A trial asked for at the same
        moment as another worker's, one too many, is told PRUNED as `dropped`; one that repeats a
        tried point (`skip_repeats`) is told FAIL as `dropped`, and an untried point takes its
        place."""
        study, storage, total = state.study, state.storage, state.total
        waiting = False
        while True:
            self.fail_stale(study, storage)
            running = self.count(study, TrialState.RUNNING)
            to_go = total - self.finished(study) - running
            if to_go <= 0:
                if running == 0 or storage is None:
                    return None
                if not waiting:
                    waiting = True
                    log.info(f"Waiting for {running} running trial(s) of other processes")
                # A short poll: this worker's process (and `make sweep`) ends as soon as the
                # last trial does; a few cheap storage reads a second cost nothing.
                time.sleep(0.5)
                continue
            waiting = False
            trials = []
            while len(trials) < min(self.n_jobs, to_go):
                trial = self.ask(study)
                if storage is not None:
                    storage.record_heartbeat(trial._trial_id)  # from now on a crash leaves it stale
                    storage.set_trial_system_attr(trial._trial_id, OWNER_ATTR, owner_record())
                surplus = self.surplus(study, trial, total)
                repeat = None if surplus else self.repeats(state, trial)
                if surplus:  # another worker asked at the same moment
                    log.info(f"Trial {trial.number} dropped: {surplus}")
                    trial.set_user_attr("dropped", surplus)
                    study.tell(trial, state=TrialState.PRUNED)
                    break  # the study is full for now: count again
                if repeat:
                    # FAIL, not PRUNED: samplers ignore failed trials (TPE would score a pruned
                    # trial without values as the worst, punishing the best region), and the
                    # storage's COMPLETE + PRUNED stays n_trials.
                    log.info(f"Trial {trial.number} dropped: {repeat}")
                    trial.set_user_attr("dropped", repeat)
                    study.tell(trial, state=TrialState.FAIL)
                    continue
                trials.append(trial)
            if trials:
                return trials

    def repeats(self, state: SweepState, trial: optuna.Trial) -> str | None:
        """Why a just-asked trial repeats another (its parameters are those of a finished or
        running trial), or None; a repeat's place goes to an untried point, enqueued for the
        next ask. The grid sampler never repeats; a point asked for again after it FAILED is
        redone (not a repeat); and a space whose every point is tried lets repeats run."""
        if not self.skip_repeats or isinstance(state.study.sampler, ResumableGridSampler):
            return None
        self._configure_trials([trial], state.distributions, state.fixed_params, [])
        tried = {}
        for other in state.study.get_trials(deepcopy=False):
            if other.number != trial.number and (
                other.state == TrialState.RUNNING or (other.state.is_finished() and counts(other))
            ):
                tried.setdefault(point(other.params), other.number)
        same = tried.get(point(trial.params))
        if same is None:
            return None
        untried = self.untried_point(state, tried)
        if untried is None:
            return None  # every point of the space is tried: run it again
        state.study.enqueue_trial(untried, skip_if_exists=True)
        return f"repeats trial {same}'s parameters; an untried point takes its place"

    @staticmethod
    def untried_point(state: SweepState, tried: dict, draws: int = 200) -> dict | None:
        """A point of the search space that no trial has, drawn at random (None if none is
        found in `draws` draws: the space is used up, or nearly)."""
        sampler = optuna.samplers.RandomSampler()
        frozen = optuna.trial.create_trial(state=TrialState.RUNNING)
        for _ in range(draws):
            params = {
                name: sampler.sample_independent(state.study, frozen, name, distribution)
                for name, distribution in state.distributions.items()
            }
            if point(params) not in tried:
                return params
        return None

    def launch_batch(self, state: SweepState, trials: list[optuna.Trial]) -> list[JobReturn]:
        """Run the trials' jobs with the launcher: each gets its trial's parameters, the fixed
        ones, and its identity (`optuna_trial`); heartbeats are recorded while they run."""
        overrides = self._configure_trials(
            trials, state.distributions, state.fixed_params, state.fixed_overrides
        )
        overrides = [
            tuple(o) + self.identity(state.study, trial)
            for o, trial in zip(overrides, trials, strict=True)
        ]
        with Heartbeat(state.storage, trials, self.heartbeat_interval):
            returns = self.launcher.launch(overrides, initial_job_idx=self.job_idx)
        self.job_idx += len(returns)
        return returns

    def tell_batch(
        self, state: SweepState, trials: list[optuna.Trial], returns: list[JobReturn]
    ) -> None:
        """Tell the study each job's outcome: its values (COMPLETE), PRUNED when the pruner
        stopped it, or FAIL with the job's error. A trial failed meanwhile as stale keeps that
        state (it is redone). Raises SweepFailed when this batch's failures exceed
        max_failure_rate or failures outnumber completions by n_trials."""
        study, storage = state.study, state.storage
        batch_failures = 0
        for trial, ret in zip(trials, returns, strict=True):
            if storage is not None and storage.get_trial(trial._trial_id).state.is_finished():
                log.warning(
                    f"Trial {trial.number} was marked failed meanwhile (its heartbeats stopped for more "
                    f"than the grace period); its result is dropped and the trial redone"
                )
                continue
            try:
                returned = ret.return_value  # re-raises the job's own exception
                pruned_at = self.pruned_epoch(storage, trial)
                if pruned_at is not None:
                    study.tell(trial, state=TrialState.PRUNED)
                    log.info(f"Trial {trial.number} pruned at epoch {pruned_at}")
                else:
                    study.tell(trial, objective_values(returned, len(state.directions)))
                state.completed += 1
            except Exception as err:  # a failed trial is recorded, then judged below
                study.tell(trial, state=TrialState.FAIL)
                state.failures.append(
                    f"trial {trial.number} ({' '.join(ret.overrides)}): {type(err).__name__}: {err}"
                )
                log.warning(f"Failed experiment: {state.failures[-1]}")
                batch_failures += 1
        # max_failure_rate bounds each batch, as in the plugin. Failed trials are replaced (only
        # completed and pruned ones count), so a sweep whose failures outnumber its completions
        # by n_trials stops instead of retrying forever.
        too_many = batch_failures / len(returns) > self.max_failure_rate
        if too_many or len(state.failures) - state.completed >= state.total:
            raise SweepFailed(
                f"{len(state.failures)} trial(s) failed (max_failure_rate={self.max_failure_rate}):\n  "
                + "\n  ".join(state.failures[-10:])
            )

    def identity(self, study: optuna.Study, trial: optuna.Trial) -> tuple[str, ...]:
        """Overrides that tell a job which trial it is (`optuna_trial` in the app's config): the
        study's name, its storage URL and the trial number. A URL with a password is left out of
        the overrides (they are logged); the job then reads it from hydra.sweeper.storage."""
        if "optuna_trial" not in self.config or self.storage is None:
            return ()
        url = str(self.storage)
        has_password = sqlalchemy.engine.make_url(url).password is not None
        return (
            f"optuna_trial.study_name={quoted(study.study_name)}",
            f"optuna_trial.storage={'null' if has_password else quoted(url)}",
            f"optuna_trial.number={trial.number}",
        )

    @staticmethod
    def pruned_epoch(storage, trial: optuna.Trial) -> int | None:
        if storage is None:
            return None
        return storage.get_trial_system_attrs(trial._trial_id).get(PRUNED_ATTR)

    @staticmethod
    def count(study: optuna.Study, state: TrialState) -> int:
        return len(study.get_trials(deepcopy=False, states=(state,)))

    @staticmethod
    def finished(study: optuna.Study) -> int:
        """Trials that count toward n_trials: COMPLETE and PRUNED (not the dropped ones)."""
        done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
        return sum(counts(t) for t in done)

    @staticmethod
    def ask(study: optuna.Study) -> optuna.Trial:
        with warnings.catch_warnings():  # the heartbeats are ours, not Study.optimize's
            warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
            return study.ask()

    @staticmethod
    def fail_stale(study: optuna.Study, storage: optuna.storages.RDBStorage | None) -> None:
        """Marks RUNNING trials whose process died as failed: those whose owner process on this
        machine is gone (at once), those whose heartbeats stopped, and those that died between
        `study.ask()` and their first heartbeat (Optuna skips these)."""
        if storage is None:
            return
        running = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)  # returns None: compare states instead
        dead = orphaned_trial_ids(study) + unbeaten_trial_ids(storage, study._study_id)
        for trial_id in dead:
            try:
                study._storage.set_trial_state_values(trial_id, state=TrialState.FAIL)
            except optuna.exceptions.UpdateFinishedTrialError:
                pass  # finished meanwhile, or failed by another worker
        failed = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))}
        stale = sorted(running & failed)
        if stale:
            log.warning(f"Marked {len(stale)} stale trial(s) of a crashed run as failed: {stale}")

    @staticmethod
    def surplus(study: optuna.Study, trial: optuna.Trial, total: int) -> str | None:
        """Why a just-asked trial is one too many (workers asked together), or None.

        Trial numbers order the claims: the first `total` counted (COMPLETE, PRUNED) or RUNNING
        trials stand, and of two running trials on the same grid point the earlier one does.
        """
        active = sorted(
            (
                t
                for t in study.get_trials(
                    deepcopy=False,
                    states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING),
                )
                if t.state == TrialState.RUNNING or counts(t)
            ),
            key=lambda t: t.number,
        )
        ahead = [t for t in active if t.number < trial.number]
        if len(ahead) >= total:
            return f"the study already has {total} trials complete or running"
        sampler = study.sampler
        if isinstance(sampler, ResumableGridSampler):  # grid points compared by value
            mine = sampler.point_of(study._storage.get_trial(trial._trial_id))
            for other in active if mine is not None else ():
                if (
                    other.number != trial.number
                    and sampler.point_of(other) == mine
                    and (other.state != TrialState.RUNNING or other.number < trial.number)
                ):
                    point = dict(zip(sampler._param_names, mine, strict=True))
                    return f"grid point {point} is taken by trial {other.number}"
        return None

    def save_results(self, study: optuna.Study, metrics: list[str] | None = None) -> None:
        """`optimization_results.yaml` in the plugin's shape (`name`, `best_params`, `best_value`
        for one objective; `solutions`, each with `params` and `values`, for several), plus the
        study's counts; then the sweep's plots and `optuna/best.yaml` (lstm_tweets.sweep_report)."""
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        results: dict[str, Any] = {"name": "optuna"}
        if len(study.directions) == 1:
            if complete:
                best = study.best_trial
                results.update(best_params=best.params, best_value=best.value)
                results["best_trial"] = best.number
                log.info(f"Best parameters: {best.params}\nBest value: {best.value}")
        else:
            front = study.best_trials if complete else []
            results["solutions"] = [{"params": t.params, "values": t.values} for t in front]
            results["objectives"] = list(
                metrics or [f"objective {i}" for i in range(len(study.directions))]
            )
            results["directions"] = [d.name.lower() for d in study.directions]
            log.info(f"Number of Pareto solutions: {len(front)}")
            for t in front:
                log.info(f"    Values: {t.values}, Params: {t.params}")
        results.update(
            study_name=study.study_name,
            n_complete=len(complete),
            n_pruned=self.finished(study) - len(complete),
            n_failed=sum(
                "dropped" not in t.user_attrs
                for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
            ),
            n_dropped=sum("dropped" in t.user_attrs for t in study.get_trials(deepcopy=False)),
        )
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)  # no job ran here if the study was done
        OmegaConf.save(OmegaConf.create(results), sweep_dir / "optimization_results.yaml")
        from lstm_tweets import sweep_report

        sweep_report.write(study, sweep_dir, metrics, self.config)


class ResumableOptunaSweeper(Sweeper):
    def __init__(
        self,
        sampler: Any,
        direction: Any,
        storage: Any | None,
        study_name: str | None,
        n_trials: int,
        n_jobs: int,
        max_failure_rate: float,
        custom_search_space: str | None,
        params: DictConfig | None,
        pruner: Any | None = None,
        heartbeat_interval: int = 30,
        grace_period: int | None = None,
        skip_repeats: bool = True,
    ) -> None:
        with execution_whitelist(SAMPLER_TARGETS):
            sampler = instantiate(sampler)
        pruner = make_pruner(pruner)
        self.sweeper = ResumableOptunaSweeperImpl(
            sampler,
            direction,
            storage,
            study_name,
            n_trials,
            n_jobs,
            max_failure_rate,
            custom_search_space,
            params,
            pruner=pruner,
            heartbeat_interval=heartbeat_interval,
            grace_period=grace_period,
            skip_repeats=skip_repeats,
        )

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.sweeper.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> None:
        return self.sweeper.sweep(arguments)

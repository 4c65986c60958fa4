"""A Hydra sweeper plugin (entry point in pyproject.toml): the Optuna sweeper, made to survive crashes and to share a study between workers.

`hydra/sweeper=resumable_optuna` is the plugin's sweeper with three changes:
- `n_trials` is the study's TOTAL of completed trials, read from the storage before each batch.
  Re-running a crashed sweep finishes the same study; several workers (processes or machines)
  sharing one storage stop together when the total is reached.
- Trials record Optuna heartbeats while they run. A trial whose process died (kill -9) stops
  beating, and the next run marks it failed with `optuna.storages.fail_stale_trials`; only
  completed trials count, so that one is redone and no completed one is.
- The storage is opened before any training starts, so a bad URL fails at once and clearly.
- With `hydra/sweeper/sampler=grid`, a grid point is done only once a trial COMPLETEs it: a
  resumed sweep redoes the failed point and repeats no completed one (ResumableGridSampler).
A sweep whose trials all fail stops with a summary of the errors instead of retrying forever.
"""

from __future__ import annotations

import functools
import logging
import math
import random
import threading
import time
import warnings
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy
from hydra.core.config_store import ConfigStore
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from hydra.utils import instantiate
from hydra_plugins.hydra_optuna_sweeper._impl import OptunaSweeperImpl, create_params_from_overrides
from hydra_plugins.hydra_optuna_sweeper.config import OptunaSweeperConf
from omegaconf import DictConfig, OmegaConf
from optuna.trial import TrialState

log = logging.getLogger(__name__)


@dataclass
class ResumableOptunaSweeperConf(OptunaSweeperConf):
    _target_: str = "lstm_tweets.sweeper.ResumableOptunaSweeper"
    heartbeat_interval: int = 30  # seconds between heartbeats of a running trial
    grace_period: int | None = None  # a trial silent this long is stale (default: 2 intervals)


ConfigStore.instance().store(
    group="hydra/sweeper",
    name="resumable_optuna",
    node=ResumableOptunaSweeperConf,
    provider="lstm_tweets",
)


class SweepFailed(RuntimeError):
    pass


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


def open_storage(url: str | None, heartbeat_interval: int, grace_period: int | None):
    """An RDB storage with heartbeats, opened now so that an unreachable URL fails before training."""
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
            with warnings.catch_warnings():  # heartbeat_interval is "experimental" since Optuna 2.9
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(
                    with_driver(url),
                    engine_kwargs=engine_kwargs,
                    heartbeat_interval=heartbeat_interval,
                    grace_period=grace_period or 2 * heartbeat_interval,
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
    """The grid sampler, made to resume: a grid point is done only once a trial COMPLETEs it.

    Optuna's GridSampler gives trial number k the k-th point without looking at the storage and
    treats a FAILED point as visited, so after a crash it repeats completed points and never
    redoes the failed one. This one picks, at random, a point that no trial has completed and
    none is running; it never calls `study.stop()` (which raises outside `Study.optimize`).
    """

    def __init__(self, search_space, seed: int | None = None) -> None:
        super().__init__(search_space, seed=seed)
        self._pick = random.Random()  # not seeded: workers sharing a study should not pick alike

    def before_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if "grid_id" in trial.system_attrs or "fixed_params" in trial.system_attrs:
            return
        complete, running = set(), set()
        for other in study._storage.get_all_trials(study._study_id, deepcopy=False):
            grid_id = other.system_attrs.get("grid_id")
            if grid_id is None or other.number == trial.number:
                continue
            if not self._same_search_space(other.system_attrs["search_space"]):
                continue
            if other.state == TrialState.COMPLETE:
                complete.add(grid_id)
            elif other.state == TrialState.RUNNING:
                running.add(grid_id)
        every = set(range(len(self._all_grids)))
        todo = sorted(every - complete - running) or sorted(every - complete) or sorted(every)
        grid_id = self._pick.choice(todo)
        study._storage.set_trial_system_attr(trial._trial_id, "search_space", self._search_space)
        study._storage.set_trial_system_attr(trial._trial_id, "grid_id", grid_id)

    def after_trial(self, study, trial, state, values) -> None:
        pass


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


def warn_if_comparing_base_rates(metric: str | None, swept: list[str]) -> None:
    varied = [key for key in swept if key in LABEL_KEYS]
    if metric in ("val/acc", "val_acc") and varied:
        log.warning(
            f"optimized_metric={metric} while the sweep varies the labels ({', '.join(varied)}): "
            "the validation base rate differs between trials, so plain accuracy prefers the most "
            "lopsided labels. Optimize val/acc_lift (accuracy minus the split's majority share) "
            "instead: optimized_metric=val/acc_lift"
        )


class ResumableOptunaSweeperImpl(OptunaSweeperImpl):
    def __init__(self, *args, heartbeat_interval: int = 30, grace_period: int | None = None):
        super().__init__(*args)
        self.heartbeat_interval, self.grace_period = heartbeat_interval, grace_period

    def sweep(self, arguments: list[str]) -> None:
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
        warn_if_comparing_base_rates(self.config.get("optimized_metric"), list(distributions))
        directions = self._get_directions()
        if len(directions) != 1:
            raise SweepFailed(
                "resumable_optuna supports one objective; use hydra/sweeper=optuna for several"
            )

        storage = open_storage(self.storage, self.heartbeat_interval, self.grace_period)
        study = optuna.create_study(
            study_name=self.study_name,
            storage=storage,
            sampler=self.sampler,
            direction=directions[0],
            load_if_exists=True,
        )
        self.fail_stale(study, storage)
        if study.get_trials(deepcopy=False) and not isinstance(self.sampler, ResumableGridSampler):
            # A seeded sampler would replay the first run's draws (TPE's startup trials are plain
            # random draws from `seed`) and repeat its parameter sets.
            self.sampler.reseed_rng()
            log.info(
                "The study has trials already: the sampler is reseeded so that it does not repeat them"
            )
        log.info(
            f"Study {study.study_name} in {storage.url if storage else 'memory'}: "
            f"{self.count(study, TrialState.COMPLETE)} of {total} trials complete"
        )

        failures: list[str] = []
        while True:
            # A crashed worker's trial is redone, not waited for forever.
            self.fail_stale(study, storage)
            to_go = (
                total
                - self.count(study, TrialState.COMPLETE)
                - self.count(study, TrialState.RUNNING)
            )
            if to_go <= 0:
                break
            trials = []
            for _ in range(min(self.n_jobs, to_go)):
                trial = self.ask(study)
                if storage is not None:
                    storage.record_heartbeat(trial._trial_id)  # from now on a crash leaves it stale
                surplus = self.surplus(study, trial, total)
                if surplus:  # another worker asked at the same moment
                    log.info(f"Trial {trial.number} dropped: {surplus}")
                    trial.set_user_attr("dropped", surplus)
                    study.tell(trial, state=TrialState.PRUNED)
                else:
                    trials.append(trial)
            if not trials:
                continue
            overrides = self._configure_trials(trials, distributions, fixed_params, fixed_overrides)
            with Heartbeat(storage, trials, self.heartbeat_interval):
                returns = self.launcher.launch(overrides, initial_job_idx=self.job_idx)
            self.job_idx += len(returns)
            batch_failures = 0
            for trial, ret in zip(trials, returns, strict=True):
                if storage is not None and storage.get_trial(trial._trial_id).state.is_finished():
                    log.warning(
                        f"Trial {trial.number} was marked failed meanwhile (its heartbeats stopped for more "
                        f"than the grace period); its result is dropped and the trial redone"
                    )
                    continue
                try:
                    value = float(ret.return_value)  # re-raises the job's own exception
                    if not math.isfinite(value):
                        raise ValueError(f"objective is {value}")
                    study.tell(trial, value)
                except Exception as err:  # a failed trial is recorded, then judged below
                    study.tell(trial, state=TrialState.FAIL)
                    failures.append(
                        f"trial {trial.number} ({' '.join(ret.overrides)}): {type(err).__name__}: {err}"
                    )
                    batch_failures += 1
            if batch_failures / len(returns) > self.max_failure_rate or len(failures) >= total:
                raise SweepFailed(
                    f"{len(failures)} trial(s) failed (max_failure_rate={self.max_failure_rate}):\n  "
                    + "\n  ".join(failures[-10:])
                )

        self.save_results(study)

    @staticmethod
    def count(study: optuna.Study, state: TrialState) -> int:
        return len(study.get_trials(deepcopy=False, states=(state,)))

    @staticmethod
    def ask(study: optuna.Study) -> optuna.Trial:
        with warnings.catch_warnings():  # the heartbeats are ours, not Study.optimize's
            warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
            return study.ask()

    @staticmethod
    def fail_stale(study: optuna.Study, storage: optuna.storages.RDBStorage | None) -> None:
        """Marks RUNNING trials whose process died as failed: those whose heartbeats stopped, and
        those that died between `study.ask()` and their first heartbeat (Optuna skips these)."""
        if storage is None:
            return
        running = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)  # returns None: compare states instead
        for trial_id in unbeaten_trial_ids(storage, study._study_id):
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

        Trial numbers order the claims: the first `total` COMPLETE or RUNNING trials stand, and
        of two running trials on the same grid point the earlier one does.
        """
        active = sorted(
            study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING)),
            key=lambda t: t.number,
        )
        ahead = [t for t in active if t.number < trial.number]
        if len(ahead) >= total:
            return f"the study already has {total} trials complete or running"
        grid_id = study._storage.get_trial_system_attrs(trial._trial_id).get("grid_id")
        if grid_id is not None:
            for other in active:
                if (
                    other.number != trial.number
                    and other.system_attrs.get("grid_id") == grid_id
                    and (other.state == TrialState.COMPLETE or other.number < trial.number)
                ):
                    return f"grid point {grid_id} is taken by trial {other.number}"
        return None

    def save_results(self, study: optuna.Study) -> None:
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        results: dict[str, Any] = {
            "name": "optuna",
            "study_name": study.study_name,
            "n_complete": len(complete),
            "n_failed": self.count(study, TrialState.FAIL),
        }
        if complete:
            best = study.best_trial
            results.update(best_params=best.params, best_value=best.value, best_trial=best.number)
            log.info(f"Best parameters: {best.params}\nBest value: {best.value}")
        OmegaConf.save(
            OmegaConf.create(results), f"{self.config.hydra.sweep.dir}/optimization_results.yaml"
        )


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
        heartbeat_interval: int = 30,
        grace_period: int | None = None,
    ) -> None:
        sampler = instantiate(
            sampler,
            _execution_whitelist_=("hydra_plugins.hydra_optuna_sweeper.*", "optuna.samplers.*"),
        )
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
            heartbeat_interval=heartbeat_interval,
            grace_period=grace_period,
        )

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.sweeper.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> None:
        return self.sweeper.sweep(arguments)

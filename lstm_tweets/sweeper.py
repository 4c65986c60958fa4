"""A Hydra sweeper plugin (entry point in pyproject.toml): the Optuna sweeper, made to survive crashes and to share a study between workers.

`hydra/sweeper=resumable_optuna` is the plugin's sweeper with three changes:
- `n_trials` is the study's TOTAL of completed trials, read from the storage before each batch.
  Re-running a crashed sweep finishes the same study; several workers (processes or machines)
  sharing one storage stop together when the total is reached.
- Trials record Optuna heartbeats while they run. A trial whose process died (kill -9) stops
  beating, and the next run marks it failed with `optuna.storages.fail_stale_trials`; only
  completed trials count, so that one is redone and no completed one is.
- The storage is opened before any training starts, so a bad URL fails at once and clearly.
A sweep whose trials all fail stops with a summary of the errors instead of retrying forever.
"""

from __future__ import annotations

import functools
import logging
import math
import threading
from dataclasses import dataclass
from typing import Any

import optuna
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


ConfigStore.instance().store(group="hydra/sweeper", name="resumable_optuna", node=ResumableOptunaSweeperConf,
                             provider="lstm_tweets")


class SweepFailed(RuntimeError):
    pass


def open_storage(url: str | None, heartbeat_interval: int, grace_period: int | None):
    """An RDB storage with heartbeats, opened now so that an unreachable URL fails before training."""
    if url is None:
        log.warning("hydra.sweeper.storage is null: the study lives in memory and cannot be resumed")
        return None
    engine_kwargs = {"pool_pre_ping": True}
    if str(url).startswith("sqlite"):
        engine_kwargs["connect_args"] = {"timeout": 60}  # workers wait for each other's writes
    try:
        return optuna.storages.RDBStorage(str(url), engine_kwargs=engine_kwargs, heartbeat_interval=heartbeat_interval,
                                          grace_period=grace_period or 2 * heartbeat_interval)
    except Exception as err:
        safe = str(url).split("@")[-1] if "@" in str(url) else url  # never print a password
        raise SweepFailed(f"Optuna storage '{safe}' cannot be opened: {type(err).__name__}: "
                          f"{str(err).splitlines()[0]}. Check hydra.sweeper.storage.") from None


class Heartbeat:
    """Records a heartbeat for each running trial every interval, on a background thread."""

    def __init__(self, storage, trials, interval: int):
        self.storage, self.trials, self.interval = storage, trials, interval
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.beat, daemon=True)

    def beat(self) -> None:
        while not self.stop.is_set():
            for trial in self.trials:
                self.storage.record_heartbeat(trial._trial_id)
            self.stop.wait(self.interval)

    def __enter__(self):
        if self.storage is not None:
            self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join()


class ResumableOptunaSweeperImpl(OptunaSweeperImpl):
    def __init__(self, *args, heartbeat_interval: int = 30, grace_period: int | None = None):
        super().__init__(*args)
        self.heartbeat_interval, self.grace_period = heartbeat_interval, grace_period

    def sweep(self, arguments: list[str]) -> None:
        self._process_searchspace_config()
        params_conf = self._parse_sweeper_params_config() + list(arguments)
        distributions, fixed_params, fixed_overrides = create_params_from_overrides(params_conf)
        total = self.n_trials
        if isinstance(self.sampler, functools.partial) and self.sampler.func == optuna.samplers.GridSampler:
            grid = {name: self._to_grid_sampler_choices(d) for name, d in distributions.items()}
            self.sampler = self.sampler(grid)
            total = min(total, math.prod(len(v) for v in grid.values()))
        for name in fixed_params:
            distributions.pop(name, None)
        directions = self._get_directions()
        if len(directions) != 1:
            raise SweepFailed("resumable_optuna supports one objective; use hydra/sweeper=optuna for several")

        storage = open_storage(self.storage, self.heartbeat_interval, self.grace_period)
        study = optuna.create_study(study_name=self.study_name, storage=storage, sampler=self.sampler,
                                    direction=directions[0], load_if_exists=True)
        if storage is not None:
            stale = optuna.storages.fail_stale_trials(study)
            if stale:
                log.warning(f"Marked {len(stale)} stale trial(s) of a crashed run as failed: {stale}")
        log.info(f"Study {study.study_name} in {storage.url if storage else 'memory'}: "
                 f"{self.count(study, TrialState.COMPLETE)} of {total} trials complete")

        failures: list[str] = []
        while True:
            to_go = total - self.count(study, TrialState.COMPLETE) - self.count(study, TrialState.RUNNING)
            if to_go <= 0:
                break
            trials = [study.ask() for _ in range(min(self.n_jobs, to_go))]
            overrides = self._configure_trials(trials, distributions, fixed_params, fixed_overrides)
            with Heartbeat(storage, trials, self.heartbeat_interval):
                returns = self.launcher.launch(overrides, initial_job_idx=self.job_idx)
            self.job_idx += len(returns)
            batch_failures = 0
            for trial, ret in zip(trials, returns, strict=True):
                try:
                    value = float(ret.return_value)  # re-raises the job's own exception
                    if not math.isfinite(value):
                        raise ValueError(f"objective is {value}")
                    study.tell(trial, value)
                except Exception as err:  # a failed trial is recorded, then judged below
                    study.tell(trial, state=TrialState.FAIL)
                    failures.append(f"trial {trial.number} ({' '.join(ret.overrides)}): {type(err).__name__}: {err}")
                    batch_failures += 1
            if batch_failures / len(returns) > self.max_failure_rate or len(failures) >= total:
                raise SweepFailed(f"{len(failures)} trial(s) failed (max_failure_rate={self.max_failure_rate}):\n  "
                                  + "\n  ".join(failures[-10:]))

        self.save_results(study)

    @staticmethod
    def count(study: optuna.Study, state: TrialState) -> int:
        return len(study.get_trials(deepcopy=False, states=(state,)))

    def save_results(self, study: optuna.Study) -> None:
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        results: dict[str, Any] = {"name": "optuna", "study_name": study.study_name, "n_complete": len(complete),
                                   "n_failed": self.count(study, TrialState.FAIL)}
        if complete:
            best = study.best_trial
            results.update(best_params=best.params, best_value=best.value, best_trial=best.number)
            log.info(f"Best parameters: {best.params}\nBest value: {best.value}")
        OmegaConf.save(OmegaConf.create(results), f"{self.config.hydra.sweep.dir}/optimization_results.yaml")


class ResumableOptunaSweeper(Sweeper):
    def __init__(self, sampler: Any, direction: Any, storage: Any | None, study_name: str | None, n_trials: int,
                 n_jobs: int, max_failure_rate: float, custom_search_space: str | None, params: DictConfig | None,
                 heartbeat_interval: int = 30, grace_period: int | None = None) -> None:
        sampler = instantiate(sampler, _execution_whitelist_=("hydra_plugins.hydra_optuna_sweeper.*", "optuna.samplers.*"))
        self.sweeper = ResumableOptunaSweeperImpl(sampler, direction, storage, study_name, n_trials, n_jobs,
                                                  max_failure_rate, custom_search_space, params,
                                                  heartbeat_interval=heartbeat_interval, grace_period=grace_period)

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.sweeper.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> None:
        return self.sweeper.sweep(arguments)

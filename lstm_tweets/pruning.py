"""Pruning inside the Lightning run of an Optuna trial (`hydra/sweeper/pruner=...`).

The sweeper (lstm_tweets/sweeper.py) tells each job which trial it is through its config:
`optuna_trial.study_name`, `optuna_trial.storage` and `optuna_trial.number`. `OptunaPruning`
reports the optimized metric to that trial after every validation (its intermediate values, in
the storage) and asks the sweep's pruner whether to go on; when the pruner says stop, it records
the epoch on the trial and stops the run at that epoch's end. The run still writes its
metrics.json (`pruned: true`, `pruned_epoch`) and the sweeper records the trial as PRUNED.

optuna-integration's PyTorchLightningPruningCallback does not fit this app: it subclasses
`lightning.pytorch.Callback` (not the `pytorch_lightning` package used here), needs the `Trial`
object of the process that asked for it, and raises TrialPruned out of `fit` instead of ending the
run cleanly. This one follows its DDP scheme: rank 0 reports and decides, and broadcasts the
decision.
"""

from __future__ import annotations

import logging
from typing import Any

import pytorch_lightning as pl
from omegaconf import DictConfig

from lstm_tweets import objectives

log = logging.getLogger(__name__)


def trial_identity(cfg: DictConfig) -> dict | None:
    """{study_name, storage, number} when this run is a trial of a resumable_optuna sweep with a
    storage; None otherwise. A storage URL with a password is not in the job's overrides: it comes
    from the sweep's own `hydra.sweeper.storage`."""
    node = cfg.get("optuna_trial")
    if not node or node.get("number") is None:
        return None
    storage = node.get("storage") or sweeper_setting("storage")
    if not storage:
        return None
    return {
        "study_name": str(node.get("study_name") or sweeper_setting("study_name")),
        "storage": str(storage),
        "number": int(node.number),
    }


def sweeper_setting(key: str) -> Any:
    try:
        from hydra.core.hydra_config import HydraConfig

        return HydraConfig.get().sweeper.get(key)
    except Exception:  # not inside a Hydra job
        return None


def callback_for(cfg: DictConfig) -> OptunaPruning | None:
    """The pruning callback for a trial's run (None outside a sweep, or with several objectives:
    Optuna keeps intermediate values and prunes for one objective only)."""
    identity = trial_identity(cfg)
    if identity is None or objectives.is_several(cfg.optimized_metric):
        return None
    return OptunaPruning(**identity, monitor=str(cfg.optimized_metric))


class OptunaPruning(pl.Callback):
    def __init__(self, study_name: str, storage: str, number: int, monitor: str):
        self.study_name, self.storage_url, self.number, self.monitor = (
            study_name,
            storage,
            number,
            monitor,
        )
        self.pruned_epoch: int | None = None
        self._trial = None  # opened on rank 0 in on_fit_start: the callback is pickled for DDP

    # ---- the trial in the storage
    def trial(self):
        if self._trial is None:
            import optuna

            from lstm_tweets.sweeper import make_pruner, open_storage

            storage = open_storage(self.storage_url, heartbeat_interval=None, grace_period=None)
            study = optuna.load_study(
                study_name=self.study_name,
                storage=storage,
                sampler=optuna.samplers.RandomSampler(),  # unused: the trial is asked already
                pruner=make_pruner(sweeper_setting("pruner")),
            )
            trial_id = storage.get_trial_id_from_study_id_trial_number(study._study_id, self.number)
            self._trial = optuna.trial.Trial(study, trial_id)
        return self._trial

    def __getstate__(self):
        return {**self.__dict__, "_trial": None}

    def on_fit_start(self, trainer, pl_module) -> None:
        if trainer.is_global_zero:
            self.trial()  # a storage that cannot be reached fails before the first epoch

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking:
            return
        epoch = trainer.current_epoch
        stop = False
        if trainer.is_global_zero:
            value = self.value(trainer, pl_module)
            if value is not None:
                stop = self.report(value, epoch)
        if trainer.world_size > 1:
            stop = bool(trainer.strategy.broadcast(stop, src=0))
        if stop:
            self.pruned_epoch = epoch
            trainer.should_stop = True

    def value(self, trainer, pl_module) -> float | None:
        metric = trainer.callback_metrics.get(self.monitor)
        if metric is None:
            log.warning(f"{self.monitor} was not logged at this validation: nothing to report")
            return None
        return float(metric)

    def report(self, value: float, epoch: int) -> bool:
        """Reports the epoch's value; True when the pruner stops the trial (recorded on it)."""
        import optuna

        from lstm_tweets.sweeper import PRUNED_ATTR

        trial = self.trial()
        try:
            trial.report(value, step=epoch)
            if not trial.should_prune():
                return False
            trial.storage.set_trial_system_attr(trial._trial_id, PRUNED_ATTR, epoch)
        except optuna.exceptions.UpdateFinishedTrialError:
            # The sweep marked the trial failed meanwhile (its heartbeats stopped): its result
            # will not count; finish the run anyway.
            log.warning(f"trial {self.number} is finished in the study; no longer reporting")
            return False
        log.info(f"Optuna trial {self.number} pruned at epoch {epoch} ({self.monitor}={value:.4f})")
        return True

    def outcome(self) -> dict:
        """For metrics.json: whether the pruner stopped this run, and at which epoch (read back
        from the trial: after DDP-spawn this process did not see the decision)."""
        from lstm_tweets.sweeper import PRUNED_ATTR

        epoch = self.pruned_epoch
        if epoch is None:
            trial = self.trial()
            epoch = trial.storage.get_trial_system_attrs(trial._trial_id).get(PRUNED_ATTR)
        return {"optuna_trial": self.number, "pruned": epoch is not None, "pruned_epoch": epoch}

"""What tells one run of a study from another: the swept keys, the run's cell (its values of those
keys, e.g. `interval=10,model=lstm,seed=2`) and the short list of knobs logged as TensorBoard
HParams. Light on purpose (Hydra and OmegaConf only): the multirun summary uses it too.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

# The knobs logged as HParams, after the swept keys: what a study varies or a reader compares,
# one name per setting (model.lr, never also model.optimizer.lr), no paths, no `_target_`s. The
# type is declared so that every run states the same columns, also where a knob does not apply
# (a baseline has no hidden_dim: its value is left out, the column stays).
KNOBS: dict[str, type] = {
    "study": str,
    "model": str,  # the model's name: lstm, majority, momentum, tfidf_logreg
    "seed": float,
    "data.interval": float,
    "data.target": str,
    "data.source": str,
    "data.window_start": str,
    "data.ties": str,
    "data.dead_band_bps": float,
    "data.include_retweets": bool,
    "data.split": str,
    "data.fold": float,
    "data.max_length": float,
    "data.vocab_size": float,
    "data.batch_size": float,
    "data.shuffle_train_labels": bool,
    "embedding": str,  # the embedding's kind: word2vec, pretrained, random
    "embedding.dim": float,
    "embedding.trainable": bool,
    "model.hidden_dim": float,
    "model.num_layers": float,
    "model.dropout": float,
    "model.bidirectional": bool,
    "model.concat_counts": bool,
    "model.lr": float,
    "model.optimizer.weight_decay": float,
    "model.balance_classes": bool,
    "trainer.max_epochs": float,
}
MAX_HPARAMS = 30
# A single run's cell: these, plus any knob set on its command line.
RUN_CELL_KEYS = ("data.interval", "model", "seed")


def knob_value(cfg: DictConfig, key: str) -> Any:
    """The value of `key` in a run's config: a group key (`model`, `embedding`) gives the chosen
    option's name; any other key is looked up as it is. None where the key does not apply."""
    if key == "model":
        model = cfg.get("model") or {}
        return model.get("name") or model.get("baseline") or "lstm"
    if key == "embedding":
        return OmegaConf.select(cfg, "embedding.kind", default=None)
    try:
        value = OmegaConf.select(cfg, key, default=None, throw_on_missing=False)
    except Exception:  # an interpolation that cannot resolve here (e.g. ${hydra:...})
        return None
    if OmegaConf.is_config(value):
        return None
    return value


def plain_key(override_key: str) -> str:
    return override_key.lstrip("+~")


def parse_overrides(lines) -> list:
    """Hydra's parsed overrides; a line Hydra cannot parse here is skipped (it only names runs)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser, parsed = OverridesParser.create(), []
    for line in lines or []:
        try:
            parsed += parser.parse_overrides([str(line)])
        except Exception:
            continue
    return parsed


def swept_keys(hydra_cfg: DictConfig | None) -> dict[str, list | None]:
    """{key: values, or None for a continuous range} of a multirun's sweep, from the job's Hydra
    config: the sweeper's `params` (an experiment's grid, an Optuna search space) and the command
    line's sweeps (`data.interval=5,10`), read from the sweep folder's multirun.yaml. Empty for a
    single run."""
    from hydra.types import RunMode

    if hydra_cfg is None or hydra_cfg.get("mode") != RunMode.MULTIRUN:
        return {}
    params = OmegaConf.select(hydra_cfg, "sweeper.params", default=None) or {}
    command_line: list = []
    multirun_yaml = Path(str(hydra_cfg.sweep.dir)) / "multirun.yaml"
    if multirun_yaml.is_file():
        saved = OmegaConf.load(multirun_yaml)
        command_line = list(OmegaConf.select(saved, "hydra.overrides.task", default=None) or [])
    swept: dict[str, list | None] = {}
    param_lines = [f"{key}={value}" for key, value in params.items() if value is not None]
    for from_params, lines in ((True, param_lines), (False, command_line)):
        for override in parse_overrides(lines):
            key = plain_key(override.get_key_element())
            if override.is_sweep_override():
                discrete = override.is_discrete_sweep()
                swept[key] = list(override.sweep_iterator()) if discrete else None
            elif from_params or key in swept:  # one value: still an axis of the study
                swept[key] = [override.value()]
    return swept


def short_names(keys) -> dict[str, str]:
    """`data.interval` -> `interval`, `model` -> `model`; the full key where two would clash."""
    last = {key: key.split(".")[-1] for key in keys}
    counts: dict[str, int] = {}
    for name in last.values():
        counts[name] = counts.get(name, 0) + 1
    return {key: (name if counts[name] == 1 else key) for key, name in last.items()}


def format_value(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return str(value)


def cell(cfg: DictConfig, keys) -> dict[str, str]:
    """{short name: value} of `keys` in a run's config, ordered by short name."""
    names = short_names(keys)
    values = {names[key]: format_value(knob_value(cfg, key)) for key in keys}
    return dict(sorted(values.items()))


def cell_name(values: dict[str, str]) -> str:
    """`interval=10,model=lstm,seed=2`: usable as a folder name (no `/`, no spaces)."""
    text = ",".join(f"{name}={value}" for name, value in values.items())
    return re.sub(r"[^\w.=,+\-]", "_", text)[:200] or "run"


def run_cell_keys(cfg: DictConfig, hydra_cfg: DictConfig | None) -> list[str]:
    """The keys that name this run: a multirun job's swept keys; a single run's interval, model
    and seed plus the knobs its command line set."""
    swept = swept_keys(hydra_cfg)
    if swept:
        return list(swept)
    keys = list(RUN_CELL_KEYS)
    if hydra_cfg is not None:
        for override in parse_overrides(OmegaConf.select(hydra_cfg, "overrides.task") or []):
            key = plain_key(override.get_key_element())
            if key in KNOBS and key not in keys:
                keys.append(key)
    return keys


def run_cell(cfg: DictConfig) -> dict[str, str]:
    """{key: value} of the running job's cell keys (run_cell_keys), recorded in metrics.json so
    that the study report reads a run's cell from it alone. A value is the job's own override as
    written (`data.interval=5` -> "5", `embedding=random` -> "random"), else the chosen option of
    a config group, else the config's value."""
    hydra_cfg = hydra_config()
    keys = run_cell_keys(cfg, hydra_cfg)
    task = OmegaConf.select(hydra_cfg, "overrides.task") if hydra_cfg is not None else None
    written = {
        plain_key(o.get_key_element()): o.get_value_element_as_str()
        for o in parse_overrides(task or [])
    }
    choices = OmegaConf.select(hydra_cfg, "runtime.choices") if hydra_cfg is not None else None
    values = {}
    for key in keys:
        if key in written:
            values[key] = written[key]
        elif choices is not None and key in choices:
            values[key] = str(choices[key])
        else:
            values[key] = format_value(knob_value(cfg, key))
    return values


def hydra_config() -> DictConfig | None:
    """The running job's Hydra config (`cfg.hydra` of the job), or None outside a Hydra app."""
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get() if HydraConfig.initialized() else None


def run_identity(cfg: DictConfig) -> tuple[str, str, list[str]]:
    """(run name, HParams group name, cell keys) of the running job. The run name is the cell;
    the group name starts with the cell (TensorBoard's HParams table shows its first ~20
    characters as "Trial ID") and ends with the run's folder, so that two sweeps never merge."""
    hydra_cfg = hydra_config()
    keys = run_cell_keys(cfg, hydra_cfg)
    name = cell_name(cell(cfg, keys))
    where = ""
    if hydra_cfg is not None:
        output = Path(str(hydra_cfg.runtime.output_dir))
        multirun = swept_keys(hydra_cfg)
        where = "/".join(output.parts[-3:] if multirun else output.parts[-2:])
    return name, f"{name} · {where}" if where else name, keys


def hparams(cfg: DictConfig, first=()) -> dict[str, Any]:
    """The HParams of a run: `first` (its cell keys: what a study sweeps) first, then KNOBS, at
    most MAX_HPARAMS; None where a knob does not apply."""
    keys = list(dict.fromkeys([*first, *KNOBS]))[:MAX_HPARAMS]
    values = {}
    for key in keys:
        value = knob_value(cfg, key)
        if value is not None and not isinstance(value, bool | int | float | str):
            value = str(value)
        values[key] = value
    return values


def quoted(value: str) -> str:
    """A string as a Hydra override value: quoted, so that `:`, `/` and `=` stay literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class RunSetup:
    """What a run trains and logs with: callbacks, logger and trainer (None for a baseline),
    its name (the cell), its HParams group name and the keys of its cell."""

    def __init__(self, callbacks, logger, trainer, name, group_name, cell_keys):
        self.callbacks, self.logger, self.trainer = callbacks, logger, trainer
        self.name, self.group_name, self.cell_keys = name, group_name, cell_keys

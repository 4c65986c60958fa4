"""TensorBoard as this project writes it.

- `RunLogger`: Lightning's TensorBoardLogger with an orderly Scalars page. Lightning's `epoch`
  counter becomes `train/epoch` and is logged only while training: the one test after training
  would log epoch 0 at step 0, and TensorBoard drops every earlier point of a series that steps
  back, which left a single (0, 0) dot. The learning-rate monitor's `lr-Adam` becomes
  `train/lr-Adam`. Every chart group is then `train`, `val` or `test`.
- `write_hparams`: the run's HParams, written as TensorBoard's HParams plugin reads them: the
  study's swept keys flagged as the columns that differ (the dashboard shows them first), a
  short list of knobs (`cells.KNOBS`), the final metrics under their own scalar tags, and a
  "Trial ID" (session group) that starts with the run's cell.
"""

from __future__ import annotations

import math
import time
from typing import Any

from pytorch_lightning.loggers import TensorBoardLogger

from lstm_tweets.cells import KNOBS

# String knobs whose values the config check confines to these sets (lstm_tweets.config_check):
# the HParams dashboard gets them as checkboxes. Free strings (study, model name) get no domain,
# so that no run is ever filtered out for a value missing from a list.
from lstm_tweets.config_check import CHOICES

CHOICE_KEYS = {"embedding": "embedding.kind"}  # an HParam named after its config group


class RunLogger(TensorBoardLogger):
    """TensorBoardLogger whose charts all sit under train/, val/ or test/ (see the module doc)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.training_done = False  # set before the one-off test: it logs no epoch
        self._epoch_step: int | None = None

    def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        renamed = {}
        for key, value in metrics.items():
            if key == "epoch":
                # Lightning repeats it with every group of epoch metrics: one point per step.
                if self.training_done or step == self._epoch_step:
                    continue
                self._epoch_step = step
                key = "train/epoch"
            elif key.startswith("lr-"):
                key = f"train/{key}"
            renamed[key] = value
        if renamed:
            super().log_metrics(renamed, step)


def _value(kind: type, value: Any):
    from google.protobuf import struct_pb2

    if kind is bool:
        return struct_pb2.Value(bool_value=bool(value))
    if kind is float:
        return struct_pb2.Value(number_value=float(value))
    return struct_pb2.Value(string_value=str(value))


def _kind(key: str, value: Any) -> type:
    if key in KNOBS:
        return KNOBS[key]
    if isinstance(value, bool):
        return bool
    if isinstance(value, int | float):
        return float
    return str


def _summary(tag: str, data) -> Any:
    from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
    from tensorboard.plugins.hparams import metadata
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

    content = HParamsPluginData(version=metadata.PLUGIN_DATA_VERSION, **data)
    plugin = SummaryMetadata.PluginData(
        plugin_name=metadata.PLUGIN_NAME, content=content.SerializeToString()
    )
    return Summary(value=[Summary.Value(tag=tag, metadata=SummaryMetadata(plugin_data=plugin))])


def write_hparams(
    logger: TensorBoardLogger,
    hparams: dict[str, Any],
    differs,
    metrics: dict[str, float | None],
    group_name: str,
    start_time: float,
    already_logged: set[str] = frozenset(),
) -> None:
    """Write the HParams session of this run (experiment, start, end) into its TensorBoard folder,
    and each final metric not yet in the run's scalars at step 0 (the dashboard reads a metric as
    the last value of the scalar tag of that name). `differs`: the keys that tell this run from
    its study's others (the swept keys), which the dashboard shows first."""
    from tensorboard.plugins.hparams import api_pb2, metadata
    from tensorboard.plugins.hparams.plugin_data_pb2 import SessionEndInfo, SessionStartInfo

    infos, start = [], SessionStartInfo(group_name=group_name, start_time_secs=start_time)
    for key, value in hparams.items():
        kind = _kind(key, value)
        info = api_pb2.HParamInfo(
            name=key,
            type={
                bool: api_pb2.DATA_TYPE_BOOL,
                float: api_pb2.DATA_TYPE_FLOAT64,
                str: api_pb2.DATA_TYPE_STRING,
            }[kind],
            differs=key in differs,
        )
        domain = [False, True] if kind is bool else CHOICES.get(CHOICE_KEYS.get(key, key))
        if domain:
            info.domain_discrete.extend(list(domain))
        infos.append(info)
        if value is not None:
            try:
                start.hparams[key].CopyFrom(_value(kind, value))
            except (TypeError, ValueError):  # not of the column's type: left out, never fatal
                continue
    shown = {k: v for k, v in metrics.items() if v is not None and not math.isnan(v)}
    experiment = api_pb2.Experiment(
        hparam_infos=infos,
        metric_infos=[api_pb2.MetricInfo(name=api_pb2.MetricName(tag=tag)) for tag in metrics],
        time_created_secs=start_time,
    )
    writer = logger.experiment
    for tag, value in shown.items():
        if tag not in already_logged:
            writer.add_scalar(tag, value, global_step=0)
    file_writer = writer._get_file_writer()
    file_writer.add_summary(_summary(metadata.EXPERIMENT_TAG, {"experiment": experiment}))
    file_writer.add_summary(
        _summary(metadata.SESSION_START_INFO_TAG, {"session_start_info": start})
    )
    end = SessionEndInfo(status=api_pb2.STATUS_SUCCESS, end_time_secs=time.time())
    file_writer.add_summary(_summary(metadata.SESSION_END_INFO_TAG, {"session_end_info": end}))
    writer.flush()

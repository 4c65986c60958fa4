"""What a run returns to a sweep: `optimized_metric` is one metric name or a list of them (one per
`hydra.sweeper.direction`, for a multi-objective study).

Metric names are validation metrics (`val/acc_lift`, `val/acc`, `val/loss`, ...) or
`train/wall_time_s`, the wall time of fitting (seconds; LSTM: `trainer.fit`, baselines: their fit).
A test metric is refused: sweeps select on validation, never on test.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from omegaconf import ListConfig

FIT_WALL_TIME = "train/wall_time_s"


def is_several(metric: Any) -> bool:
    return isinstance(metric, list | tuple | ListConfig)


def names(metric: Any) -> list[str]:
    return [str(m) for m in metric] if is_several(metric) else [str(metric)]


def check(metric: Any) -> None:
    """Raises ValueError for an empty list or a test metric."""
    found = names(metric)
    if not found:
        raise ValueError("optimized_metric=[]: name at least one validation metric")
    for name in found:
        if name.startswith("test"):
            raise ValueError(
                f"optimized_metric={metric if is_several(metric) else name}: sweeps select on "
                "validation, never on test"
            )


def pack(metric: Any, values: Sequence[float | None]) -> tuple[Any, Any]:
    """(optimized_metric, optimized_value) for metrics.json: a name and a number for one metric,
    lists for several."""
    if is_several(metric):
        return names(metric), list(values)
    return str(metric), values[0]


def returned(metrics: dict) -> float | tuple | None:
    """What the Hydra app returns to the sweeper: the value, or a tuple for several metrics."""
    value = metrics.get("optimized_value")
    return tuple(value) if isinstance(value, list) else value

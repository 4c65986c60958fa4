"""The data report: every tweet removed on the way to a labeled sample is counted here."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from lstm_tweets.data.io import json_default, write_json_atomic  # noqa: F401 (re-exported)

# Plain-words descriptions, used by the printed table and the README.
DESCRIPTIONS = {
    "rows_read": "rows in the tweets file",
    "duplicates_removed": "duplicate tweet ids removed",
    "retweets_excluded": "retweets excluded (data.include_retweets=false)",
    "outside_session": "posted outside an NYSE regular session",
    "window_crosses_close": "tweet time + interval falls after the session close",
    "no_completed_bar": "in session, but no bar of that session had completed yet",
    "no_price_coverage": "no fresh price bar at the start or end of the window",
    "ties_dropped": "no price change (within the dead band), dropped",
    "labeled": "labeled samples",
    "label_down": "labeled down (0)",
    "label_up": "labeled up (1)",
    "label_flat": "labeled flat (2, data.ties=class)",
    "no_volume_column": "labeled; volume_ratio NaN: the prices file has no volume column",
    "empty_window": "labeled; volume_ratio NaN: the window holds no bar (start bar = end bar)",
    "volume_gap": "labeled; volume_ratio NaN: a bar (or its volume) is missing inside the window",
    "no_volume_history": "labeled; volume_ratio NaN: < 10 of the previous 20 sessions have the window's bars",
    "dropped_no_volume_column": "data.target=volume: dropped, no volume column",
    "dropped_empty_window": "data.target=volume: dropped, empty window",
    "dropped_volume_gap": "data.target=volume: dropped, a bar missing inside the window",
    "dropped_no_volume_history": "data.target=volume: dropped, no volume history",
    "purged_at_split_boundaries": "label window crosses a split boundary, purged",
    "target_low": "activity target 0: at or below the train median of its half-hour slot",
    "target_high": "activity target 1: above the train median of its half-hour slot",
    "n_train": "train samples",
    "n_val": "validation samples",
    "n_test": "test samples",
}


@dataclass
class DataReport:
    """Counts (ints), plus `details`: what is not a count but defines the data, e.g. the target
    and its train-fitted thresholds. Both land in data_report.json (details after the counts)."""

    counts: dict[str, int] = field(default_factory=dict)
    details: dict = field(default_factory=dict)

    def add(self, key: str, n: int) -> None:
        self.counts[key] = self.counts.get(key, 0) + int(n)

    def __getitem__(self, key: str) -> int:
        return self.counts.get(key, 0)

    def to_dict(self) -> dict:
        return {**self.counts, **self.details}

    @classmethod
    def from_dict(cls, values: dict) -> DataReport:
        counts = {k: int(v) for k, v in values.items() if isinstance(v, int | float)}
        return cls(counts, {k: v for k, v in values.items() if k not in counts})

    def save(self, path: str | Path) -> None:
        write_json_atomic(path, self.to_dict())

    def as_table(self, title: str = "Data report"):
        from rich.table import Table

        table = Table(title=title)
        table.add_column("count", justify="right")
        table.add_column("what")
        for key, value in self.counts.items():
            table.add_row(f"{value:,}", f"{key}: {DESCRIPTIONS.get(key, '')}")
        for key, value in self.details.items():
            table.add_row("", f"{key}: {json.dumps(value, default=json_default)}")
        return table

    def print(self, title: str = "Data report") -> None:
        from rich.console import Console

        Console().print(self.as_table(title))

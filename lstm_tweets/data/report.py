"""The data report: every tweet removed on the way to a labeled sample is counted here."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from lstm_tweets.data.io import atomic_path

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
    "purged_at_split_boundaries": "label window crosses a split boundary, purged",
    "n_train": "train samples",
    "n_val": "validation samples",
    "n_test": "test samples",
}


@dataclass
class DataReport:
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, key: str, n: int) -> None:
        self.counts[key] = self.counts.get(key, 0) + int(n)

    def __getitem__(self, key: str) -> int:
        return self.counts.get(key, 0)

    def to_dict(self) -> dict[str, int]:
        return dict(self.counts)

    @classmethod
    def from_dict(cls, counts: dict) -> DataReport:
        return cls({k: int(v) for k, v in counts.items()})

    def save(self, path: str | Path) -> None:
        write_json_atomic(path, self.to_dict())

    def as_table(self, title: str = "Data report"):
        from rich.table import Table

        table = Table(title=title)
        table.add_column("count", justify="right")
        table.add_column("what")
        for key, value in self.counts.items():
            table.add_row(f"{value:,}", f"{key}: {DESCRIPTIONS.get(key, '')}")
        return table

    def print(self, title: str = "Data report") -> None:
        from rich.console import Console

        Console().print(self.as_table(title))


def write_json_atomic(path: str | Path, payload) -> None:
    """Write JSON so that a reader never sees a half-written file (a crash leaves the old one or none)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, default=_json_default) + "\n")


def _json_default(value):
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")

"""Where the tweets come from (`data.source`) -> the labeled frame, cached by content.

- `synthetic`: the generated sample (`synthetic.py`), labeled like real files;
- `archive`: a tweets file and a prices file (`labels.label_files`);
- `prelabeled`: one CSV that already holds `text,label`, used as it is (`load_prelabeled`).

The labeled frame and its data report are cached under `<cache_dir>/labeled/`, keyed by the
source, its files (path, size, mtime) and the labeling rule; the report is written last, so its
presence marks a complete entry and training never re-parses the CSVs.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lstm_tweets.data.errors import DataError
from lstm_tweets.data.features import COUNT_COLUMNS
from lstm_tweets.data.io import atomic_path, read_table, require_columns
from lstm_tweets.data.labels import label_files
from lstm_tweets.data.report import DataReport
from lstm_tweets.data.synthetic import VERSION as SYNTHETIC_VERSION
from lstm_tweets.data.synthetic import ensure_synthetic_sample
from lstm_tweets.data.tweets import parse_timestamps

SOURCES = ("synthetic", "archive", "prelabeled")
# 2: window_start rules, end_time purging; 3: log returns, abs_return_bps, volume_ratio
LABELED_CACHE_VERSION = 3


@dataclass(frozen=True)
class LabeledSource:
    """A source, its files and the labeling rule: everything the labeled frame depends on."""

    source: str = "synthetic"
    tweets_path: str | None = None
    prices_path: str | None = None
    path: str | None = None  # prelabeled
    prices_timezone: str = "America/New_York"
    timestamp_column: str | None = None
    bar_minutes: float | None = None
    include_retweets: bool = False
    synthetic_seed: int = 0
    # The labeling rule (ties and dead band as the labeler applies them: see
    # TweetDataModule.label_ties).
    interval: int = 5
    window_start: str = "after_tweet"
    ties: str = "drop"
    dead_band_bps: float = 0.0

    FILE_OPTIONS = (
        "tweets_path",
        "prices_path",
        "path",
        "prices_timezone",
        "timestamp_column",
        "bar_minutes",
        "include_retweets",
        "synthetic_seed",
    )

    def __post_init__(self):
        if self.source not in SOURCES:
            raise DataError(f"data.source={self.source!r}; expected one of {SOURCES}")

    def cache_path(self, cache_dir: str | Path) -> Path:
        key = {
            "version": LABELED_CACHE_VERSION,
            "source": self.source,
            "interval": self.interval,
            "window_start": self.window_start,
            "ties": self.ties,
            "dead_band_bps": self.dead_band_bps,
            "include_retweets": self.include_retweets,
            "timezone": self.prices_timezone,
            "timestamp_column": self.timestamp_column,
            "bar_minutes": self.bar_minutes,
            "synthetic": [SYNTHETIC_VERSION, self.synthetic_seed],
        }
        for name in ("tweets_path", "prices_path", "path"):
            value = getattr(self, name)
            if value is not None:
                file = Path(value).expanduser().resolve()
                stat = file.stat() if file.exists() else None
                key[name] = [
                    str(file),
                    stat.st_size if stat else None,
                    stat.st_mtime_ns if stat else None,
                ]
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
        return Path(cache_dir) / "labeled" / f"{self.source}-{digest}.parquet"

    def prepare(self, cache_dir: str | Path) -> None:
        """Label the files once into the cache (nothing to do on a complete entry)."""
        cache = self.cache_path(cache_dir)
        if cache.exists() and cache.with_suffix(".report.json").exists():
            return
        report = DataReport()
        frame = self.label(cache_dir, report)
        with atomic_path(cache) as tmp:  # several workers may build it at once
            frame.to_parquet(tmp, index=False)
        # The report is written last: its presence marks a complete cache entry.
        report.save(cache.with_suffix(".report.json"))

    def load(self, cache_dir: str | Path) -> tuple[pd.DataFrame, DataReport]:
        """The labeled frame and its data report, from the cache (labeling first if needed)."""
        cache = self.cache_path(cache_dir)
        if not (cache.exists() and cache.with_suffix(".report.json").exists()):
            self.prepare(cache_dir)
        frame = pd.read_parquet(cache)
        report = DataReport.from_dict(json.loads(cache.with_suffix(".report.json").read_text()))
        return frame, report

    def label(self, cache_dir: str | Path, report: DataReport) -> pd.DataFrame:
        if self.source == "prelabeled":
            return load_prelabeled(self.path, self.interval, report)
        if self.source == "synthetic":
            tweets_path, prices_path = ensure_synthetic_sample(cache_dir, seed=self.synthetic_seed)
        else:
            if not self.tweets_path or not self.prices_path:
                raise DataError("data=archive needs data.tweets_path and data.prices_path")
            tweets_path, prices_path = self.tweets_path, self.prices_path
            for key, value in (
                ("data.tweets_path", tweets_path),
                ("data.prices_path", prices_path),
            ):
                if not Path(value).expanduser().exists():
                    raise DataError(
                        f"{key}={value}: file not found (relative paths start at {Path.cwd()}). "
                        f"The real data lives in ../shared/data (see its README); point elsewhere "
                        f"with {key}=/path/to/file"
                    )
        return label_files(
            tweets_path,
            prices_path,
            self.interval,
            ties=self.ties,
            dead_band_bps=self.dead_band_bps,
            include_retweets=self.include_retweets,
            window_start=self.window_start,
            prices_timezone=self.prices_timezone,
            timestamp_column=self.timestamp_column,
            bar_minutes=self.bar_minutes,
            report=report,
        )


def load_prelabeled(path: str | None, interval: int, report: DataReport) -> pd.DataFrame:
    """A CSV that already holds `text,label` (optional counts and created_at), used as it is."""
    if not path:
        raise DataError("data=prelabeled needs data.path (a CSV with text,label columns)")
    raw = read_table(path, keep_default_na=False)
    require_columns(raw, ["text", "label"], path)
    report.add("rows_read", len(raw))
    labels = pd.to_numeric(raw["label"], errors="coerce")
    bad = labels.isna() | ~labels.isin([0, 1, 2])
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(
            f"{path}: row {row + 1}: label={raw['label'].astype(str).iloc[row]!r}; expected 0 (down), 1 (up) or 2 (flat)"
        )
    frame = pd.DataFrame(
        {
            "id": raw["id"].astype(str) if "id" in raw else raw.index.astype(str),
            "text": raw["text"].astype(str),
            "label": labels.astype("int64"),
        }
    )
    for column in COUNT_COLUMNS:
        frame[column] = (
            pd.to_numeric(raw[column], errors="coerce").fillna(0).to_numpy()
            if column in raw
            else 0.0
        )
    if "created_at" in raw:
        frame["created_at"] = parse_timestamps(raw["created_at"], path)
    else:
        # No timestamps (like the reference study's per-interval files): row order stands in for
        # time, which only a random split should rely on.
        frame["created_at"] = pd.Timestamp("1970-01-01", tz="UTC") + pd.to_timedelta(
            np.arange(len(frame)), unit="s"
        )
    frame["interval"] = interval
    frame = frame.sort_values("created_at", kind="stable").reset_index(drop=True)
    report.add("labeled", len(frame))
    report.add("label_down", int((frame["label"] == 0).sum()))
    report.add("label_up", int((frame["label"] == 1).sum()))
    return frame

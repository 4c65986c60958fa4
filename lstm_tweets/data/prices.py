"""Prices file -> validated minute bars: a UTC `timestamp` (bar start) with open/high/low/close,
and `volume` when the file has one (blank cells stay NaN: a bar without volume)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lstm_tweets.data.errors import DataError
from lstm_tweets.data.io import read_table, require_columns

TIMESTAMP_CANDIDATES = ["timestamp", "datetime", "date_time", "time", "date"]
PRICE_COLUMNS = ["open", "high", "low", "close"]


@dataclass
class PriceBars:
    frame: pd.DataFrame  # timestamp (UTC, bar start), open, high, low, close[, volume]
    bar_minutes: float
    source: str

    @property
    def has_volume(self) -> bool:
        return "volume" in self.frame

    @property
    def volumes(self) -> np.ndarray | None:
        """Volume per bar (NaN where the file left it blank), or None without a volume column."""
        return self.frame["volume"].to_numpy("float64") if self.has_volume else None

    @property
    def starts_ns(self) -> np.ndarray:
        return self.frame["timestamp"].to_numpy("datetime64[ns]").view("int64")

    @property
    def closes(self) -> np.ndarray:
        return self.frame["close"].to_numpy("float64")


def load_prices(
    path: str | Path,
    timestamp_column: str | None = None,
    timezone: str = "America/New_York",
    bar_minutes: float | None = None,
    ambiguous: str = "infer",
) -> PriceBars:
    """Load and validate bars. Naive stamps are local time in `timezone`; tz-aware stamps are kept.

    `ambiguous` says what to do with naive stamps in the repeated hour of a DST fall-back:
    'infer' (from the order of the bars), 'raise', 'earliest' or 'latest'.
    """
    path = Path(path)
    raw = read_table(path)
    raw.columns = [str(c).strip().lower() for c in raw.columns]
    column = timestamp_column.lower() if timestamp_column else _find_timestamp_column(raw, path)
    require_columns(raw, [column, "close"], path)

    stamps = _parse_price_stamps(raw[column], path, column, timezone, ambiguous)
    frame = pd.DataFrame({"timestamp": stamps})
    for name in PRICE_COLUMNS:
        source = name if name in raw else "close"  # close-only files still work
        values = pd.to_numeric(raw[source], errors="coerce")
        if values.isna().any():
            row = int(np.flatnonzero(values.isna().to_numpy())[0])
            raise DataError(
                f"{path}: row {row + 1}: {source}={raw[source].iloc[row]!r} is not a number"
            )
        frame[name] = values.astype("float64")
    if "volume" in raw:
        frame["volume"] = _volume(raw["volume"], path)
    _validate(frame, path)

    if bar_minutes is None:
        if len(frame) < 2:
            raise DataError(
                f"{path}: cannot infer the bar duration from a single bar; pass bar_minutes"
            )
        bar_minutes = infer_bar_minutes(frame["timestamp"])
    return PriceBars(frame=frame, bar_minutes=float(bar_minutes), source=str(path))


def _find_timestamp_column(raw: pd.DataFrame, path) -> str:
    for candidate in TIMESTAMP_CANDIDATES:
        if candidate in raw.columns:
            return candidate
    raise DataError(
        f"{path}: no timestamp column; expected one of {TIMESTAMP_CANDIDATES} "
        f"(or pass timestamp_column); found {list(raw.columns)}"
    )


def _parse_price_stamps(
    values: pd.Series, path, column: str, timezone: str, ambiguous: str
) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(values):
        parsed = values
    else:
        text = values.astype(str).str.strip()
        # Mixed offsets (e.g. -04:00 and -05:00 across DST) only parse together as UTC.
        has_offset = text.str.contains(r"(?:Z|[+-]\d\d:?\d\d)$", regex=True).all()
        parsed = pd.to_datetime(text, format="ISO8601", utc=has_offset, errors="coerce")
        if parsed.isna().any():
            parsed = pd.to_datetime(text, format="mixed", utc=has_offset, errors="coerce")
        if parsed.isna().any():
            row = int(np.flatnonzero(parsed.isna().to_numpy())[0])
            raise DataError(
                f"{path}: row {row + 1}: cannot parse {column}={values.iloc[row]!r} as a timestamp; "
                "expected ISO-8601 like '2019-09-03 09:30:00' or '2019-09-03T13:30:00Z'"
            )
    if parsed.dt.tz is not None:
        return parsed.dt.tz_convert("UTC").reset_index(drop=True)
    ambiguous_arg = {"earliest": True, "latest": False}.get(ambiguous, ambiguous)
    if ambiguous_arg not in ("infer", "raise", True, False):
        raise DataError(f"ambiguous={ambiguous!r}; expected infer, raise, earliest or latest")
    try:
        local = parsed.dt.tz_localize(timezone, ambiguous=ambiguous_arg, nonexistent="raise")
    except Exception as err:  # pytz/zoneinfo raise several types for DST problems
        raise DataError(
            f"{path}: naive {column} stamps cannot be localized to {timezone}: {err}. Stamps in a DST "
            "switch hour need ambiguous='earliest'/'latest', or give stamps with a UTC offset"
        ) from err
    return local.dt.tz_convert("UTC").reset_index(drop=True)


def _volume(values: pd.Series, path) -> pd.Series:
    """Numbers >= 0; a blank cell is a bar without volume (NaN), anything else is an error."""
    numbers = pd.to_numeric(values, errors="coerce").astype("float64").reset_index(drop=True)
    blank = values.isna().to_numpy() | (values.astype(str).str.strip() == "").to_numpy()
    bad = (numbers.isna().to_numpy() & ~blank) | (numbers < 0).to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{path}: row {row + 1}: volume={values.iloc[row]!r} is not a number >= 0 "
            "(leave it blank for a bar without volume)"
        )
    return numbers


def _validate(frame: pd.DataFrame, path) -> None:
    stamps = frame["timestamp"].to_numpy("datetime64[ns]")
    steps = np.diff(stamps.view("int64"))
    if (steps < 0).any():
        row = int(np.flatnonzero(steps < 0)[0]) + 1
        raise DataError(
            f"{path}: row {row + 1}: timestamps are not sorted ({frame['timestamp'].iloc[row]} comes after "
            f"{frame['timestamp'].iloc[row - 1]}); sort the file by time"
        )
    if (steps == 0).any():
        row = int(np.flatnonzero(steps == 0)[0]) + 1
        raise DataError(
            f"{path}: row {row + 1}: duplicate timestamp {frame['timestamp'].iloc[row]}"
        )
    prices = frame[PRICE_COLUMNS].to_numpy()
    if (prices <= 0).any():
        row = int(np.flatnonzero((prices <= 0).any(axis=1))[0])
        raise DataError(
            f"{path}: row {row + 1}: prices must be positive, got {frame.iloc[row].to_dict()}"
        )
    if (frame["high"] < frame["low"]).any():
        row = int(np.flatnonzero((frame["high"] < frame["low"]).to_numpy())[0])
        raise DataError(
            f"{path}: row {row + 1}: high < low ({frame['high'].iloc[row]} < {frame['low'].iloc[row]})"
        )


def infer_bar_minutes(stamps: pd.Series) -> float:
    """The most common spacing between consecutive bars (gaps overnight and in halts are rarer)."""
    steps = np.diff(stamps.to_numpy("datetime64[ns]").view("int64"))
    if len(steps) == 0:
        raise DataError("cannot infer the bar duration from a single bar; pass bar_minutes")
    values, counts = np.unique(steps, return_counts=True)
    return float(values[np.argmax(counts)] / 60e9)

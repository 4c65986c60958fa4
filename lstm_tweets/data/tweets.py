"""Tweets file -> canonical frame: id, created_at (UTC), text, retweet_count, favorite_count, is_retweet.

Reads the Trump Twitter Archive exports (JSON with `created_at` like `Wed Oct 10 20:19:24 +0000 2018`,
the old CSV export, the newer `id,text,isRetweet,...,favorites,retweets,date` export) and plain
CSV/Parquet files already in the canonical columns.
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import pandas as pd

from lstm_tweets.data.errors import DataError
from lstm_tweets.data.io import read_table
from lstm_tweets.data.report import DataReport

CANONICAL_COLUMNS = ["id", "created_at", "text", "retweet_count", "favorite_count", "is_retweet"]

# Each export names the same thing differently; the first alias found wins.
COLUMN_ALIASES = {
    "id": ["id", "id_str"],
    "created_at": ["created_at", "date"],
    "text": ["text"],
    "retweet_count": ["retweet_count", "retweets"],
    "favorite_count": ["favorite_count", "favorites"],
    "is_retweet": ["is_retweet", "isRetweet"],
}

# Tried in order; the archive formats are explicit so that no guess swaps day and month.
TIME_FORMATS = ["%a %b %d %H:%M:%S %z %Y", "%m-%d-%Y %H:%M:%S", "ISO8601"]

TRUE_STRINGS = {"true", "t", "1", "yes", "y"}
FALSE_STRINGS = {"false", "f", "0", "no", "n", ""}


def load_tweets(path: str | Path, report: DataReport | None = None) -> pd.DataFrame:
    """Load any supported tweets file as the canonical frame, sorted by time, duplicates removed."""
    path = Path(path)
    raw = read_table(path, dtype={"id": str, "id_str": str}, keep_default_na=False)
    frame = pd.DataFrame(index=raw.index)
    for canonical, aliases in COLUMN_ALIASES.items():
        found = next((a for a in aliases if a in raw.columns), None)
        if found is not None:
            frame[canonical] = raw[found]
    missing = [c for c in ("id", "created_at", "text") if c not in frame.columns]
    if missing:  # name the raw columns: the canonical frame only holds the ones that were found
        expected = {c: COLUMN_ALIASES[c] for c in missing}
        raise DataError(
            f"{path}: missing column(s) {missing} (any of {expected}); found {list(raw.columns)}"
        )

    frame["id"] = frame["id"].astype(str).str.strip()
    frame["created_at"] = parse_timestamps(frame["created_at"], path)
    frame["text"] = frame["text"].fillna("").astype(str).map(html.unescape)
    for column in ("retweet_count", "favorite_count"):
        frame[column] = parse_counts(frame[column], column, path) if column in frame else 0
    if "is_retweet" in frame:
        frame["is_retweet"] = parse_flags(frame["is_retweet"], path)
    else:
        frame["is_retweet"] = False
    # Source flags are unreliable in some exports; an "RT @" prefix is unambiguous.
    frame["is_retweet"] |= frame["text"].str.startswith("RT @")

    n_read = len(frame)
    frame = frame.drop_duplicates(subset="id", keep="first")
    frame = frame.sort_values(["created_at", "id"], kind="stable").reset_index(drop=True)
    if report is not None:
        report.add("rows_read", n_read)
        report.add("duplicates_removed", n_read - len(frame))
    return frame[CANONICAL_COLUMNS]


def parse_timestamps(values: pd.Series, path: Path | str, column: str = "created_at") -> pd.Series:
    """Parse a time column to tz-aware UTC. Naive stamps in tweet files are UTC (the archive's rule)."""
    if pd.api.types.is_datetime64_any_dtype(values):
        parsed = (
            values.dt.tz_localize("UTC") if values.dt.tz is None else values.dt.tz_convert("UTC")
        )
        return _check_parsed(parsed, values, path, column)
    numeric = pd.to_numeric(values, errors="coerce")
    if numeric.notna().all():
        # Epoch numbers: the newer archive export uses milliseconds.
        unit = "ms" if numeric.abs().max() > 1e11 else "s"
        return pd.to_datetime(numeric, unit=unit, utc=True)
    text = values.astype(str).str.strip()
    for fmt in TIME_FORMATS:
        parsed = pd.to_datetime(text, format=fmt, utc=True, errors="coerce")
        if parsed.notna().all():
            return parsed
    # Report the first row that the most successful format could not read.
    best = max(
        (pd.to_datetime(text, format=f, utc=True, errors="coerce") for f in TIME_FORMATS),
        key=lambda p: p.notna().sum(),
    )
    return _check_parsed(best, values, path, column)


def _check_parsed(parsed: pd.Series, raw: pd.Series, path, column: str) -> pd.Series:
    bad = np.flatnonzero(parsed.isna().to_numpy())
    if len(bad):
        row = int(bad[0])
        raise DataError(
            f"{path}: row {row + 1} (data row, 1-based): cannot parse {column}={raw.iloc[row]!r} as a "
            f"timestamp ({len(bad)} bad row(s) in all); expected e.g. 'Wed Oct 10 20:19:24 +0000 2018' "
            "or ISO-8601 like '2018-10-10T20:19:24Z'"
        )
    return parsed


def parse_counts(values: pd.Series, column: str, path) -> pd.Series:
    numeric = pd.to_numeric(values.replace("", np.nan), errors="coerce")
    bad = np.flatnonzero(
        numeric.isna().to_numpy() & (values.astype(str).str.strip() != "").to_numpy()
    )
    if len(bad):
        row = int(bad[0])
        raise DataError(f"{path}: row {row + 1}: {column}={values.iloc[row]!r} is not a number")
    if (numeric < 0).any():
        row = int(np.flatnonzero((numeric < 0).to_numpy())[0])
        raise DataError(f"{path}: row {row + 1}: {column} is negative ({numeric.iloc[row]})")
    return numeric.fillna(0).astype("int64")


def parse_flags(values: pd.Series, path) -> pd.Series:
    if pd.api.types.is_bool_dtype(values):
        return values.astype(bool)
    text = values.astype(str).str.strip().str.lower()
    unknown = ~text.isin(TRUE_STRINGS | FALSE_STRINGS | {"nan", "none"})
    if unknown.any():
        row = int(np.flatnonzero(unknown.to_numpy())[0])
        raise DataError(
            f"{path}: row {row + 1}: is_retweet={values.iloc[row]!r}; expected true/false"
        )
    return text.isin(TRUE_STRINGS)

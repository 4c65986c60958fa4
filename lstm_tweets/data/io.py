"""Read a table from CSV, Parquet or JSON (optionally gzipped) with errors that name the file;
write files atomically (`atomic_path`, `write_json_atomic`): a reader never sees half a file."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from lstm_tweets.data.errors import DataError


def table_format(path: Path) -> str:
    name = path.name.lower()
    for suffix in (".gz", ".bz2", ".zip", ".xz"):
        name = name.removesuffix(suffix)
    for fmt in ("csv", "parquet", "json", "jsonl"):
        if name.endswith("." + fmt):
            return fmt
    if name.endswith(".pq"):
        return "parquet"
    raise DataError(
        f"{path}: unknown table format; expected .csv, .parquet, .json or .jsonl (optionally .gz)"
    )


def read_table(path: str | Path, **csv_kwargs) -> pd.DataFrame:
    """Read a whole table. Every failure becomes a DataError naming the file."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: file is empty")
    fmt = table_format(path)
    try:
        if fmt == "csv":
            frame = pd.read_csv(path, encoding="utf-8", **csv_kwargs)
        elif fmt == "parquet":
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_json(path, lines=fmt == "jsonl", dtype=False, convert_dates=False)
    except UnicodeDecodeError as err:
        raise DataError(
            f"{path}: not valid UTF-8 text (byte {err.start}); re-encode the file as UTF-8"
        ) from err
    except pd.errors.EmptyDataError as err:
        raise DataError(f"{path}: file has no rows") from err
    except (ValueError, OSError, pd.errors.ParserError) as err:
        raise DataError(f"{path}: cannot read as {fmt}: {err}") from err
    if frame.empty:
        raise DataError(f"{path}: file has a header but no rows")
    return frame


def require_columns(frame: pd.DataFrame, columns: list[str], path: str | Path) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; found {list(frame.columns)}")


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path` to write to. On success it replaces `path` in one
    rename; on failure it is removed. Readers never see half a file, and a crash leaves none."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(
        f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp"
    )  # unique per writer
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json_atomic(path: str | Path, payload) -> None:
    """Write JSON so that a reader never sees a half-written file (a crash leaves the old one or none)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, default=json_default) + "\n")


def json_default(value):
    """JSON for what `json` cannot write itself: numpy scalars and dates."""
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")

"""Labeled samples -> train/val/test index sets, by time, with purging at the boundaries.

A sample's label window runs from created_at to the instant of its end price (`end_time`: the
close of the bar containing created_at + interval, which can lie up to a bar past it; frames
without end_time use created_at + interval). If that window crosses a split boundary, its label
depends on prices from the next split's period; such samples are purged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from lstm_tweets.data.errors import DataError

logger = logging.getLogger(__name__)

SPLITS = ("chronological", "random", "walk_forward")


@dataclass
class Split:
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    purged: int = 0

    def summary(self, frame: pd.DataFrame) -> dict:
        """Sizes, date ranges and class balance of each part (saved with the run)."""
        out = {"purged_at_split_boundaries": self.purged}
        for name in ("train", "val", "test"):
            part = frame.iloc[getattr(self, name)]
            out[name] = {
                "n": len(part),
                "first": part["created_at"].min().isoformat() if len(part) else None,
                "last": part["created_at"].max().isoformat() if len(part) else None,
                "class_counts": {
                    int(k): int(v) for k, v in part["label"].value_counts().sort_index().items()
                },
            }
        return out


@dataclass(frozen=True)
class SplitOptions:
    """data.split, data.split_fractions and the walk-forward fold (data.folds, data.fold,
    data.fold_period)."""

    split: str = "chronological"
    split_fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)
    folds: int = 4
    fold: int = 0
    fold_period: str | None = None

    def apply(self, frame: pd.DataFrame, seed: int = 0) -> Split:
        return split_samples(
            frame,
            self.split,
            tuple(self.split_fractions),
            seed,
            self.folds,
            self.fold,
            self.fold_period,
        )


def split_samples(
    frame: pd.DataFrame,
    method: str = "chronological",
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
    seed: int = 0,
    folds: int = 4,
    fold: int = 0,
    fold_period: str | None = None,
) -> Split:
    """Split a labeled frame (sorted by created_at) into index arrays."""
    if method not in SPLITS:
        raise DataError(f"data.split={method!r}; expected one of {SPLITS}")
    if len(fractions) != 3 or any(f <= 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
        raise DataError(
            f"data.split_fractions={list(fractions)}; expected three positive shares summing to 1"
        )
    n = len(frame)
    if method == "random":
        logger.warning(
            "data.split=random shuffles samples across time: neighbouring tweets share market moves, "
            "so the test score is optimistic. Use it only to reproduce a shuffled study."
        )
        order = np.random.default_rng(seed).permutation(n)
        n_train, n_val = int(n * fractions[0]), int(n * fractions[1])
        parts = [
            np.sort(order[:n_train]),
            np.sort(order[n_train : n_train + n_val]),
            np.sort(order[n_train + n_val :]),
        ]
        _require_nonempty(parts, n)
        return Split(*parts)

    times = frame["created_at"].to_numpy("datetime64[ns]")
    if (np.diff(times.view("int64")) < 0).any():
        raise DataError("labeled samples must be sorted by created_at before a time split")
    window_end = times + (frame["interval"].to_numpy("int64") * 60_000_000_000).astype(
        "timedelta64[ns]"
    )
    if "end_time" in frame:
        window_end = np.maximum(window_end, frame["end_time"].to_numpy("datetime64[ns]"))

    if method == "chronological":
        cut_train, cut_val = int(n * fractions[0]), int(n * (fractions[0] + fractions[1]))
        parts = [np.arange(0, cut_train), np.arange(cut_train, cut_val), np.arange(cut_val, n)]
    else:
        parts = walk_forward_parts(
            frame, folds, fold, fold_period, val_share=fractions[1] / (fractions[0] + fractions[1])
        )

    # A sample is purged if its window reaches past the first sample of any later part.
    purged = 0
    kept = []
    for i, part in enumerate(parts):
        if i + 1 < len(parts) and len(parts[i + 1]) and len(part):
            boundary = times[parts[i + 1][0]]
            keep = window_end[part] <= boundary
            purged += int((~keep).sum())
            part = part[keep]
        kept.append(part)
    _require_nonempty(kept, n)
    return Split(*kept, purged=purged)


def _require_nonempty(parts: list[np.ndarray], n: int) -> None:
    for name, part in zip(("train", "val", "test"), parts, strict=True):
        if len(part) == 0:
            raise DataError(
                f"the {name} split is empty ({n} labeled samples); use more data or other fractions"
            )


def walk_forward_parts(frame, folds, fold, fold_period, val_share) -> list[np.ndarray]:
    """Expanding window: fold k tests on block k+1 and trains on everything before it (the last
    `val_share` of that history, by time, is validation). Blocks are calendar periods (e.g. 'Q')
    when `fold_period` is set, else `folds + 1` equal-count blocks."""
    n = len(frame)
    if fold_period:
        periods = frame["created_at"].dt.tz_convert(None).dt.to_period(fold_period)
        codes, uniques = pd.factorize(periods, sort=True)
        blocks = [np.flatnonzero(codes == c) for c in range(len(uniques))]
    else:
        blocks = np.array_split(np.arange(n), folds + 1)
    n_folds = len(blocks) - 1
    if not 0 <= fold < n_folds:
        raise DataError(f"data.fold={fold}; this walk-forward split has folds 0..{n_folds - 1}")
    history = np.concatenate(blocks[: fold + 1])
    cut = int(len(history) * (1 - val_share))
    return [history[:cut], history[cut:], blocks[fold + 1]]


def count_walk_forward_folds(frame: pd.DataFrame, folds: int, fold_period: str | None) -> int:
    if not fold_period:
        return folds
    periods = frame["created_at"].dt.tz_convert(None).dt.to_period(fold_period)
    return periods.nunique() - 1

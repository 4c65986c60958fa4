"""What a model predicts (`data.target`): the direction, or the market's activity after the tweet.

- `direction` (default): the up/down label of `labels.py`, as it is.
- `abs_move`: 1 when the window's absolute log return (`abs_return_bps`) exceeds the median of the
  TRAIN tweets in the same half-hour slot of the session, else 0;
- `volume`: likewise with `volume_ratio` (tweets without one are dropped and counted).

The thresholds are per slot because activity has a strong time-of-day pattern: a tweet at 9:35
and one at 14:00 live in different volatility regimes, and one overall median would mostly
predict the time of day. Slot k covers [9:30 + 30k, 9:30 + 30(k+1)) New York time (0..12 in a
regular session). The medians are fitted on the train split only (a slot without train tweets
falls back to the overall train median), so the test period's volatility never moves them; they
go into the data report and the checkpoint, so that a prediction says what 1 meant.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from lstm_tweets.data.errors import DataError

TARGETS = ("direction", "abs_move", "volume")
TARGET_COLUMNS = {"abs_move": "abs_return_bps", "volume": "volume_ratio"}
SLOT_MINUTES = 30
SESSION_OPEN_MINUTE = 9 * 60 + 30  # 9:30 New York
N_SLOTS = 13  # 9:30 .. 16:00
NEW_YORK = "America/New_York"
# What class 1 means, for reports and predictions.
CLASS_NAMES = {
    "direction": ["down", "up", "flat"],
    "abs_move": ["small move", "large move"],
    "volume": ["low volume", "high volume"],
}


def check_target(target: str) -> str:
    if target not in TARGETS:
        raise DataError(f"data.target={target!r}; expected one of {TARGETS}")
    return target


def half_hour_slot(created_at) -> np.ndarray:
    """Half-hour slot of the session (New York time: 0 = 9:30-10:00, ..., 12 = 15:30-16:00);
    instants before the open are -1 and after 16:00 are clipped to the last slot."""
    local = pd.to_datetime(pd.Series(created_at), utc=True).dt.tz_convert(NEW_YORK)
    minute = (local.dt.hour * 60 + local.dt.minute).to_numpy()
    slot = (minute - SESSION_OPEN_MINUTE) // SLOT_MINUTES
    return np.where(minute < SESSION_OPEN_MINUTE, -1, np.minimum(slot, N_SLOTS - 1))


def fit_activity_thresholds(frame: pd.DataFrame, train_index: np.ndarray, column: str) -> dict:
    """Per half-hour slot, the median of `column` over the TRAIN rows of that slot; slots with no
    train rows use the median over all train rows. Plain types only (it goes into JSON and the
    checkpoint): {"column", "slot_minutes", "overall", "by_slot": {"0": .., ..., "12": ..},
    "n_train_by_slot": {...}}."""
    if column not in frame:
        raise DataError(
            f"the activity target needs the column {column!r} (labels from a prices file); "
            "data=prelabeled has none"
        )
    values = frame[column].to_numpy("float64")[train_index]
    slots = half_hour_slot(frame["created_at"].to_numpy()[train_index])
    ok = ~np.isnan(values)
    if not ok.any():
        raise DataError(f"no train tweet has a {column}: cannot fit the activity threshold")
    overall = float(np.median(values[ok]))
    by_slot, n_by_slot = {}, {}
    for slot in range(N_SLOTS):
        mine = ok & (slots == slot)
        by_slot[str(slot)] = float(np.median(values[mine])) if mine.any() else overall
        n_by_slot[str(slot)] = int(mine.sum())
    return {
        "column": column,
        "slot_minutes": SLOT_MINUTES,
        "overall": overall,
        "by_slot": by_slot,
        "n_train_by_slot": n_by_slot,
    }


def slot_thresholds(thresholds: dict, created_at) -> np.ndarray:
    """The threshold that applies to each instant (its slot's, or the overall one)."""
    slots = half_hour_slot(created_at)
    table = np.array(
        [thresholds["by_slot"].get(str(s), thresholds["overall"]) for s in range(N_SLOTS)]
    )
    return np.where(slots >= 0, table[np.clip(slots, 0, N_SLOTS - 1)], thresholds["overall"])


def activity_labels(frame: pd.DataFrame, thresholds: dict, column: str) -> np.ndarray:
    """1 where `column` exceeds its slot's train threshold, else 0 (int64). No NaN allowed: the
    caller drops the tweets without a value first."""
    values = frame[column].to_numpy("float64")
    if np.isnan(values).any():
        raise DataError(
            f"{column} is NaN for {int(np.isnan(values).sum())} tweets; drop them first"
        )
    return (values > slot_thresholds(thresholds, frame["created_at"].to_numpy())).astype("int64")

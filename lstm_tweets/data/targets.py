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

from dataclasses import dataclass

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


@dataclass
class LabelMeaning:
    """What a class means: the target, its interval and window rule, the ties policy, the number
    of classes and an activity target's train-fitted thresholds. It travels in the checkpoint
    beside the features (the same flat keys since the first checkpoints; `from_state` fills in
    the keys that older checkpoints lack)."""

    target: str = "direction"
    interval: int = 5
    window_start: str = "after_tweet"
    ties: str = "drop"
    num_classes: int = 2
    thresholds: dict | None = None

    @staticmethod
    def classes(target: str, ties: str) -> int:
        # Ties (and the dead band) concern the direction only: for an activity target a tweet
        # without a price change is a small move, kept (ties="down" keeps every tweet).
        return 3 if ties == "class" and target == "direction" else 2

    @property
    def class_names(self) -> list[str]:
        return CLASS_NAMES[self.target][: self.num_classes]

    def state_dict(self) -> dict:
        return {
            "num_classes": self.num_classes,
            "interval": self.interval,
            "window_start": self.window_start,
            "ties": self.ties,
            "target": self.target,
            "thresholds": self.thresholds,
        }

    @classmethod
    def from_state(cls, state: dict) -> LabelMeaning:
        return cls(
            target=state.get("target", "direction"),  # checkpoints from before targets
            interval=int(state["interval"]),
            window_start=state.get("window_start", "after_tweet"),
            ties=state["ties"],
            num_classes=int(state["num_classes"]),
            thresholds=state.get("thresholds"),
        )

    def describe(self) -> str:
        """One line on what class 1 of an activity target means, with its train thresholds."""
        thresholds = self.thresholds or {}
        by_slot = thresholds.get("by_slot", {})
        span = f"{min(by_slot.values()):.3g}-{max(by_slot.values()):.3g}" if by_slot else "unknown"
        return (
            f"target {self.target}: P(the {thresholds.get('column', '?')} over the "
            f"{self.interval} min after the tweet exceeds the train median of its half-hour "
            f"slot; medians {span})"
        )


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

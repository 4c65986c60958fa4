"""Canonical tweets + price bars -> one up/down label per tweet for an interval of N minutes.

Two rules for the label window of a tweet at t (`window_start`):

- `after_tweet` (the default): the start price is the close of the bar that CONTAINS t (the first
  bar that completes at or after t and starts at or before t), the end price the close of the bar
  that contains t+N. No price move from before the tweet enters its label: with the last bar
  completed before t as the start (the other rule), on average half a bar of the "reaction" (2.5
  minutes with 5-minute bars) happened before the tweet, so a tweet that reacts to a move looks
  predictive of it.
- `before_tweet` (reproductions, comparisons): the closes of the last bars completed at or before t
  and at or before t+N.

Both bars must lie in the same NYSE regular session (exchange_calendars XNYS: holidays and early
closes included), and a missing bar where one is needed drops the tweet (counted). The momentum
baseline's prior return always uses bars completed at or before t: it may only see the past.
Everything is vectorized with searchsorted; there is no Python loop per tweet.

Beside the label, per tweet (the activity targets of `targets.py` and the event study use them):

- `return_bps` = 10,000 x ln(end price / start price) over the label window (its sign is the
  direction label; the dead band compares |return_bps|), and `abs_return_bps` = |return_bps|;
- `volume_ratio`: the volume traded in the window's bars (those whose returns make up the window
  return: from the bar after the start bar to the end bar, inclusive) divided by the median volume
  of the same time-of-day slots over the previous 20 sessions of the price file (`grid.py`); NaN,
  counted in the report under its reason (`grid.VOLUME_REASONS`), where there is no such ratio.
  These are counts, not drops: the direction label does not need volume.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from lstm_tweets.data.errors import DataError
from lstm_tweets.data.grid import VOLUME_REASONS, session_grid, volume_ratio
from lstm_tweets.data.prices import PriceBars, load_prices
from lstm_tweets.data.report import DataReport
from lstm_tweets.data.tweets import load_tweets

TIES = ("drop", "down", "class")
WINDOW_STARTS = ("after_tweet", "before_tweet")
UP, DOWN, FLAT = 1, 0, 2
MINUTE_NS = 60_000_000_000

# Why a tweet gets no label, in the order they are checked: each tweet counts under the first.
DROP_REASONS = (
    "retweets_excluded",
    "outside_session",
    "window_crosses_close",
    "no_completed_bar",
    "no_price_coverage",
    "ties_dropped",
)
LABEL_COLUMNS = [
    "id",
    "created_at",
    "start_time",
    "end_time",
    "start_price",
    "end_price",
    "return_bps",
    "abs_return_bps",
    "volume_ratio",
    "label",
]


@lru_cache(maxsize=8)
def nyse_sessions(first_day: str, last_day: str) -> tuple[np.ndarray, np.ndarray]:
    """Open and close instants (UTC ns) of every XNYS regular session between two dates."""
    import exchange_calendars as xcals

    calendar = xcals.get_calendar("XNYS", start=first_day, end=last_day)
    opens = (
        calendar.opens.dt.tz_convert("UTC")
        if calendar.opens.dt.tz
        else calendar.opens.dt.tz_localize("UTC")
    )
    closes = (
        calendar.closes.dt.tz_convert("UTC")
        if calendar.closes.dt.tz
        else calendar.closes.dt.tz_localize("UTC")
    )
    return opens.to_numpy("datetime64[ns]").view("int64"), closes.to_numpy("datetime64[ns]").view(
        "int64"
    )


def sessions_covering(times_ns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    first = pd.Timestamp(times_ns.min(), tz="UTC") - pd.Timedelta(days=7)
    last = pd.Timestamp(times_ns.max(), tz="UTC") + pd.Timedelta(days=7)
    # Whole calendar years, so that repeated calls on different tweets hit the cache: building
    # the XNYS calendar costs ~0.4 s whatever the range.
    return nyse_sessions(f"{first.year}-01-01", f"{last.year}-12-31")


def label_tweets(
    tweets: pd.DataFrame,
    prices: PriceBars,
    interval: int,
    ties: str = "drop",
    dead_band_bps: float = 0.0,
    include_retweets: bool = False,
    report: DataReport | None = None,
    window_start: str = "after_tweet",
) -> pd.DataFrame:
    """Return the labeled tweets: the canonical columns plus the label window, prices and label.

    Every tweet that gets no label is counted in `report` under exactly one reason.
    """
    if ties not in TIES:
        raise DataError(f"data.ties={ties!r}; expected one of {TIES}")
    if window_start not in WINDOW_STARTS:
        raise DataError(f"data.window_start={window_start!r}; expected one of {WINDOW_STARTS}")
    if interval <= 0:
        raise DataError(f"data.interval={interval}; expected a positive number of minutes")
    if interval < prices.bar_minutes:
        raise DataError(
            f"data.interval={interval} min is shorter than the {prices.bar_minutes:g}-min bars of "
            f"{prices.source}; use finer bars or a longer interval"
        )
    report = report if report is not None else DataReport()
    if len(tweets) == 0:
        raise DataError("no tweets to label")

    t = tweets["created_at"].to_numpy("datetime64[ns]").view("int64")
    horizon = t + interval * MINUTE_NS
    starts = prices.starts_ns
    bar_ns = int(round(prices.bar_minutes * MINUTE_NS))
    completes = starts + bar_ns
    closes = prices.closes
    if t.max() < starts[0] or t.min() > completes[-1]:
        raise DataError(
            f"{prices.source}: prices cover {prices.frame['timestamp'].iloc[0]} .. "
            f"{prices.frame['timestamp'].iloc[-1]} but tweets run {tweets['created_at'].iloc[0]} .. "
            f"{tweets['created_at'].iloc[-1]}: no overlap"
        )

    opens_ns, closes_ns = sessions_covering(t)
    session = np.searchsorted(opens_ns, t, side="right") - 1
    session_ok = session >= 0
    session = np.where(session_ok, session, 0)
    open_t, close_t = opens_ns[session], closes_ns[session]
    in_session = session_ok & (t >= open_t) & (t < close_t)

    last_done = np.searchsorted(completes, t, side="right") - 1  # last bar completed by t
    if window_start == "after_tweet":
        start_bar, start_ok = containing_bar(starts, completes, t)
        end_bar, end_ok = containing_bar(starts, completes, horizon)
        # Each bar must lie in the tweet's session (a bar of the next morning never "contains"
        # a time inside this session: the containing test already fails there).
        start_fresh = start_ok & (starts[start_bar] >= open_t) & (completes[start_bar] <= close_t)
        end_fresh = end_ok & (starts[end_bar] >= open_t) & (completes[end_bar] <= close_t)
        too_early = np.zeros(len(t), dtype=bool)  # the bar containing t exists from the open on
    else:
        start_bar = last_done
        end_bar = np.searchsorted(completes, horizon, side="right") - 1
        start_ok = start_bar >= 0
        start_bar, end_bar = np.maximum(start_bar, 0), np.maximum(end_bar, 0)
        # Bars must belong to the tweet's session and be fresh: a bar that completed a whole bar
        # or more before the instant it stands for means a gap in the price data (halts, missing
        # hours).
        start_fresh = start_ok & (starts[start_bar] >= open_t) & (t - completes[start_bar] < bar_ns)
        end_fresh = (starts[end_bar] >= open_t) & (horizon - completes[end_bar] < bar_ns)
        too_early = t < open_t + bar_ns

    start_price, end_price = closes[start_bar], closes[end_bar]
    return_bps = np.log(end_price / start_price) * 1e4
    is_tie = np.abs(return_bps) <= dead_band_bps

    dropped_by = {
        "retweets_excluded": tweets["is_retweet"].to_numpy(bool) & (not include_retweets),
        "outside_session": ~in_session,
        "window_crosses_close": horizon > close_t,
        "no_completed_bar": too_early,
        "no_price_coverage": ~(start_fresh & end_fresh),
        "ties_dropped": is_tie & (ties == "drop"),
    }
    keep = np.ones(len(t), dtype=bool)
    for name in DROP_REASONS:
        dropped = dropped_by[name] & keep
        report.add(name, int(dropped.sum()))
        keep &= ~dropped

    label = np.where(return_bps > 0, UP, DOWN)
    if ties == "class":
        label = np.where(is_tie, FLAT, label)
    else:  # "down" keeps ties as down; "drop" removed them above
        label = np.where(is_tie, DOWN, label)

    labeled = tweets.loc[keep].copy()
    # The instants whose closes are compared: the label's information ends at end_time.
    labeled["start_time"] = pd.to_datetime(completes[start_bar][keep], utc=True)
    labeled["end_time"] = pd.to_datetime(completes[end_bar][keep], utc=True)
    labeled["start_price"] = start_price[keep]
    labeled["end_price"] = end_price[keep]
    labeled["return_bps"] = return_bps[keep]
    labeled["abs_return_bps"] = np.abs(return_bps[keep])
    ratio, reason = window_volume_ratio(prices, start_bar[keep], end_bar[keep])
    labeled["volume_ratio"] = ratio
    labeled["volume_reason"] = np.asarray(["", *VOLUME_REASONS], dtype=object)[reason + 1]
    labeled["prior_return_bps"] = prior_return_bps(
        t, open_t, starts, completes, closes, last_done, interval, bar_ns
    )[keep]
    labeled["label"] = label[keep].astype("int64")
    labeled["interval"] = interval
    labeled["window_start"] = window_start
    labeled = labeled.reset_index(drop=True)

    report.add("labeled", len(labeled))
    for name, value in (("label_down", DOWN), ("label_up", UP)) + (
        (("label_flat", FLAT),) if ties == "class" else ()
    ):
        report.add(name, int((labeled["label"] == value).sum()))
    for name in VOLUME_REASONS:  # labeled all the same: only volume_ratio is NaN
        report.add(name, int((labeled["volume_reason"] == name).sum()))
    return labeled


def label_files(
    tweets_path: str | Path,
    prices_path: str | Path,
    interval: int,
    *,
    ties: str = "drop",
    dead_band_bps: float = 0.0,
    include_retweets: bool = False,
    window_start: str = "after_tweet",
    prices_timezone: str = "America/New_York",
    timestamp_column: str | None = None,
    bar_minutes: float | None = None,
    report: DataReport | None = None,
) -> pd.DataFrame:
    """A tweets file and a price bars file -> the labeled tweets (`label_tweets`), counting every
    tweet read and dropped in `report`. The one path from files to labels: the datamodule and
    `lstm-tweets-label` both take it."""
    report = report if report is not None else DataReport()
    tweets = load_tweets(tweets_path, report)
    prices = load_prices(prices_path, timestamp_column, prices_timezone, bar_minutes)
    return label_tweets(
        tweets,
        prices,
        interval,
        ties,
        dead_band_bps,
        include_retweets,
        report,
        window_start=window_start,
    )


def window_volume_ratio(
    prices: PriceBars, start_bar: np.ndarray, end_bar: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """volume_ratio of each label window (bars start_bar+1 .. end_bar) and its NaN reason (an
    index into VOLUME_REASONS, -1 for none); see `grid.volume_ratio`. The grid holds every
    session of the price file, also those before the first tweet (they are history)."""
    if len(start_bar) == 0:
        return np.zeros(0), np.zeros(0, dtype=int)
    grid = session_grid(prices, *sessions_covering(prices.starts_ns[[0, -1]]))
    rows = grid.row_of_bar[start_bar]
    rows = np.where(grid.row_of_bar[end_bar] == rows, rows, -1)  # both on the same row's grid
    return volume_ratio(grid, rows, grid.slot_of_bar[start_bar] + 1, grid.slot_of_bar[end_bar])


def containing_bar(
    starts: np.ndarray, completes: np.ndarray, instants: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Index of the bar that contains each instant (the first bar completing at or after it, if
    that bar starts at or before it), and whether there is one (False: a gap in the bars)."""
    found = np.searchsorted(completes, instants, side="left")
    index = np.minimum(found, len(completes) - 1)
    ok = (found < len(completes)) & (starts[index] <= instants)
    return index, ok


def prior_return_bps(
    t, open_t, starts, completes, closes, last_done, interval, bar_ns
) -> np.ndarray:
    """Market log return (bps) over the N minutes before the tweet, from bars completed at or before t
    whatever the label rule (momentum may only see the past), NaN where that window leaves the
    session or the bars are stale. This feeds the momentum baseline."""
    start_bar = np.maximum(last_done, 0)
    before = t - interval * MINUTE_NS
    found = np.searchsorted(completes, before, side="right") - 1
    prior_bar = np.maximum(found, 0)
    ok = (
        (found >= 0)
        & (last_done >= 0)
        & (starts[start_bar] >= open_t)
        & (t - completes[start_bar] < bar_ns)
        & (before >= open_t)
        & (starts[prior_bar] >= open_t)
        & (before - completes[prior_bar] < bar_ns)
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        value = np.log(closes[start_bar] / closes[prior_bar]) * 1e4
    return np.where(ok, value, np.nan)

"""A per-tweet reference for `label_tweets`: slow on purpose, written straight from the semantics.

For a tweet at t and an interval of N minutes, checked in this order (a tweet is counted under the
first reason that drops it):
- retweets are excluded unless asked for;
- the tweet must fall inside an XNYS regular session (the calendar's schedule, looked up by the
  tweet's New York date): open <= t < close;
- t + N must not pass that session's close;
- then the two bars whose closes are compared, by `window_start`:
  - `after_tweet` (the default): a bar covers the closed span [start, start + one bar], so an
    instant on a bar boundary lies in two bars and belongs to the one that ends there. Start = the
    bar that contains t: the first bar (in time) that completes at or after t, if it starts at or
    before t; end = the bar that contains t + N, found the same way. No bar containing either
    instant (a gap in the bars), or a bar that does not lie in the tweet's session (it starts
    before the open or completes after the close), drops the tweet as `no_price_coverage`.
    `no_completed_bar` never applies (its count stays 0).
  - `before_tweet`: at least one bar of the session must have completed by t (t >= open + one
    bar), or `no_completed_bar`; start = the last bar of the session that completed at or before
    t, end = the last bar of the session that completed at or before t + N; each must be fresh
    (completed less than one bar before the instant it stands for), or there is a gap in the price
    data (`no_price_coverage`);
- return_bps = 10,000 x ln(end close / start close), abs_return_bps its absolute value; within
  the dead band it is a tie (dropped, down or flat);
- volume_ratio (never a drop; NaN with a counted reason, checked in this order):
  `no_volume_column` when the prices have no volume; `empty_window` when start and end are one
  bar; else the window's bars are those that start one bar after the start bar, two bars after,
  ..., up to the end bar's start; `volume_gap` when one of them is missing or has no volume; the
  denominator takes the 20 sessions with bars (a bar lying wholly in the session) before the
  tweet's session, and in each the bars at the same offsets from its open; a session that lacks
  one of them is left out; with fewer than 10 left, or a median of 0, `no_volume_history`; else
  volume_ratio = the window's summed volume / the median of the sessions' sums.

`start_time` and `end_time` in the output are the completion instants of the two bars.

No searchsorted, no vectorization: one Python step per tweet, so that it is easy to check by eye.
The benchmark and `tests/test_reference_labeler.py` compare `label_tweets` against it.
"""

from __future__ import annotations

import math
import statistics

import exchange_calendars as xcals
import pandas as pd

from lstm_tweets.data.grid import VOLUME_REASONS
from lstm_tweets.data.labels import DROP_REASONS, LABEL_COLUMNS
from lstm_tweets.data.prices import PriceBars

NEW_YORK = "America/New_York"
# Only the names are shared with the library (the output contract); the logic below is separate.
REASONS = DROP_REASONS
COLUMNS = LABEL_COLUMNS
NO_VOLUME = VOLUME_REASONS
HISTORY_SESSIONS, MIN_HISTORY = 20, 10


def reference_label_tweets(
    tweets: pd.DataFrame,
    prices: PriceBars,
    interval: int,
    ties: str = "drop",
    dead_band_bps: float = 0.0,
    include_retweets: bool = False,
    lookup: SessionLookup | None = None,
    window_start: str = "after_tweet",
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Return (labeled rows in `COLUMNS`, count of tweets dropped per reason)."""
    if window_start not in ("after_tweet", "before_tweet"):
        raise ValueError(f"window_start={window_start!r}")
    window = pd.Timedelta(minutes=interval)
    bar = pd.Timedelta(minutes=prices.bar_minutes)
    local_days = tweets["created_at"].dt.tz_convert(NEW_YORK).dt.date
    if lookup is None:
        lookup = SessionLookup(prices, local_days.min(), local_days.max())

    sessions, bars_of_session, no_bars = lookup.sessions, lookup.bars_of_session, lookup.no_bars
    bars_of_day = lookup.bars_of_day

    counts = dict.fromkeys(REASONS, 0)
    volume_counts = dict.fromkeys(NO_VOLUME, 0)
    rows = []
    for tweet, day in zip(tweets.itertuples(index=False), local_days, strict=True):
        t = tweet.created_at
        horizon = t + window
        if tweet.is_retweet and not include_retweets:
            counts["retweets_excluded"] += 1
            continue
        if day not in sessions or not (sessions[day][0] <= t < sessions[day][1]):
            counts["outside_session"] += 1
            continue
        open_, close = sessions[day]
        if horizon > close:
            counts["window_crosses_close"] += 1
            continue
        if window_start == "after_tweet":
            # All the bars of the New York date, also those outside the session: the bar that
            # contains an instant of the session starts on that date, whether or not it lies in
            # the session (that is checked next).
            day_bars = bars_of_day.get(day, no_bars)
            start = containing(day_bars, t)
            end = containing(day_bars, horizon)
            if (
                start is None
                or end is None
                or not in_session(start, open_, close)
                or not in_session(end, open_, close)
            ):
                counts["no_price_coverage"] += 1
                continue
        else:
            if t < open_ + bar:
                counts["no_completed_bar"] += 1
                continue
            day_bars = bars_of_session.get(day, no_bars)
            start = last_completed(day_bars, t)
            end = last_completed(day_bars, horizon)
            if (
                start is None
                or end is None
                or t - start.completed >= bar
                or horizon - end.completed >= bar
            ):
                counts["no_price_coverage"] += 1
                continue
        return_bps = math.log(end.close / start.close) * 1e4
        if abs(return_bps) <= dead_band_bps:
            if ties == "drop":
                counts["ties_dropped"] += 1
                continue
            label = 2 if ties == "class" else 0
        else:
            label = 1 if return_bps > 0 else 0
        ratio, why = reference_volume_ratio(lookup, day, start, end, bar)
        if why is not None:
            volume_counts[why] += 1
        rows.append(
            (
                tweet.id,
                t,
                start.completed,
                end.completed,
                start.close,
                end.close,
                return_bps,
                abs(return_bps),
                ratio,
                label,
            )
        )
    return pd.DataFrame(rows, columns=COLUMNS), counts | volume_counts


def reference_volume_ratio(lookup: SessionLookup, day, start, end, bar: pd.Timedelta):
    """(volume_ratio, None) or (NaN, the reason), one session at a time."""
    if not lookup.has_volume:
        return math.nan, "no_volume_column"
    open_ = lookup.sessions[day][0]
    offsets = []
    instant = start.timestamp + bar
    while instant <= end.timestamp:
        offsets.append(instant - open_)
        instant += bar
    if not offsets:
        return math.nan, "empty_window"
    own = window_volume(lookup, day, offsets)
    if own is None:
        return math.nan, "volume_gap"
    earlier = [d for d in lookup.days_with_bars if d < day][-HISTORY_SESSIONS:]
    sums = [v for v in (window_volume(lookup, d, offsets) for d in earlier) if v is not None]
    if len(sums) < MIN_HISTORY or statistics.median(sums) <= 0:
        return math.nan, "no_volume_history"
    return own / statistics.median(sums), None


def window_volume(lookup: SessionLookup, day, offsets) -> float | None:
    """Summed volume of the bars of session `day` that start at these offsets from its open, or
    None when one is missing, has no volume or does not lie wholly in the session."""
    open_, close = lookup.sessions[day]
    total = 0.0
    for offset in offsets:
        volume = lookup.volume_of.get(open_ + offset)
        if volume is None or math.isnan(volume) or open_ + offset + lookup.bar > close:
            return None
        total += volume
    return total


def containing(day_bars: pd.DataFrame, instant: pd.Timestamp):
    """The bar that contains `instant` (bars cover [start, start + one bar]; on a boundary, the bar
    that ends there): the first bar that completes at or after it, if that bar starts at or
    before it; None when there is none (a gap in the bars)."""
    later = day_bars[day_bars["completed"] >= instant]
    if later.empty:
        return None
    first = later.iloc[0]
    return first if first["timestamp"] <= instant else None


def in_session(bar_row, open_: pd.Timestamp, close: pd.Timestamp) -> bool:
    """Whether the whole bar lies in the session: it starts at or after the open and completes at
    or before the close."""
    return bar_row["timestamp"] >= open_ and bar_row["completed"] <= close


def last_completed(day_bars: pd.DataFrame, instant: pd.Timestamp):
    """The session's last bar that completed at or before `instant`, or None."""
    done = day_bars[day_bars["completed"] <= instant]
    if done.empty:
        return None
    return done.iloc[-1]


class SessionLookup:
    """The XNYS sessions by New York date, the bars of each session (those starting inside it),
    and all the bars of each New York date (session or not)."""

    def __init__(self, prices: PriceBars, first_day, last_day):
        # The calendar spans the tweets and the bars: sessions before the first tweet are volume
        # history.
        bar_days = prices.frame["timestamp"].iloc[[0, -1]].dt.tz_convert(NEW_YORK).dt.date
        calendar = xcals.get_calendar(
            "XNYS",
            start=str(min(first_day, bar_days.iloc[0]) - pd.Timedelta(days=7)),
            end=str(max(last_day, bar_days.iloc[1]) + pd.Timedelta(days=7)),
        )
        self.sessions = {
            day.date(): (row.open.tz_convert("UTC"), row.close.tz_convert("UTC"))
            for day, row in calendar.schedule.iterrows()
        }
        bars = prices.frame[["timestamp", "close"]].copy()
        bars["completed"] = bars["timestamp"] + pd.Timedelta(minutes=prices.bar_minutes)
        bars["day"] = bars["timestamp"].dt.tz_convert(NEW_YORK).dt.date
        self.bars_of_session = {}
        self.bars_of_day = {}
        for day, day_bars in bars.groupby("day"):
            self.bars_of_day[day] = day_bars
            if day in self.sessions:
                open_, close = self.sessions[day]
                self.bars_of_session[day] = day_bars[
                    (day_bars["timestamp"] >= open_) & (day_bars["timestamp"] < close)
                ]
        self.no_bars = bars.iloc[:0]
        self.bar = pd.Timedelta(minutes=prices.bar_minutes)
        self.add_volume(prices)

    def add_volume(self, prices: PriceBars) -> None:
        """Volume by bar start, and the sessions that hold a bar lying wholly inside them."""
        self.has_volume = "volume" in prices.frame
        volumes = prices.frame["volume"] if self.has_volume else [math.nan] * len(prices.frame)
        self.volume_of = dict(zip(prices.frame["timestamp"], volumes, strict=True))
        self.days_with_bars = sorted(
            day
            for day, day_bars in self.bars_of_day.items()
            if day in self.sessions
            and (
                (day_bars["timestamp"] >= self.sessions[day][0])
                & (day_bars["completed"] <= self.sessions[day][1])
            ).any()
        )


# Computed with a logarithm: numpy's vectorized log (AVX-512 builds) and the C library's
# math.log may differ in the last bit, so these two columns agree to a few units in the last
# place, not bit for bit. Every other column, the labels and the drop counts must be identical.
LOG_COLUMNS = ["return_bps", "abs_return_bps"]


def assert_same_labels(fast: pd.DataFrame, report, slow: pd.DataFrame, counts: dict) -> None:
    """`label_tweets`'s rows and DataReport against this reference's: the same drop counts and the
    same rows (ids, windows, prices, labels, volume ratios) exactly, returns to 1e-12 relative."""
    assert {k: report[k] for k in counts} == counts
    assert report["labeled"] == len(fast) == len(slow)
    fast = fast[COLUMNS].reset_index(drop=True)
    slow = slow.astype({"label": "int64"})
    for column in ("created_at", "start_time", "end_time"):
        fast[column] = pd.to_datetime(fast[column], utc=True).dt.as_unit("ns")
        slow[column] = pd.to_datetime(slow[column], utc=True).dt.as_unit("ns")
    exact = [c for c in COLUMNS if c not in LOG_COLUMNS]
    pd.testing.assert_frame_equal(fast[exact], slow[exact], check_exact=True, check_dtype=False)
    pd.testing.assert_frame_equal(
        fast[LOG_COLUMNS], slow[LOG_COLUMNS], check_exact=False, rtol=1e-12, atol=0.0
    )

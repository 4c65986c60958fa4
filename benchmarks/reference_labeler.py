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
- return = end close / start close - 1; within the dead band it is a tie (dropped, down or flat).

`start_time` and `end_time` in the output are the completion instants of the two bars.

No searchsorted, no vectorization: one Python step per tweet, so that it is easy to check by eye.
The benchmark and `tests/test_reference_labeler.py` compare `label_tweets` against it.
"""

from __future__ import annotations

import exchange_calendars as xcals
import pandas as pd

from lstm_tweets.data.labels import DROP_REASONS, LABEL_COLUMNS
from lstm_tweets.data.prices import PriceBars

NEW_YORK = "America/New_York"
# Only the names are shared with the library (the output contract); the logic below is separate.
REASONS = DROP_REASONS
COLUMNS = LABEL_COLUMNS


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
        return_bps = (end.close / start.close - 1.0) * 1e4
        if abs(return_bps) <= dead_band_bps:
            if ties == "drop":
                counts["ties_dropped"] += 1
                continue
            label = 2 if ties == "class" else 0
        else:
            label = 1 if return_bps > 0 else 0
        rows.append(
            (tweet.id, t, start.completed, end.completed, start.close, end.close, return_bps, label)
        )
    return pd.DataFrame(rows, columns=COLUMNS), counts


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
        calendar = xcals.get_calendar(
            "XNYS",
            start=str(first_day - pd.Timedelta(days=7)),
            end=str(last_day + pd.Timedelta(days=7)),
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

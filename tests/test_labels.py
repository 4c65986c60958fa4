"""Labels: hand-computed windows and prices on tiny bar files, NYSE calendar edge cases, ties,
and a property test that no label ever looks past the bar containing t+N.

The first hand-computed tests were written for the `before_tweet` rule (last bars completed at or
before t and t+N) and pass it explicitly; tests whose tweets sit on whole minutes of 1-minute bars
run under both rules (on a bar boundary the bar containing t is the one that ends there, which is
also the last one completed); the `after_tweet` tests (the default: bars containing t and t+N)
follow them."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from lstm_tweets.data.errors import DataError
from lstm_tweets.data.labels import (
    DROP_REASONS,
    LABEL_COLUMNS,
    WINDOW_STARTS,
    label_tweets,
    nyse_sessions,
)
from lstm_tweets.data.prices import PriceBars, load_prices
from lstm_tweets.data.report import DataReport

ET = "America/New_York"


def et(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz=ET).tz_convert("UTC")


def utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def session_rows(day: str, bar_minutes: int, close_of, start="09:30", end="16:00", skip=()):
    """Naive New York bar-start stamps from `start` until `end` (exclusive); close_of(k) for bar k."""
    stamps = pd.date_range(
        f"{day} {start}", f"{day} {end}", freq=f"{bar_minutes}min", inclusive="left"
    )
    return [
        (s.strftime("%Y-%m-%d %H:%M:%S"), round(close_of(k), 2))
        for k, s in enumerate(stamps)
        if s.strftime("%H:%M") not in skip
    ]


def write_bars(path, rows, bar_minutes=None) -> PriceBars:
    lines = ["timestamp,open,high,low,close,volume"]
    lines += [f"{s},{c},{c + 0.02:.2f},{c - 0.02:.2f},{c},100" for s, c in rows]
    path.write_text("\n".join(lines) + "\n")
    return load_prices(path, bar_minutes=bar_minutes)


def make_tweets(*specs) -> pd.DataFrame:
    """specs: (id, instant, is_retweet) -> the canonical tweets frame."""
    return pd.DataFrame(
        {
            "id": [s[0] for s in specs],
            "created_at": pd.DatetimeIndex([s[1] for s in specs]).tz_convert("UTC"),
            "text": [f"tweet {s[0]}" for s in specs],
            "retweet_count": 0,
            "favorite_count": 0,
            "is_retweet": [bool(s[2]) if len(s) > 2 else False for s in specs],
        }
    )


def label(tweets, bars, interval, **options):
    report = DataReport()
    labeled = label_tweets(tweets, bars, interval, report=report, **options)
    # Every tweet is either labeled or counted under exactly one drop reason.
    assert report["labeled"] + sum(report[r] for r in DROP_REASONS) == len(tweets)
    assert report["labeled"] == len(labeled)
    return labeled.set_index("id"), report


def rising(k):  # 1-minute day: the bar starting at 09:30 + k minutes closes at 100 + k cents
    return 100 + 0.01 * k


def test_session_edges_with_one_minute_bars(tmp_path):
    bars = write_bars(tmp_path / "bars.csv", session_rows("2019-06-03", 1, rising))
    tweets = make_tweets(
        ("pre_open", et("2019-06-03 09:29:00")),
        ("at_open", et("2019-06-03 09:30:00")),
        ("before_first_bar_done", et("2019-06-03 09:30:59")),
        ("first_bar_done", et("2019-06-03 09:31:00")),
        ("retweet", et("2019-06-03 12:00:30"), True),
        ("last_window", et("2019-06-03 15:55:00")),
        ("one_second_late", et("2019-06-03 15:55:01")),
        ("late", et("2019-06-03 15:59:00")),
        ("at_close", et("2019-06-03 16:00:00")),
    )
    labeled, report = label(tweets, bars, 5, window_start="before_tweet")

    assert report.counts == {
        "retweets_excluded": 1,
        "outside_session": 2,
        "window_crosses_close": 2,
        "no_completed_bar": 2,
        "no_price_coverage": 0,
        "ties_dropped": 0,
        "labeled": 2,
        "label_down": 0,
        "label_up": 2,
        # Counts, not drops: one day of bars is no volume history.
        "no_volume_column": 0,
        "empty_window": 0,
        "volume_gap": 0,
        "no_volume_history": 2,
    }
    assert list(labeled.index) == ["first_bar_done", "last_window"]
    assert set(LABEL_COLUMNS) - {"id"} <= set(labeled.columns)
    first = labeled.loc["first_bar_done"]
    # Start: the 09:30 bar, completed 09:31. End: the 09:35 bar, completed 09:36 = t + 5.
    assert (first.start_time, first.end_time) == (et("2019-06-03 09:31"), et("2019-06-03 09:36"))
    assert (first.start_price, first.end_price) == (100.00, 100.05)
    assert first.return_bps == pytest.approx(np.log(100.05 / 100.00) * 1e4)
    assert first.label == 1
    last = labeled.loc["last_window"]
    # 15:55 + 5 = 16:00: the end bar is the 15:59 bar, which completes exactly at the close.
    assert (last.start_time, last.end_time) == (et("2019-06-03 15:55"), et("2019-06-03 16:00"))
    assert (last.start_price, last.end_price) == (103.84, 103.89)
    assert last.return_bps == pytest.approx(np.log(103.89 / 103.84) * 1e4)


@pytest.mark.parametrize("window_start", WINDOW_STARTS)
def test_fifty_minute_window_crossing_the_close(tmp_path, window_start):
    bars = write_bars(tmp_path / "bars.csv", session_rows("2019-06-03", 1, rising))
    tweets = make_tweets(
        ("fits", et("2019-06-03 15:10:00")), ("crosses", et("2019-06-03 15:11:00"))
    )
    labeled, report = label(tweets, bars, 50, window_start=window_start)
    assert report["window_crosses_close"] == 1 and list(labeled.index) == ["fits"]
    row = labeled.loc["fits"]
    assert (row.start_time, row.end_time) == (et("2019-06-03 15:10"), et("2019-06-03 16:00"))
    assert (row.start_price, row.end_price) == (103.39, 103.89)


def test_five_minute_bars_use_completed_bars_only(tmp_path):
    # Falling day: the bar starting at 09:30 + 5k minutes closes at 200 - 5k cents.
    bars = write_bars(
        tmp_path / "bars.csv", session_rows("2019-06-04", 5, lambda k: 200 - 0.05 * k)
    )
    assert bars.bar_minutes == 5.0
    tweets = make_tweets(
        ("first_bar_open", et("2019-06-04 09:34:59")),
        ("first_bar_done", et("2019-06-04 09:35:00")),
        ("mid_bar", et("2019-06-04 10:02:00")),
        ("last_window", et("2019-06-04 15:55:00")),
        ("crosses", et("2019-06-04 15:57:00")),
    )
    labeled, report = label(tweets, bars, 5, window_start="before_tweet")
    assert (report["no_completed_bar"], report["window_crosses_close"], report["labeled"]) == (
        1,
        1,
        3,
    )
    assert report["label_down"] == 3

    mid = labeled.loc["mid_bar"]
    # At 10:02 the 10:00 bar is still open: the start is the 09:55 bar (completed 10:00), and the
    # end (t+5 = 10:07) is the 10:00 bar (completed 10:05), not the 10:05 bar still open at 10:07.
    assert (mid.start_time, mid.end_time) == (et("2019-06-04 10:00"), et("2019-06-04 10:05"))
    assert (mid.start_price, mid.end_price) == (199.75, 199.70)
    assert mid.return_bps == pytest.approx(np.log(199.70 / 199.75) * 1e4)
    assert mid.label == 0
    first = labeled.loc["first_bar_done"]
    assert (first.start_time, first.end_time) == (et("2019-06-04 09:35"), et("2019-06-04 09:40"))
    assert (first.start_price, first.end_price) == (200.00, 199.95)
    last = labeled.loc["last_window"]
    assert (last.start_time, last.end_time) == (et("2019-06-04 15:55"), et("2019-06-04 16:00"))
    assert (last.start_price, last.end_price) == (196.20, 196.15)


def test_interval_not_a_multiple_of_the_bar(tmp_path):
    bars = write_bars(
        tmp_path / "bars.csv", session_rows("2019-06-04", 5, lambda k: 200 - 0.05 * k)
    )
    tweets = make_tweets(("a", et("2019-06-04 10:02:00")), ("b", et("2019-06-04 10:03:00")))
    labeled, _ = label(tweets, bars, 7, window_start="before_tweet")
    # 10:09 is still inside the 10:05 bar; 10:10 completes it.
    assert labeled.loc["a", "end_time"] == et("2019-06-04 10:05")
    assert labeled.loc["b", "end_time"] == et("2019-06-04 10:10")
    assert labeled.loc["b", "end_price"] == 199.65
    with pytest.raises(
        DataError, match=r"data\.interval=3 min is shorter than the 5-min bars of .*bars\.csv"
    ):
        label_tweets(tweets, bars, 3)
    with pytest.raises(DataError, match=r"data\.window_start='sideways'; expected one of"):
        label_tweets(tweets, bars, 5, window_start="sideways")


def test_early_close_after_thanksgiving(tmp_path):  # before_tweet; after_tweet further down
    # 2019-11-29 closes at 13:00 ET. The feed also holds post-close bars (as the Alpha Vantage
    # file does on 2020-11-27): the calendar, not the data, decides where the session ends.
    rows = session_rows("2019-11-29", 1, lambda k: 300 + 0.01 * k, end="13:30")
    bars = write_bars(tmp_path / "bars.csv", rows)
    tweets = make_tweets(
        ("fits", et("2019-11-29 12:50:00")),
        ("ends_at_close", et("2019-11-29 12:55:00")),
        ("crosses", et("2019-11-29 12:58:00")),
        ("after_close", et("2019-11-29 13:10:00")),
    )
    labeled, report = label(tweets, bars, 5, window_start="before_tweet")
    assert (report["window_crosses_close"], report["outside_session"], report["labeled"]) == (
        1,
        1,
        2,
    )
    fits = labeled.loc["fits"]
    assert (fits.start_time, fits.end_time) == (et("2019-11-29 12:50"), et("2019-11-29 12:55"))
    assert (fits.start_price, fits.end_price) == (301.99, 302.04)
    assert labeled.loc["ends_at_close", "end_time"] == utc("2019-11-29 18:00")  # 13:00 EST
    assert labeled.loc["ends_at_close", "end_price"] == 302.09


@pytest.mark.parametrize("window_start", WINDOW_STARTS)
def test_good_friday_is_closed(tmp_path, window_start):
    rows = []
    for base, day in ((10, "2019-04-18"), (20, "2019-04-19"), (30, "2019-04-22")):
        rows += session_rows(
            day, 1, lambda k, base=base: base + 0.01 * k
        )  # bars even on the holiday
    bars = write_bars(tmp_path / "bars.csv", rows)
    tweets = make_tweets(
        ("thursday", et("2019-04-18 11:00:00")),
        ("good_friday", et("2019-04-19 11:00:00")),
        ("monday", et("2019-04-22 11:00:00")),
    )
    labeled, report = label(tweets, bars, 5, window_start=window_start)
    assert report["outside_session"] == 1 and list(labeled.index) == ["thursday", "monday"]
    # 11:00 is bar k=89 completing; start = close of the 10:59 bar (under after_tweet too: the
    # bar containing a boundary instant is the one that ends there).
    assert labeled.loc["thursday", "start_price"] == 10.89
    assert labeled.loc["monday", "start_price"] == 30.89


@pytest.mark.parametrize(
    ("friday", "monday", "friday_open_utc", "monday_open_utc"),
    [
        ("2019-03-08", "2019-03-11", "14:30", "13:30"),  # spring-forward on Sunday 03-10
        ("2019-11-01", "2019-11-04", "13:30", "14:30"),  # fall-back on Sunday 11-03
    ],
)
def test_dst_switch(tmp_path, friday, monday, friday_open_utc, monday_open_utc):
    days = {friday: (friday_open_utc, 10.0), monday: (monday_open_utc, 20.0)}
    rows = []
    for day, (_, base) in days.items():
        rows += session_rows(day, 1, lambda k, base=base: base + 0.01 * k)  # naive New York stamps
    bars = write_bars(tmp_path / "bars.csv", rows)
    tweets = make_tweets(
        *[(f"{day} {hm}", utc(f"{day} {hm}")) for day in days for hm in ("13:35", "14:35")],
        ("monday open", utc(f"{monday} {monday_open_utc}")),
    )
    labeled, report = label(tweets, bars, 5, window_start="before_tweet")
    # Only on the winter-time day is 13:35Z (08:35 local) before the 14:30Z open.
    assert report["outside_session"] == 1
    assert report["no_completed_bar"] == 1  # the tweet at Monday's 09:30 local
    assert report["labeled"] == 3
    for day, (open_utc, base) in days.items():
        open_at = utc(f"{day} {open_utc}")
        for hm in ("13:35", "14:35"):
            t = utc(f"{day} {hm}")
            if t < open_at:
                assert f"{day} {hm}" not in labeled.index
                continue
            row = labeled.loc[f"{day} {hm}"]
            k = int((t - open_at) / pd.Timedelta(minutes=1)) - 1  # the bar that completed at t
            assert (row.start_time, row.end_time) == (t, t + pd.Timedelta(minutes=5))
            assert (row.start_price, row.end_price) == (
                round(base + 0.01 * k, 2),
                round(base + 0.01 * (k + 5), 2),
            )


def tie_day(k):
    # Flat at 100.00 until the 10:29 bar, then up one cent a minute.
    return 100.0 if k <= 59 else 100.0 + 0.01 * (k - 59)


TIE_TWEETS = [
    ("flat", et("2019-06-05 10:00:00")),  # 100.00 -> 100.00: a tie
    ("small", et("2019-06-05 10:40:00")),  # 100.10 -> 100.15: +4.995 bps
    ("big", et("2019-06-05 10:20:00")),  # 100.00 (10:19 bar) -> 100.20 (10:49 bar, N=30 below)
]


@pytest.mark.parametrize(
    ("ties", "dead_band", "expected_labels", "ties_dropped"),
    [
        ("drop", 0.0, {"small": 1, "big": 1}, 1),
        ("down", 0.0, {"flat": 0, "small": 1, "big": 1}, 0),
        ("class", 0.0, {"flat": 2, "small": 1, "big": 1}, 0),
        ("class", 5.0, {"flat": 2, "small": 2, "big": 1}, 0),
        ("drop", 5.0, {"big": 1}, 2),
        ("class", 4.99, {"flat": 2, "small": 1, "big": 1}, 0),
    ],
)
@pytest.mark.parametrize("window_start", WINDOW_STARTS)  # whole minutes: the same bars
def test_ties_and_dead_band(tmp_path, ties, dead_band, expected_labels, ties_dropped, window_start):
    bars = write_bars(tmp_path / "bars.csv", session_rows("2019-06-05", 1, tie_day))
    small_and_flat = make_tweets(*TIE_TWEETS[:2])
    big = make_tweets(TIE_TWEETS[2])
    got, dropped = {}, 0
    for tweets, interval in ((small_and_flat, 5), (big, 30)):
        labeled, report = label(
            tweets, bars, interval, ties=ties, dead_band_bps=dead_band, window_start=window_start
        )
        got.update(labeled["label"].to_dict())
        dropped += report["ties_dropped"]
        assert report["label_flat"] == int((labeled["label"] == 2).sum())
        if ties != "class":
            assert "label_flat" not in report.counts
        if "small" in labeled.index:
            assert labeled.loc["small", "return_bps"] == pytest.approx(
                np.log(100.15 / 100.10) * 1e4
            )
        if "flat" in labeled.index:
            assert labeled.loc["flat", "return_bps"] == 0.0
        if "big" in labeled.index:
            assert (labeled.loc["big", "start_price"], labeled.loc["big", "end_price"]) == (
                100.0,
                100.2,
            )
    assert got == expected_labels
    assert dropped == ties_dropped


def test_unknown_ties_policy_and_bad_interval(tmp_path):
    bars = write_bars(tmp_path / "bars.csv", session_rows("2019-06-05", 1, tie_day))
    tweets = make_tweets(*TIE_TWEETS)
    with pytest.raises(DataError, match=r"data\.ties='up'"):
        label_tweets(tweets, bars, 5, ties="up")
    with pytest.raises(DataError, match=r"data\.interval=0"):
        label_tweets(tweets, bars, 0)


@pytest.mark.parametrize("window_start", WINDOW_STARTS)
def test_retweets_excluded_or_included(tmp_path, window_start):
    bars = write_bars(tmp_path / "bars.csv", session_rows("2019-06-03", 1, rising))
    tweets = make_tweets(
        ("own", et("2019-06-03 11:00:00")),
        ("rt", et("2019-06-03 11:00:00"), True),
        ("rt_outside", et("2019-06-03 20:00:00"), True),
    )
    labeled, report = label(tweets, bars, 5, window_start=window_start)
    # A retweet is counted as a retweet even when it is also outside the session.
    assert (report["retweets_excluded"], report["outside_session"]) == (2, 0)
    assert list(labeled.index) == ["own"]
    labeled, report = label(tweets, bars, 5, include_retweets=True, window_start=window_start)
    assert (report["retweets_excluded"], report["outside_session"]) == (0, 1)
    assert list(labeled.index) == ["own", "rt"]
    assert labeled.loc["rt", "start_price"] == labeled.loc["own", "start_price"] == 100.89


def test_gaps_in_the_price_data_are_not_bridged(tmp_path):  # before_tweet; after_tweet below
    halted = {f"11:{m:02d}" for m in range(30)}  # 11:00-11:29 missing
    bars = write_bars(tmp_path / "bars.csv", session_rows("2019-06-06", 1, rising, skip=halted))
    tweets = make_tweets(
        ("in_gap", et("2019-06-06 11:10:00")),  # last completed bar is 10:59 (11:00): stale
        ("end_in_gap", et("2019-06-06 10:58:00")),  # end t+5=11:03 falls in the gap
        ("straddles", et("2019-06-06 11:00:30")),  # start fresh (30 s old), end stale
        ("after_gap", et("2019-06-06 11:31:00")),
        ("no_bars_that_day", et("2019-06-07 11:00:00")),
    )
    labeled, report = label(tweets, bars, 5, window_start="before_tweet")
    assert report["no_price_coverage"] == 4 and list(labeled.index) == ["after_gap"]
    row = labeled.loc["after_gap"]
    assert (row.start_time, row.end_time) == (et("2019-06-06 11:31"), et("2019-06-06 11:36"))
    assert (row.start_price, row.end_price) == (
        101.20,
        101.25,
    )  # bars k=120 and k=125 (k counts the gap)


def test_prices_with_no_overlap(tmp_path):
    bars = write_bars(tmp_path / "spy_2019.csv", session_rows("2019-06-03", 1, rising))
    tweets = make_tweets(("old", utc("2018-01-02 15:00")), ("older", utc("2017-05-02 15:00")))
    with pytest.raises(DataError) as err:
        label_tweets(tweets, bars, 5)
    assert "spy_2019.csv" in str(err.value) and "no overlap" in str(err.value)


@pytest.mark.parametrize("window_start", WINDOW_STARTS)
def test_tweets_outside_the_price_range_are_counted(tmp_path, window_start):
    bars = write_bars(tmp_path / "bars.csv", session_rows("2019-06-03", 1, rising))
    tweets = make_tweets(
        ("before", et("2019-05-31 11:00")),
        ("inside", et("2019-06-03 11:00")),
        ("after", et("2019-06-04 11:00")),
    )
    labeled, report = label(tweets, bars, 5, window_start=window_start)
    assert report["no_price_coverage"] == 2 and list(labeled.index) == ["inside"]


# --- after_tweet (the default): the bars that contain t and t+N ---------------------------------


def falling(k):  # 5-minute day: the bar starting at 09:30 + 5k minutes closes at 200 - 5k cents
    return 200 - 0.05 * k


def test_after_tweet_one_minute_bars(tmp_path):
    bars = write_bars(tmp_path / "bars.csv", session_rows("2019-06-03", 1, rising))
    tweets = make_tweets(
        ("pre_open", et("2019-06-03 09:29:00")),
        ("at_open", et("2019-06-03 09:30:00")),
        ("in_first_bar", et("2019-06-03 09:30:59")),
        ("on_minute", et("2019-06-03 10:00:00")),
        ("retweet", et("2019-06-03 12:00:30"), True),
        ("mid_minute_late", et("2019-06-03 15:54:30")),
        ("last_window", et("2019-06-03 15:55:00")),
        ("one_second_late", et("2019-06-03 15:55:01")),
        ("late", et("2019-06-03 15:59:00")),
        ("at_close", et("2019-06-03 16:00:00")),
    )
    labeled, report = label(tweets, bars, 5)  # the default rule
    assert report.counts == {
        "retweets_excluded": 1,
        "outside_session": 2,
        "window_crosses_close": 2,
        "no_completed_bar": 0,  # never under after_tweet
        "no_price_coverage": 0,
        "ties_dropped": 0,
        "labeled": 5,
        "label_down": 0,
        "label_up": 5,
        "no_volume_column": 0,
        "empty_window": 0,
        "volume_gap": 0,
        "no_volume_history": 5,
    }
    assert (labeled["window_start"] == "after_tweet").all()
    expected = {
        # (start_time, end_time, start_price, end_price); k = minutes since 09:30 of the bar.
        # 09:30:00: no bar ends at the open, so the bar containing it is the 09:30 bar (k=0,
        # [09:30, 09:31]); t+5 = 09:35 lies in the bar that ends there (the 09:34 bar, k=4).
        "at_open": ("09:31", "09:35", 100.00, 100.04),
        # Inside the 09:30 bar (k=0); t+5 = 09:35:59 inside the 09:35 bar (k=5).
        "in_first_bar": ("09:31", "09:36", 100.00, 100.05),
        # On a boundary: the bar that ends there (09:59, k=29), as the last completed one.
        "on_minute": ("10:00", "10:05", 100.29, 100.34),
        "mid_minute_late": ("15:55", "16:00", 103.84, 103.89),
        # t+5 exactly at the close: the last bar of the session (15:59, k=389).
        "last_window": ("15:55", "16:00", 103.84, 103.89),
    }
    assert list(labeled.index) == list(expected)
    for name, (start, end, start_price, end_price) in expected.items():
        row = labeled.loc[name]
        assert (row.start_time, row.end_time) == (
            et(f"2019-06-03 {start}"),
            et(f"2019-06-03 {end}"),
        )
        assert (row.start_price, row.end_price) == (start_price, end_price), name
        assert row.return_bps == pytest.approx(np.log(end_price / start_price) * 1e4)


def test_after_tweet_five_minute_bars(tmp_path):
    bars = write_bars(tmp_path / "bars.csv", session_rows("2019-06-04", 5, falling))
    tweets = make_tweets(
        ("t_093120", et("2019-06-04 09:31:20")),
        ("t_093459", et("2019-06-04 09:34:59")),
        ("on_boundary", et("2019-06-04 10:00:00")),
        ("mid_bar", et("2019-06-04 10:02:00")),
        ("mid_last_bar_but_one", et("2019-06-04 15:51:00")),
        ("last_window", et("2019-06-04 15:55:00")),
        ("crosses", et("2019-06-04 15:57:00")),
    )
    labeled, report = label(tweets, bars, 5, window_start="after_tweet")
    assert (report["window_crosses_close"], report["no_completed_bar"], report["labeled"]) == (
        1,
        0,
        6,
    )
    assert report["label_down"] == 6
    expected = {
        # k = the bar starting at 09:30 + 5k. 09:31:20 lies in the 09:30 bar (k=0, closes at 09:35)
        # and t+5 = 09:36:20 in the 09:35 bar (k=1, closes at 09:40).
        "t_093120": ("09:35", "09:40", 200.00, 199.95),
        "t_093459": ("09:35", "09:40", 200.00, 199.95),  # before_tweet: no completed bar yet
        # On a boundary: the bar that ends there (09:55, k=5), then the 10:00 bar (k=6).
        "on_boundary": ("10:00", "10:05", 199.75, 199.70),
        # Inside the 10:00 bar (k=6): before_tweet would start at the 09:55 bar (199.75).
        "mid_bar": ("10:05", "10:10", 199.70, 199.65),
        "mid_last_bar_but_one": ("15:55", "16:00", 196.20, 196.15),
        # t+5 exactly at the close: the last bar (15:55, k=77).
        "last_window": ("15:55", "16:00", 196.20, 196.15),
    }
    assert list(labeled.index) == list(expected)
    for name, (start, end, start_price, end_price) in expected.items():
        row = labeled.loc[name]
        assert (row.start_time, row.end_time) == (
            et(f"2019-06-04 {start}"),
            et(f"2019-06-04 {end}"),
        )
        assert (row.start_price, row.end_price) == (start_price, end_price), name
        assert row.label == 0

    # Longer windows from 09:31:20: t+7 = 09:38:20 is still in the 09:35 bar, t+10 = 09:41:20 in
    # the 09:40 bar (k=2, closes at 09:45).
    tweet = make_tweets(("t_093120", et("2019-06-04 09:31:20")))
    for interval, end, end_price in ((7, "09:40", 199.95), (10, "09:45", 199.90)):
        row = label(tweet, bars, interval)[0].loc["t_093120"]
        assert (row.start_time, row.end_time) == (et("2019-06-04 09:35"), et(f"2019-06-04 {end}"))
        assert (row.start_price, row.end_price) == (200.00, end_price)


def test_after_tweet_at_the_open(tmp_path):
    bars = write_bars(tmp_path / "bars.csv", session_rows("2019-06-04", 5, falling))
    at_open = make_tweets(("at_open", et("2019-06-04 09:30:00")))
    # No bar ends at 09:30 (the feed starts at the open): the bar containing 09:30:00 is the 09:30
    # bar, [09:30, 09:35]. With N = 10 the end is the bar ending at 09:40 (k=1).
    labeled, report = label(at_open, bars, 10)
    row = labeled.loc["at_open"]
    assert (row.start_time, row.end_time) == (et("2019-06-04 09:35"), et("2019-06-04 09:40"))
    assert (row.start_price, row.end_price) == (200.00, 199.95)
    # With N = one bar, t+N = 09:35 lies in the bar that ends there, the same 09:30 bar: start and
    # end are one bar, the return is 0, a tie (dropped by default, flat under ties="class").
    labeled, report = label(at_open, bars, 5)
    assert (report["ties_dropped"], report["labeled"]) == (1, 0)
    labeled, report = label(at_open, bars, 5, ties="class")
    row = labeled.loc["at_open"]
    assert row.start_time == row.end_time == et("2019-06-04 09:35")
    assert (row.return_bps, row.label) == (0.0, 2)


def test_after_tweet_does_not_use_a_bar_from_before_the_open(tmp_path):
    # The feed has pre-market and after-hours bars (k = minutes since 09:00). A tweet exactly at
    # the open lies in the 09:29 bar, which ends at 09:30 but starts before the open: dropped.
    rows = session_rows("2019-06-03", 1, rising, start="09:00", end="16:30")
    bars = write_bars(tmp_path / "bars.csv", rows)
    tweets = make_tweets(
        ("at_open", et("2019-06-03 09:30:00")), ("just_after", et("2019-06-03 09:30:01"))
    )
    labeled, report = label(tweets, bars, 5)
    assert (report["no_price_coverage"], report["labeled"]) == (1, 1)
    row = labeled.loc["just_after"]
    assert (row.start_time, row.end_time) == (et("2019-06-03 09:31"), et("2019-06-03 09:36"))
    assert (row.start_price, row.end_price) == (100.30, 100.35)


def test_after_tweet_gaps(tmp_path):
    # The 10:30 bar (k=12) is missing; k still counts it.
    bars = write_bars(tmp_path / "bars.csv", session_rows("2019-06-04", 5, falling, skip={"10:30"}))
    tweets = make_tweets(
        ("before_gap", et("2019-06-04 10:22:00")),
        ("end_in_gap", et("2019-06-04 10:27:00")),  # t+5 = 10:32: no bar contains it
        ("in_gap", et("2019-06-04 10:31:00")),  # no bar contains t
        ("after_gap", et("2019-06-04 10:36:00")),
        ("no_bars_that_day", et("2019-06-05 11:00:00")),
    )
    labeled, report = label(tweets, bars, 5)
    assert (report["no_price_coverage"], report["labeled"]) == (3, 2)
    assert list(labeled.index) == ["before_gap", "after_gap"]
    before, after = labeled.loc["before_gap"], labeled.loc["after_gap"]
    assert (before.start_time, before.end_time) == (et("2019-06-04 10:25"), et("2019-06-04 10:30"))
    assert (before.start_price, before.end_price) == (199.50, 199.45)
    assert (after.start_time, after.end_time) == (et("2019-06-04 10:40"), et("2019-06-04 10:45"))
    assert (after.start_price, after.end_price) == (199.35, 199.30)
    # before_tweet drops other tweets: at 10:32 the 10:25 bar (done 10:30) is 2 minutes old, fresh,
    # so end_in_gap is labeled; at 10:36 it is 6 minutes old, stale (in_gap's end, after_gap's
    # start).
    old, report = label(tweets, bars, 5, window_start="before_tweet")
    assert report["no_price_coverage"] == 3
    assert list(old.index) == ["before_gap", "end_in_gap"]

    # A boundary instant lies in two bars. Bars are closed spans [start, start + 5 min], so when
    # the bar that ends at the instant is missing, the bar that starts there contains it: t+5 =
    # 10:35 is in the 10:35 bar (k=13), whose close comes at 10:40.
    edge = make_tweets(("end_on_gap_edge", et("2019-06-04 10:30:00")))
    row = label(edge, bars, 5)[0].loc["end_on_gap_edge"]
    assert (row.start_time, row.end_time) == (et("2019-06-04 10:30"), et("2019-06-04 10:40"))
    assert (row.start_price, row.end_price) == (199.45, 199.35)


def test_after_tweet_early_close_after_thanksgiving(tmp_path):
    # 2019-11-29 closes at 13:00 ET; the feed holds post-close bars until 13:30.
    rows = session_rows("2019-11-29", 1, lambda k: 300 + 0.01 * k, end="13:30")
    bars = write_bars(tmp_path / "bars.csv", rows)
    tweets = make_tweets(
        ("fits", et("2019-11-29 12:50:30")),
        ("ends_at_close", et("2019-11-29 12:55:00")),
        ("crosses", et("2019-11-29 12:55:30")),
        ("after_close", et("2019-11-29 13:10:00")),
    )
    labeled, report = label(tweets, bars, 5)
    assert (report["window_crosses_close"], report["outside_session"], report["labeled"]) == (
        1,
        1,
        2,
    )
    fits = labeled.loc["fits"]  # the 12:50 bar (k=200) and the 12:55 bar (k=205)
    assert (fits.start_time, fits.end_time) == (et("2019-11-29 12:51"), et("2019-11-29 12:56"))
    assert (fits.start_price, fits.end_price) == (302.00, 302.05)
    at_close = labeled.loc["ends_at_close"]  # the 12:54 bar (k=204) and the 12:59 bar (k=209)
    assert (at_close.start_time, at_close.end_time) == (
        utc("2019-11-29 17:55"),
        utc("2019-11-29 18:00"),
    )
    assert (at_close.start_price, at_close.end_price) == (302.04, 302.09)

    # Without the 12:59 bar, the bar containing 13:00 is the post-close 13:00 bar: it completes
    # after the close, so the tweet is dropped rather than labeled with an after-hours price.
    rows = [r for r in rows if not r[0].endswith("12:59:00")]
    bars = write_bars(tmp_path / "bars_no_last.csv", rows)
    labeled, report = label(tweets, bars, 5)
    assert (report["no_price_coverage"], report["labeled"]) == (1, 1)
    assert list(labeled.index) == ["fits"]


def test_after_tweet_dst_switch(tmp_path):
    # Friday 2019-03-08 opens at 14:30Z (EST), Monday 2019-03-11 at 13:30Z (EDT); 5-minute bars in
    # naive New York stamps.
    rows = session_rows("2019-03-08", 5, lambda k: 10 + 0.01 * k)
    rows += session_rows("2019-03-11", 5, lambda k: 20 + 0.01 * k)
    bars = write_bars(tmp_path / "bars.csv", rows)
    tweets = make_tweets(
        *[
            (f"{day} {hm}", utc(f"{day} {hm}"))
            for day in ("2019-03-08", "2019-03-11")
            for hm in ("13:32:10", "14:32:10")
        ]
    )
    labeled, report = label(tweets, bars, 5)
    assert (report["outside_session"], report["labeled"]) == (1, 3)  # Friday 08:32 EST
    expected = {
        "2019-03-08 14:32:10": ("14:35", "14:40", 10.00, 10.01),  # 09:32 EST: k=0, k=1
        "2019-03-11 13:32:10": ("13:35", "13:40", 20.00, 20.01),  # 09:32 EDT: k=0, k=1
        "2019-03-11 14:32:10": ("14:35", "14:40", 20.12, 20.13),  # 10:32 EDT: k=12, k=13
    }
    assert list(labeled.index) == list(expected)
    for name, (start, end, start_price, end_price) in expected.items():
        row = labeled.loc[name]
        day = name[:10]
        assert (row.start_time, row.end_time) == (utc(f"{day} {start}"), utc(f"{day} {end}"))
        assert (row.start_price, row.end_price) == (start_price, end_price)


def test_prior_return_is_the_same_under_both_rules(tmp_path):
    # The momentum feature may only see bars completed by t, whatever the label rule: it never
    # sees the bar containing t (whose close comes after the tweet).
    bars = write_bars(tmp_path / "bars.csv", session_rows("2019-06-04", 5, falling))
    tweets = make_tweets(
        ("t_0934", et("2019-06-04 09:34:00")),  # t-10 before the open: NaN
        ("t_094120", et("2019-06-04 09:41:20")),  # no bar completed by t-10 = 09:31:20: NaN
        ("t_1000", et("2019-06-04 10:00:00")),
        ("t_1002", et("2019-06-04 10:02:00")),
        ("t_111745", et("2019-06-04 11:17:45")),
        ("t_1540", et("2019-06-04 15:40:00")),
    )
    after, _ = label(tweets, bars, 10, ties="class")
    before, _ = label(tweets, bars, 10, ties="class", window_start="before_tweet")
    assert list(after.index) == list(tweets["id"])
    assert list(before.index) == list(tweets["id"][1:])  # t_0934: no completed bar yet
    pd.testing.assert_series_equal(
        after["prior_return_bps"][before.index], before["prior_return_bps"], check_exact=True
    )
    assert np.isnan(after.loc["t_0934", "prior_return_bps"])
    assert np.isnan(after.loc["t_094120", "prior_return_bps"])
    # 10:02: from the 09:45 bar (k=3, done 09:50, the last one done by 09:52) to the 09:55 bar
    # (k=5, done 10:00), not to the 10:00 bar (k=6) that contains the tweet and starts its label.
    assert after.loc["t_1002", "prior_return_bps"] == pytest.approx(np.log(199.75 / 199.85) * 1e4)
    assert after.loc["t_1002", "start_price"] == 199.70
    assert after.loc["t_1000", "prior_return_bps"] == pytest.approx(np.log(199.75 / 199.85) * 1e4)
    # 11:17:45: from the 11:00 bar (k=18, the last one done by 11:07:45) to the 11:10 bar (k=20,
    # done 11:15); the 11:15 bar that contains the tweet is not used.
    assert after.loc["t_111745", "prior_return_bps"] == pytest.approx(np.log(199.00 / 199.10) * 1e4)


# --- property: no label ever uses a bar past the one containing t+N, or one outside the session ---

SESSIONS_2019 = nyse_sessions("2019-01-01", "2019-12-31")
# Ordinary days, the first session after each DST switch, and both kinds of early close.
DAYS = [
    "2019-01-02",
    "2019-03-08",
    "2019-03-11",
    "2019-07-03",
    "2019-11-04",
    "2019-11-29",
    "2019-12-24",
]


@st.composite
def bars_and_tweets(draw):
    bar_minutes = draw(st.sampled_from([1, 5]))
    interval = draw(st.integers(bar_minutes, 120))
    days = draw(st.lists(st.sampled_from(DAYS), min_size=1, max_size=3, unique=True))
    seed = draw(st.integers(0, 2**32 - 1))
    keep_share = draw(st.floats(0.3, 1.0))
    n_tweets = draw(st.integers(1, 80))
    rng = np.random.default_rng(seed)
    opens, closes = SESSIONS_2019
    midnight = pd.DatetimeIndex(sorted(days)).tz_localize(ET).as_unit("ns").asi8
    index = np.searchsorted(opens, midnight)  # the session opening on that day
    assert len(set(index)) == len(days)
    starts = np.concatenate(
        [np.arange(opens[i], closes[i], bar_minutes * 60 * 10**9) for i in index]
    )
    starts = starts[rng.random(len(starts)) < keep_share]
    if len(starts) < 2:
        starts = np.arange(
            opens[index[0]],
            opens[index[0]] + 2 * bar_minutes * 60 * 10**9,
            bar_minutes * 60 * 10**9,
        )
    close = np.round(
        100 * np.exp(np.cumsum(rng.normal(0, 5e-4, len(starts)))), 2
    )  # cents: ties happen
    frame = pd.DataFrame(
        {
            "timestamp": pd.to_datetime(starts, utc=True),
            "open": close,
            "high": close,
            "low": close,
            "close": close,
        }
    )
    # Tweets from half an hour before to half an hour after one of the sessions, whole seconds.
    which = rng.choice(index, n_tweets)
    lo, hi = opens[which] // 10**9 - 1800, closes[which] // 10**9 + 1800
    times = lo + (rng.random(n_tweets) * (hi - lo)).astype(np.int64)
    if draw(st.booleans()):  # half the tweets on bar boundaries (t in two bars)
        on_edge = rng.random(n_tweets) < 0.5
        times = np.where(on_edge, times // (bar_minutes * 60) * (bar_minutes * 60), times)
    times = np.sort(times) * 10**9
    tweets = pd.DataFrame(
        {
            "id": [str(i) for i in range(n_tweets)],
            "created_at": pd.to_datetime(times, utc=True),
            "text": "x",
            "retweet_count": 0,
            "favorite_count": 0,
            "is_retweet": rng.random(n_tweets) < 0.1,
        }
    )
    ties = draw(st.sampled_from(["drop", "down", "class"]))
    return PriceBars(frame, float(bar_minutes), "generated"), tweets, interval, ties


@pytest.mark.parametrize("window_start", WINDOW_STARTS)
@settings(max_examples=150, deadline=None)
@given(bars_and_tweets())
def test_labels_never_look_past_the_window(window_start, case):
    bars, tweets, interval, ties = case
    report = DataReport()
    t = tweets["created_at"].to_numpy("datetime64[ns]").view("int64")
    starts = bars.starts_ns
    if t.max() < starts[0] or t.min() > starts[-1] + bars.bar_minutes * 60e9:
        event("no overlap")
        with pytest.raises(DataError, match="no overlap"):
            label_tweets(
                tweets, bars, interval, ties=ties, report=report, window_start=window_start
            )
        return
    labeled = label_tweets(
        tweets, bars, interval, ties=ties, report=report, window_start=window_start
    )
    assert report["labeled"] + sum(report[r] for r in DROP_REASONS) == len(tweets)
    event("some labeled" if len(labeled) else "none labeled")
    if labeled.empty:
        return
    bar = pd.Timedelta(minutes=bars.bar_minutes)
    horizon = labeled["created_at"] + pd.Timedelta(minutes=interval)
    created, start_time, end_time = (
        labeled["created_at"],
        labeled["start_time"],
        labeled["end_time"],
    )
    if window_start == "before_tweet":
        assert (start_time <= created).all()
        assert (end_time <= horizon).all()
        assert (start_time < end_time).all()
        # The freshest completed bars: no completed bar was skipped.
        assert (created - start_time < bar).all()
        assert (horizon - end_time < bar).all()
    else:
        # The bars containing t and t+N: each covers [its completion - one bar, its completion].
        assert ((start_time - bar <= created) & (created <= start_time)).all()
        assert ((end_time - bar <= horizon) & (horizon <= end_time)).all()
        # One bar for both only when N is one bar and t is the start of that bar.
        assert (start_time <= end_time).all()
        # An instant on a boundary belongs to the bar that ends there, where there is one.
        completions = bars.frame["timestamp"] + bar
        ends_at_t, ends_at_horizon = created.isin(completions), horizon.isin(completions)
        assert (start_time[ends_at_t] == created[ends_at_t]).all()
        assert (end_time[ends_at_horizon] == horizon[ends_at_horizon]).all()
        event("after_tweet: t on a bar's end" if ends_at_t.any() else "after_tweet: t inside bars")
    close_by_start = bars.frame.set_index("timestamp")["close"]
    assert (
        close_by_start.reindex(labeled["start_time"] - bar).to_numpy()
        == labeled["start_price"].to_numpy()
    ).all()
    assert (
        close_by_start.reindex(labeled["end_time"] - bar).to_numpy()
        == labeled["end_price"].to_numpy()
    ).all()
    # Both bars inside the tweet's own session.
    opens, closes = SESSIONS_2019
    labeled_t = labeled["created_at"].to_numpy("datetime64[ns]").view("int64")
    session = np.searchsorted(opens, labeled_t, side="right") - 1
    first_bar_start = (labeled["start_time"] - bar).to_numpy("datetime64[ns]").view("int64")
    first_bar_done = labeled["start_time"].to_numpy("datetime64[ns]").view("int64")
    last_bar_done = labeled["end_time"].to_numpy("datetime64[ns]").view("int64")
    assert (first_bar_start >= opens[session]).all() and (last_bar_done <= closes[session]).all()
    assert (first_bar_done <= closes[session]).all()
    assert not labeled["is_retweet"].any()
    up = labeled["end_price"] > labeled["start_price"]
    flat = labeled["end_price"] == labeled["start_price"]
    assert (labeled.loc[up, "label"] == 1).all()
    assert (labeled.loc[~up & ~flat, "label"] == 0).all()
    if ties == "drop":
        assert not flat.any()
    else:
        assert (labeled.loc[flat, "label"] == {"down": 0, "class": 2}[ties]).all()


# --- return_bps, abs_return_bps and volume_ratio, by hand ------------------------------------------
VOLUME_SESSIONS = 22  # June 3 .. July 2, 2019


def volume_market(tmp_path, missing=()) -> PriceBars:
    """5-minute bars over 22 sessions; the bar k (09:30 + 5k) of session d closes at 100 + 0.05 k
    and trades 100 (k + 1) + 10 d lots. `missing` holds (d, k) bars left out of the file."""
    opens, _ = nyse_sessions("2019-06-01", "2019-07-31")
    lines = ["timestamp,open,high,low,close,volume"]
    for d, open_ns in enumerate(opens[:VOLUME_SESSIONS]):
        for k in range(78):
            if (d, k) in missing:
                continue
            stamp = pd.Timestamp(open_ns + k * 300 * 10**9, tz="UTC").strftime("%Y-%m-%dT%H:%M:%SZ")
            close = round(100 + 0.05 * k, 2)
            lines.append(f"{stamp},{close},{close},{close},{close},{100 * (k + 1) + 10 * d}")
    (tmp_path / "bars.csv").write_text("\n".join(lines) + "\n")
    return load_prices(tmp_path / "bars.csv")


def session_day(d: int) -> str:
    opens, _ = nyse_sessions("2019-06-01", "2019-07-31")
    return pd.Timestamp(opens[d], tz="UTC").tz_convert(ET).strftime("%Y-%m-%d")


def test_return_bps_and_volume_ratio_by_hand(tmp_path):
    # Session 1 lacks its 10:05 bar (k = 7), session 21 its 11:10 bar (k = 20).
    bars = volume_market(tmp_path, missing={(1, 7), (21, 20)})
    last, early = session_day(21), session_day(5)
    tweets = make_tweets(
        ("last_day", et(f"{last} 10:02:00")),  # window 10:00 bar (k=6) -> 10:10 bar (k=8)
        ("early", et(f"{early} 10:02:00")),  # 5 sessions before it: no 20-session history
        ("gap", et(f"{last} 11:02:00")),  # N=10: 11:00 (k=18) -> 11:10 (k=20) is missing
    )
    labeled, report = label(tweets, bars, 10)
    row = labeled.loc["last_day"]
    assert (row.start_price, row.end_price) == (100.30, 100.40)
    # 10,000 x ln(100.40 / 100.30) = 10,000 x 0.000996512 bps.
    assert row.return_bps == pytest.approx(9.96512, abs=1e-4)
    assert row.abs_return_bps == row.return_bps
    # The window's bars are k = 7 and 8 (after the start bar, up to the end bar): session 21
    # trades 800 + 210 + 900 + 210 = 2,120 lots. The 20 sessions before it are 1..20; session 1
    # lacks k = 7 and is left out; session d's sum is 1,700 + 20 d, and the median over d = 2..20
    # is the one of d = 11: 1,920.
    assert row.volume_ratio == pytest.approx(2120 / 1920, rel=1e-12)
    assert row.volume_reason == ""
    # The end bar (k = 20) is the missing one: no label at all.
    assert "gap" not in labeled.index and report["no_price_coverage"] == 1
    assert np.isnan(labeled.loc["early", "volume_ratio"])
    assert labeled.loc["early", "volume_reason"] == "no_volume_history"
    assert (report["no_volume_history"], report["volume_gap"], report["labeled"]) == (1, 0, 2)


def test_volume_ratio_nan_reasons(tmp_path):
    bars = volume_market(tmp_path, missing={(21, 20)})
    last = session_day(21)
    tweets = make_tweets(
        ("inside_gap", et(f"{last} 11:02:00")),  # N=15: bars k=19..21, k=20 missing
        ("afternoon", et(f"{last} 14:02:00")),
    )
    labeled, report = label(tweets, bars, 15)
    assert labeled.loc["inside_gap", "volume_reason"] == "volume_gap"
    assert np.isnan(labeled.loc["inside_gap", "volume_ratio"])
    # 14:00 bar (k = 54) -> 14:15 bar (k = 57): bars 55..57 of session 21 against sessions 1..20.
    sums = [sum(100 * (k + 1) + 10 * d for k in (55, 56, 57)) for d in range(1, 21)]
    own = sum(100 * (k + 1) + 10 * 21 for k in (55, 56, 57))
    assert labeled.loc["afternoon", "volume_ratio"] == pytest.approx(own / np.median(sums))
    assert report["volume_gap"] == 1
    # One bar (start = end, N = the bar at the open) gives an empty window; a file without volume
    # gives no_volume_column. Both are counts, never drops.
    at_open = make_tweets(("at_open", et(f"{last} 09:30:00")))
    labeled, report = label(at_open, bars, 5, ties="class")
    assert labeled.loc["at_open", "volume_reason"] == "empty_window"
    assert report["empty_window"] == 1
    frame = bars.frame.drop(columns="volume")
    no_volume = PriceBars(frame, bars.bar_minutes, "no volume")
    labeled, report = label(tweets, no_volume, 15)
    assert report["no_volume_column"] == 2 and labeled["volume_ratio"].isna().all()


def test_volume_ratio_uses_no_later_session(tmp_path):
    """No look-ahead: changing every volume after the tweet's session changes no ratio."""
    bars = volume_market(tmp_path)
    tweets = make_tweets(("t", et(f"{session_day(15)} 10:02:00")))
    before = label(tweets, bars, 10)[0].loc["t", "volume_ratio"]
    later = bars.frame["timestamp"] > et(f"{session_day(15)} 16:00")
    frame = bars.frame.assign(volume=np.where(later, 1e9, bars.frame["volume"]))
    after = label(tweets, PriceBars(frame, bars.bar_minutes, "x"), 10)[0].loc["t", "volume_ratio"]
    assert before == after and np.isfinite(before)

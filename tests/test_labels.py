"""Labels: hand-computed windows and prices on tiny bar files, NYSE calendar edge cases, ties,
and a property test that no label ever looks past t+N."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from lstm_tweets.data.errors import DataError
from lstm_tweets.data.labels import DROP_REASONS, LABEL_COLUMNS, label_tweets, nyse_sessions
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
    labeled, report = label(tweets, bars, 5)

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
    }
    assert list(labeled.index) == ["first_bar_done", "last_window"]
    assert set(LABEL_COLUMNS) - {"id"} <= set(labeled.columns)
    first = labeled.loc["first_bar_done"]
    # Start: the 09:30 bar, completed 09:31. End: the 09:35 bar, completed 09:36 = t + 5.
    assert (first.start_time, first.end_time) == (et("2019-06-03 09:31"), et("2019-06-03 09:36"))
    assert (first.start_price, first.end_price) == (100.00, 100.05)
    assert first.return_bps == pytest.approx(5.0)
    assert first.label == 1
    last = labeled.loc["last_window"]
    # 15:55 + 5 = 16:00: the end bar is the 15:59 bar, which completes exactly at the close.
    assert (last.start_time, last.end_time) == (et("2019-06-03 15:55"), et("2019-06-03 16:00"))
    assert (last.start_price, last.end_price) == (103.84, 103.89)
    assert last.return_bps == pytest.approx(0.05 / 103.84 * 1e4)


def test_fifty_minute_window_crossing_the_close(tmp_path):
    bars = write_bars(tmp_path / "bars.csv", session_rows("2019-06-03", 1, rising))
    tweets = make_tweets(
        ("fits", et("2019-06-03 15:10:00")), ("crosses", et("2019-06-03 15:11:00"))
    )
    labeled, report = label(tweets, bars, 50)
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
    labeled, report = label(tweets, bars, 5)
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
    assert mid.return_bps == pytest.approx(-0.05 / 199.75 * 1e4)
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
    labeled, _ = label(tweets, bars, 7)
    # 10:09 is still inside the 10:05 bar; 10:10 completes it.
    assert labeled.loc["a", "end_time"] == et("2019-06-04 10:05")
    assert labeled.loc["b", "end_time"] == et("2019-06-04 10:10")
    assert labeled.loc["b", "end_price"] == 199.65
    with pytest.raises(
        DataError, match=r"data\.interval=3 min is shorter than the 5-min bars of .*bars\.csv"
    ):
        label_tweets(tweets, bars, 3)


def test_early_close_after_thanksgiving(tmp_path):
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
    labeled, report = label(tweets, bars, 5)
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


def test_good_friday_is_closed(tmp_path):
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
    labeled, report = label(tweets, bars, 5)
    assert report["outside_session"] == 1 and list(labeled.index) == ["thursday", "monday"]
    # 11:00 is bar k=89 completing; start = close of the 10:59 bar.
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
    labeled, report = label(tweets, bars, 5)
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
def test_ties_and_dead_band(tmp_path, ties, dead_band, expected_labels, ties_dropped):
    bars = write_bars(tmp_path / "bars.csv", session_rows("2019-06-05", 1, tie_day))
    small_and_flat = make_tweets(*TIE_TWEETS[:2])
    big = make_tweets(TIE_TWEETS[2])
    got, dropped = {}, 0
    for tweets, interval in ((small_and_flat, 5), (big, 30)):
        labeled, report = label(tweets, bars, interval, ties=ties, dead_band_bps=dead_band)
        got.update(labeled["label"].to_dict())
        dropped += report["ties_dropped"]
        assert report["label_flat"] == int((labeled["label"] == 2).sum())
        if ties != "class":
            assert "label_flat" not in report.counts
        if "small" in labeled.index:
            assert labeled.loc["small", "return_bps"] == pytest.approx(0.05 / 100.10 * 1e4)
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


def test_retweets_excluded_or_included(tmp_path):
    bars = write_bars(tmp_path / "bars.csv", session_rows("2019-06-03", 1, rising))
    tweets = make_tweets(
        ("own", et("2019-06-03 11:00:00")),
        ("rt", et("2019-06-03 11:00:00"), True),
        ("rt_outside", et("2019-06-03 20:00:00"), True),
    )
    labeled, report = label(tweets, bars, 5)
    # A retweet is counted as a retweet even when it is also outside the session.
    assert (report["retweets_excluded"], report["outside_session"]) == (2, 0)
    assert list(labeled.index) == ["own"]
    labeled, report = label(tweets, bars, 5, include_retweets=True)
    assert (report["retweets_excluded"], report["outside_session"]) == (0, 1)
    assert list(labeled.index) == ["own", "rt"]
    assert labeled.loc["rt", "start_price"] == labeled.loc["own", "start_price"] == 100.89


def test_gaps_in_the_price_data_are_not_bridged(tmp_path):
    halted = {f"11:{m:02d}" for m in range(30)}  # 11:00-11:29 missing
    bars = write_bars(tmp_path / "bars.csv", session_rows("2019-06-06", 1, rising, skip=halted))
    tweets = make_tweets(
        ("in_gap", et("2019-06-06 11:10:00")),  # last completed bar is 10:59 (11:00): stale
        ("end_in_gap", et("2019-06-06 10:58:00")),  # end t+5=11:03 falls in the gap
        ("straddles", et("2019-06-06 11:00:30")),  # start fresh (30 s old), end stale
        ("after_gap", et("2019-06-06 11:31:00")),
        ("no_bars_that_day", et("2019-06-07 11:00:00")),
    )
    labeled, report = label(tweets, bars, 5)
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


def test_tweets_outside_the_price_range_are_counted(tmp_path):
    bars = write_bars(tmp_path / "bars.csv", session_rows("2019-06-03", 1, rising))
    tweets = make_tweets(
        ("before", et("2019-05-31 11:00")),
        ("inside", et("2019-06-03 11:00")),
        ("after", et("2019-06-04 11:00")),
    )
    labeled, report = label(tweets, bars, 5)
    assert report["no_price_coverage"] == 2 and list(labeled.index) == ["inside"]


# --- property: no label ever uses a bar that completes after t+N or starts before the session ---

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
    times = np.sort(lo + (rng.random(n_tweets) * (hi - lo)).astype(np.int64)) * 10**9
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


@settings(max_examples=150, deadline=None)
@given(bars_and_tweets())
def test_labels_never_look_past_the_window(case):
    bars, tweets, interval, ties = case
    report = DataReport()
    t = tweets["created_at"].to_numpy("datetime64[ns]").view("int64")
    starts = bars.starts_ns
    if t.max() < starts[0] or t.min() > starts[-1] + bars.bar_minutes * 60e9:
        event("no overlap")
        with pytest.raises(DataError, match="no overlap"):
            label_tweets(tweets, bars, interval, ties=ties, report=report)
        return
    labeled = label_tweets(tweets, bars, interval, ties=ties, report=report)
    assert report["labeled"] + sum(report[r] for r in DROP_REASONS) == len(tweets)
    event("some labeled" if len(labeled) else "none labeled")
    if labeled.empty:
        return
    bar = pd.Timedelta(minutes=bars.bar_minutes)
    horizon = labeled["created_at"] + pd.Timedelta(minutes=interval)
    assert (labeled["start_time"] <= labeled["created_at"]).all()
    assert (labeled["end_time"] <= horizon).all()
    assert (labeled["start_time"] < labeled["end_time"]).all()
    # The freshest completed bars: no completed bar was skipped.
    assert (labeled["created_at"] - labeled["start_time"] < bar).all()
    assert (horizon - labeled["end_time"] < bar).all()
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
    last_bar_done = labeled["end_time"].to_numpy("datetime64[ns]").view("int64")
    assert (first_bar_start >= opens[session]).all() and (last_bar_done <= closes[session]).all()
    assert not labeled["is_retweet"].any()
    up = labeled["end_price"] > labeled["start_price"]
    flat = labeled["end_price"] == labeled["start_price"]
    assert (labeled.loc[up, "label"] == 1).all()
    assert (labeled.loc[~up & ~flat, "label"] == 0).all()
    if ties == "drop":
        assert not flat.any()
    else:
        assert (labeled.loc[flat, "label"] == {"down": 0, "class": 2}[ties]).all()

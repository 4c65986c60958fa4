"""The event study: control times by hand (weekday, wall-clock time across DST, the quiet rule),
profiles on a hand-made grid, and the planted activity rise of the synthetic sample found against
matched controls, written as the CSV and figure `make event-study` produces."""

import json

import numpy as np
import pandas as pd
import pytest

from lstm_tweets.data.grid import session_grid
from lstm_tweets.data.labels import nyse_sessions
from lstm_tweets.data.prices import PriceBars
from lstm_tweets.data.synthetic import generate_sample
from lstm_tweets.event_study import (
    COLUMNS,
    bar_measures,
    control_instants,
    default_paths,
    main,
    offsets_in_bars,
    profiles,
    quiet,
)

ET = "America/New_York"


def et_ns(text: str) -> int:
    return pd.Timestamp(text, tz=ET).tz_convert("UTC").value


def test_controls_keep_weekday_and_wall_clock_time_across_dst():
    t = et_ns("2019-03-05 10:00")  # a Tuesday in winter time; DST starts on 2019-03-10
    controls = control_instants(np.array([t]))[0]
    assert len(controls) == 16
    local = pd.to_datetime(controls, utc=True).tz_convert(ET)
    assert (local.strftime("%H:%M") == "10:00").all()
    assert (local.dayofweek == 1).all()
    assert sorted(local.date) == [
        (pd.Timestamp("2019-03-05") + pd.Timedelta(weeks=k)).date()
        for k in [*range(-8, 0), *range(1, 9)]
    ]
    # One week later it is summer time: 14:00 UTC, not 15:00.
    assert et_ns("2019-03-12 10:00") in controls
    assert pd.Timestamp(et_ns("2019-03-12 10:00"), tz="UTC").hour == 14


def test_quiet_means_no_tweet_within_an_hour_either_side():
    tweets = np.array([et_ns("2019-06-03 10:00"), et_ns("2019-06-03 13:00")])
    instants = np.array(
        [
            et_ns("2019-06-03 11:00"),  # exactly 60 min after a tweet: not quiet
            et_ns("2019-06-03 11:01"),
            et_ns("2019-06-03 11:59"),
            et_ns("2019-06-03 12:00"),  # 60 min before one: not quiet
            et_ns("2019-06-03 15:00"),
        ]
    )
    assert quiet(instants, tweets).tolist() == [False, True, True, False, True]


def test_profiles_on_a_hand_made_grid():
    # Two sessions of 5-minute bars; closes of session d: 100 * exp(k * (d + 1) / 1e4), so every
    # absolute 1-bar log return of session d is (d + 1) bps; volume = 1000 d + k.
    opens, closes = nyse_sessions("2019-06-01", "2019-06-30")
    rows = []
    for d in range(2):
        for k in range(78):
            rows.append(
                {
                    "timestamp": pd.Timestamp(opens[d] + k * 300 * 10**9, tz="UTC"),
                    "close": 100 * np.exp(k * (d + 1) / 1e4),
                    "volume": 1000.0 * d + k,
                }
            )
    frame = pd.DataFrame(rows)
    for c in ("open", "high", "low"):
        frame[c] = frame["close"]
    grid = session_grid(PriceBars(frame, 5.0, "hand"), opens, closes)
    measures = bar_measures(grid)
    offsets = offsets_in_bars(5.0)
    assert offsets.tolist() == list(range(-6, 13))
    t = np.array([et_ns("2019-06-04 09:41:00"), et_ns("2019-06-04 09:45:00")])
    volume = profiles(grid, measures["volume"], t, offsets)
    # 09:41 lies in the 09:40 bar (k = 2); 09:45 on a boundary: the bar ending there (k = 2).
    for row in volume:
        assert np.isnan(row[:4]).all()  # k < 0: before the open
        assert row[4:].tolist() == [1000.0 + k for k in range(0, 15)]
    abs_return = profiles(grid, measures["abs_return_bps"], t[:1], offsets)[0]
    assert np.isnan(abs_return[4])  # the session's first bar: no previous close that day
    np.testing.assert_allclose(abs_return[5:], 2.0)
    # Outside a session: all NaN.
    assert np.isnan(
        profiles(grid, measures["volume"], np.array([et_ns("2019-06-04 17:00")]), offsets)
    ).all()


@pytest.fixture(scope="module")
def synthetic_study(tmp_path_factory):
    """The CLI on a one-year synthetic sample, sparse enough (1,500 tweets) that quiet control
    times exist."""
    folder = tmp_path_factory.mktemp("event_study")
    tweets, bars = generate_sample(
        seed=2, n_tweets=1500, first_day="2019-01-02", last_day="2019-12-31"
    )
    tweets.to_csv(folder / "tweets.csv", index=False)
    bars.to_parquet(folder / "prices.parquet", index=False)
    out = folder / "out"
    argv = ["--tweets", str(folder / "tweets.csv"), "--prices", str(folder / "prices.parquet")]
    assert main([*argv, "--out", str(out), "--resamples", "500"]) == 0
    return out


def test_the_study_writes_the_figure_and_the_csv(synthetic_study):
    table = pd.read_csv(synthetic_study / "event_study.csv")
    assert list(table.columns) == COLUMNS
    assert set(table["measure"]) == {"abs_return_bps", "volume"}
    assert sorted(set(table["offset_min"])) == list(range(-30, 61))  # 1-minute bars
    assert (table["ci_low"] <= table["diff"]).all() and (table["diff"] <= table["ci_high"]).all()
    np.testing.assert_allclose(
        table["diff"], table["tweet_mean"] - table["control_mean"], rtol=1e-6, atol=1e-6
    )
    png = (synthetic_study / "event_study.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((synthetic_study / "summary.json").read_text())
    assert summary["n_events"] > 500 and summary["n_controls_mean"] > 2


@pytest.mark.parametrize("measure", ["abs_return_bps", "volume"])
def test_the_planted_rise_shows_after_the_tweet_only(synthetic_study, measure):
    """About one tweet in seven raises the next half hour's volatility 6x and volume 3x: the
    average tweet's half hour rises clearly above its matched controls, and the rise ends."""
    table = pd.read_csv(synthetic_study / "event_study.csv")
    part = table[table["measure"] == measure].set_index("offset_min")
    during = part.loc[1:28]
    before, after = part.loc[-30:-2], part.loc[35:60]
    assert (during["ci_low"] > 0).all()
    assert (during["diff"] > 0.2 * during["control_mean"]).all()
    # Before the tweet and after the half hour: far smaller than the rise, though not 0: other
    # tweets' effects fall there (about one activity tweet every 11 hours of session here), while
    # the controls are quiet by construction.
    assert before["diff"].mean() < 0.3 * during["diff"].mean()
    assert after["diff"].mean() < 0.3 * during["diff"].mean()


def test_default_paths_are_the_real_data_configs():
    paths = default_paths()
    assert paths["tweets"].name == "trump_tweets.csv.gz"
    assert paths["prices"].name == "spy_5min.csv.gz"
    assert paths["out"].parts[-3:] == ("outputs", "reports", "event_study")

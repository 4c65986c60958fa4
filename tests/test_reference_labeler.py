"""`label_tweets` (vectorized) and the per-tweet reference in benchmarks/ agree, under both
label-window rules (`window_start`), on generated bars and on the real shared files: drop counts,
windows, prices, labels, return_bps = 10,000 x ln(end/start), abs_return_bps and volume_ratio
(with its NaN reasons): exactly, but for the two log-return columns, which agree to 1e-12 relative
(numpy's vectorized log and math.log may differ in the last bit)."""

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lstm_tweets.data.labels import MINUTE_NS, WINDOW_STARTS, label_tweets, nyse_sessions
from lstm_tweets.data.prices import PriceBars, load_prices
from lstm_tweets.data.report import DataReport
from lstm_tweets.data.tweets import load_tweets

_spec = importlib.util.spec_from_file_location(
    "reference_labeler", Path(__file__).resolve().parents[1] / "benchmarks" / "reference_labeler.py"
)
reference = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(reference)


def make_bars(bar_minutes: int, seed: int, volume: bool = True) -> PriceBars:
    """Bars for every 2019 XNYS session, with scattered missing bars and a few missing hours. On
    about a fifth of the days the feed also has an hour of bars before the open and after the
    close (as extended-hours feeds do): the calendar, not the data, decides where a session ends.
    On half of those the session's last bar is missing, so that the first bar completing at or
    after the close is one after it. Volumes are whole numbers of lots, a few of them blank."""
    rng = np.random.default_rng(seed)
    opens, closes = nyse_sessions("2019-01-01", "2019-12-31")
    step = bar_minutes * MINUTE_NS
    hour = 60 * MINUTE_NS
    extended = rng.random(len(opens)) < 0.2
    no_last_bar = extended & (rng.random(len(opens)) < 0.5)
    starts = np.concatenate(
        [
            np.setdiff1d(np.arange(o - hour * x, c + hour * x, step), [c - step] if y else [])
            for o, c, x, y in zip(opens, closes, extended, no_last_bar, strict=True)
        ]
    )
    keep = rng.random(len(starts)) > 0.03
    for hole in rng.integers(0, len(starts), 20):  # halts and feed outages
        keep[hole : hole + rng.integers(5, 60)] = False
    starts = starts[keep]
    close = np.round(250 * np.exp(np.cumsum(rng.normal(0, 3e-4, len(starts)))), 2)  # cents: ties
    frame = pd.DataFrame(
        {
            "timestamp": pd.to_datetime(starts, utc=True),
            "open": close,
            "high": close,
            "low": close,
            "close": close,
        }
    )
    if volume:
        lots = rng.integers(1, 500, len(starts)).astype(float) * 100
        frame["volume"] = np.where(rng.random(len(starts)) < 0.002, np.nan, lots)
    return PriceBars(frame, float(bar_minutes), f"generated {bar_minutes}-min bars")


def make_tweets(n: int, interval: int, bar_minutes: int, seed: int) -> pd.DataFrame:
    """Random times (most in sessions) plus the edge instants of some sessions and exact bar
    boundaries (where t or t + N lies in two bars)."""
    rng = np.random.default_rng(seed)
    opens, closes = nyse_sessions("2019-01-01", "2019-12-31")
    day = rng.integers(0, len(opens), n)
    inside = opens[day] + (rng.random(n) * (closes[day] - opens[day])).astype(np.int64)
    anywhere = rng.integers(opens[0] - 86_400 * 10**9, closes[-1] + 86_400 * 10**9, n)
    times = np.where(rng.random(n) < 0.7, inside, anywhere) // 10**9 * 10**9
    edge_days = rng.integers(0, len(opens), 40)
    bar, window = bar_minutes * MINUTE_NS, interval * MINUTE_NS
    edges = [opens[edge_days] + d for d in (-(10**9), 0, bar - 10**9, bar, bar + 10**9)]
    edges += [closes[edge_days] - window + d for d in (-(10**9), 0, 10**9)] + [closes[edge_days]]
    edges += [closes - window]  # t + N exactly at every close
    # Bar boundaries inside the session: t on one, and t + N on one.
    boundary_days = rng.integers(0, len(opens), 60)
    n_bars = (closes[boundary_days] - opens[boundary_days]) // bar
    boundary = opens[boundary_days] + rng.integers(0, n_bars) * bar
    edges += [boundary, boundary - window]
    times = np.sort(np.concatenate([times, *edges]))
    return pd.DataFrame(
        {
            "id": [f"t{i}" for i in range(len(times))],
            "created_at": pd.to_datetime(times, utc=True),
            "text": "x",
            "retweet_count": 0,
            "favorite_count": 0,
            "is_retweet": rng.random(len(times)) < 0.1,
        }
    )


@pytest.mark.parametrize("window_start", WINDOW_STARTS)
@pytest.mark.parametrize(
    ("bar_minutes", "interval", "ties", "dead_band_bps", "include_retweets", "n"),
    [
        (1, 5, "drop", 0.0, False, 2000),
        (1, 30, "class", 1.0, True, 500),
        (5, 15, "down", 0.0, False, 500),
        (5, 7, "drop", 2.0, True, 500),
    ],
)
def test_vectorized_matches_reference(
    bar_minutes, interval, ties, dead_band_bps, include_retweets, n, window_start
):
    bars = make_bars(bar_minutes, seed=bar_minutes)
    tweets = make_tweets(n, interval, bar_minutes, seed=interval)
    options = {
        "ties": ties,
        "dead_band_bps": dead_band_bps,
        "include_retweets": include_retweets,
        "window_start": window_start,
    }
    report = DataReport()
    fast = label_tweets(tweets, bars, interval, report=report, **options)
    slow, counts = reference.reference_label_tweets(tweets, bars, interval, **options)

    assert counts["retweets_excluded"] == (0 if include_retweets else tweets["is_retweet"].sum())
    # Enough of each kind of outcome that the comparison means something.
    assert len(slow) > n // 10 and counts["outside_session"] > 0 and counts["no_price_coverage"] > 0
    assert counts["window_crosses_close"] > 0
    if window_start == "before_tweet":
        assert counts["no_completed_bar"] > 0
    else:  # the bar containing t exists from the open on: a missing one is a gap
        assert counts["no_completed_bar"] == 0
    reference.assert_same_labels(fast, report, slow, counts)
    # Every reason for a missing volume_ratio occurs (January has no 20-session history yet).
    assert counts["no_volume_history"] > 0 and counts["volume_gap"] > 0
    assert counts["no_volume_column"] == 0
    assert fast["volume_ratio"].notna().any()  # few with 3 % of bars missing and long windows
    if window_start == "after_tweet" and len(slow):
        # The window starts at or after the tweet and ends at or after t + N, by less than a bar.
        bar = pd.Timedelta(minutes=bar_minutes)
        created = pd.to_datetime(slow["created_at"], utc=True)
        horizon = created + pd.Timedelta(minutes=interval)
        start, end = (pd.to_datetime(slow[c], utc=True) for c in ("start_time", "end_time"))
        assert ((start >= created) & (start - bar <= created)).all()
        assert ((end >= horizon) & (end - bar <= horizon)).all()


def test_prices_without_volume_give_nan_volume_ratio_in_both():
    bars = make_bars(5, seed=5, volume=False)
    tweets = make_tweets(300, 15, 5, seed=2)
    report = DataReport()
    fast = label_tweets(tweets, bars, 15, report=report)
    slow, counts = reference.reference_label_tweets(tweets, bars, 15)
    reference.assert_same_labels(fast, report, slow, counts)
    assert counts["no_volume_column"] == len(fast) > 0 and fast["volume_ratio"].isna().all()


def test_reference_rejects_an_unknown_rule():
    bars = make_bars(5, seed=5)
    tweets = make_tweets(10, 15, 5, seed=1)
    with pytest.raises(ValueError, match="window_start='sideways'"):
        reference.reference_label_tweets(tweets, bars, 15, window_start="sideways")


# ---- the real shared files (../shared/data; skipped where absent) ----------------------------

REAL_PRICES = ("spy_5min", "spy_1min")


@pytest.fixture(scope="module")
def real_inputs(shared_data):
    """The real tweets, and per price file its bars and the reference's session lookup (built once:
    the calendar and the bars grouped by day)."""
    tweets = load_tweets(shared_data / "tweets" / "trump_tweets.csv.gz")
    inputs = {}
    for name in REAL_PRICES:
        bars = load_prices(shared_data / "prices" / f"{name}.csv.gz")
        days = tweets["created_at"].dt.tz_convert(reference.NEW_YORK).dt.date
        inputs[name] = bars, reference.SessionLookup(bars, days.min(), days.max())
    return tweets, inputs


@pytest.mark.parametrize("window_start", WINDOW_STARTS)
@pytest.mark.parametrize("interval", [5, 30])
@pytest.mark.parametrize("prices_name", REAL_PRICES)
def test_real_files_match_reference(real_inputs, prices_name, interval, window_start):
    """All 17,908 real tweets (retweets and tweets outside the price file's months included: they
    must land in the same drop counts), labeled by both implementations with the same options."""
    tweets, inputs = real_inputs
    bars, lookup = inputs[prices_name]
    report = DataReport()
    fast = label_tweets(tweets, bars, interval, report=report, window_start=window_start)
    slow, counts = reference.reference_label_tweets(
        tweets, bars, interval, lookup=lookup, window_start=window_start
    )
    assert len(slow) > 300
    assert counts["retweets_excluded"] > 0 and counts["outside_session"] > 0
    assert counts["window_crosses_close"] > 0 and counts["no_price_coverage"] > 0
    assert (counts["no_completed_bar"] > 0) == (window_start == "before_tweet")
    reference.assert_same_labels(fast, report, slow, counts)
    # The yardstick, stated on its own: ln(end/start) to 0.05 bps, and volume_ratio > 0
    # for at least 95 % of the labeled tweets.
    slow_bps = np.log(slow["end_price"] / slow["start_price"]).to_numpy() * 1e4
    np.testing.assert_allclose(fast["return_bps"], slow_bps, rtol=0, atol=0.05)
    np.testing.assert_allclose(fast["abs_return_bps"], np.abs(slow_bps), rtol=0, atol=0.05)
    positive = float((fast["volume_ratio"] > 0).mean())
    print(f"{prices_name}, N = {interval}, {window_start}: volume_ratio > 0 for {positive:.1%}")
    assert positive >= 0.95


def label_disagreement(tweets, bars, interval) -> tuple[float, int]:
    """Share of the tweets labeled under both rules whose label differs, and how many there are."""
    both = {}
    for window_start in WINDOW_STARTS:
        labeled = label_tweets(tweets, bars, interval, window_start=window_start)
        both[window_start] = labeled.set_index("id")["label"]
    common = both["after_tweet"].index.intersection(both["before_tweet"].index)
    differs = both["after_tweet"][common] != both["before_tweet"][common]
    return float(differs.mean()), len(common)


def test_rules_disagree_on_real_5min_bars(real_inputs):
    """On the real 5-minute SPY bars the two window rules give a different label to a noticeable
    share of the tweets both of them label: the window moves by up to one bar (on average half a
    bar at each end), a large part of a 5- to 30-minute window."""
    tweets, inputs = real_inputs
    bars, _ = inputs["spy_5min"]
    shares = {}
    for interval in (5, 10, 30):
        shares[interval], n_common = label_disagreement(tweets, bars, interval)
        assert n_common > 1000
        print(
            f"spy_5min, N = {interval} min: labels differ between after_tweet and before_tweet "
            f"on {shares[interval]:.1%} of the {n_common} tweets labeled under both"
        )
    assert shares[10] > 0.10
    # A longer window shares more of its path under both rules.
    assert shares[5] > shares[30]

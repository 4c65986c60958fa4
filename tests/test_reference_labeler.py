"""`label_tweets` (vectorized) and the per-tweet reference in benchmarks/ agree exactly."""

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lstm_tweets.data.labels import MINUTE_NS, label_tweets, nyse_sessions
from lstm_tweets.data.prices import PriceBars
from lstm_tweets.data.report import DataReport

_spec = importlib.util.spec_from_file_location(
    "reference_labeler", Path(__file__).resolve().parents[1] / "benchmarks" / "reference_labeler.py"
)
reference = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(reference)


def make_bars(bar_minutes: int, seed: int) -> PriceBars:
    """Bars for every 2019 XNYS session, with scattered missing bars and a few missing hours."""
    rng = np.random.default_rng(seed)
    opens, closes = nyse_sessions("2019-01-01", "2019-12-31")
    step = bar_minutes * MINUTE_NS
    starts = np.concatenate([np.arange(o, c, step) for o, c in zip(opens, closes, strict=True)])
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
    return PriceBars(frame, float(bar_minutes), f"generated {bar_minutes}-min bars")


def make_tweets(n: int, interval: int, bar_minutes: int, seed: int) -> pd.DataFrame:
    """Random times (most in sessions) plus the edge instants of some sessions."""
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
    bar_minutes, interval, ties, dead_band_bps, include_retweets, n
):
    bars = make_bars(bar_minutes, seed=bar_minutes)
    tweets = make_tweets(n, interval, bar_minutes, seed=interval)
    options = {"ties": ties, "dead_band_bps": dead_band_bps, "include_retweets": include_retweets}
    report = DataReport()
    fast = label_tweets(tweets, bars, interval, report=report, **options)
    slow, counts = reference.reference_label_tweets(tweets, bars, interval, **options)

    assert {k: report[k] for k in counts} == counts
    assert counts["retweets_excluded"] == (0 if include_retweets else tweets["is_retweet"].sum())
    # Enough of each kind of outcome that the comparison means something.
    assert len(slow) > n // 10 and counts["outside_session"] > 0 and counts["no_price_coverage"] > 0
    assert counts["window_crosses_close"] > 0 and counts["no_completed_bar"] > 0
    fast = fast[reference.COLUMNS].reset_index(drop=True)
    fast["start_time"] = fast["start_time"].dt.as_unit("ns")
    fast["end_time"] = fast["end_time"].dt.as_unit("ns")
    slow = slow.astype({"label": "int64"})
    for column in ("created_at", "start_time", "end_time"):
        slow[column] = pd.to_datetime(slow[column], utc=True).dt.as_unit("ns")
    fast["created_at"] = fast["created_at"].dt.as_unit("ns")
    pd.testing.assert_frame_equal(fast, slow, check_exact=True, check_dtype=False)

"""Benchmark `label_tweets`: 1,000,000 tweets against three years (2017-2019) of 1-minute bars.

    python benchmarks/bench_labels.py [--tweets 1000000] [--out outputs/bench/labels.json]

Bars are generated for every real XNYS session (holidays and early closes included) and tweets at
uniformly random seconds over the three years (most fall outside trading hours, as real tweets
do), all in memory. The per-tweet reference in `reference_labeler.py` is timed on a random sample
and extrapolated per tweet; on that sample both must agree exactly. Goals: < 5 s for 1M tweets and
>= 100x the reference.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd
from reference_labeler import SessionLookup, assert_same_labels, reference_label_tweets
from rich.console import Console
from rich.table import Table

from lstm_tweets.data.labels import MINUTE_NS, label_tweets, nyse_sessions
from lstm_tweets.data.prices import PriceBars
from lstm_tweets.data.report import DataReport, write_json_atomic

FIRST_DAY, LAST_DAY = "2017-01-01", "2019-12-31"
GOAL_SECONDS, GOAL_SPEEDUP = 5.0, 100.0


def make_bars(seed: int) -> PriceBars:
    opens, closes = nyse_sessions(FIRST_DAY, LAST_DAY)
    minutes = (closes - opens) // MINUTE_NS
    starts = np.concatenate(
        [o + np.arange(m) * MINUTE_NS for o, m in zip(opens, minutes, strict=True)]
    )
    rng = np.random.default_rng(seed)
    close = np.round(250 * np.exp(np.cumsum(rng.normal(0, 4e-4, len(starts)))), 2)
    wiggle = np.round(np.abs(rng.normal(0, 0.02, len(starts))), 2)
    frame = pd.DataFrame(
        {
            "timestamp": pd.to_datetime(starts, utc=True),
            "open": close,
            "high": close + wiggle,
            "low": close - wiggle,
            "close": close,
            "volume": rng.integers(1, 5_000, len(starts)) * 100.0,  # volume_ratio is labeled too
        }
    )
    return PriceBars(frame, 1.0, "generated 1-minute bars 2017-2019")


def make_tweets(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed + 1)
    lo = pd.Timestamp(FIRST_DAY, tz="UTC").value // 10**9
    hi = pd.Timestamp(LAST_DAY, tz="UTC").value // 10**9 + 86_400
    seconds = np.sort(rng.integers(lo, hi, n))
    return pd.DataFrame(
        {
            "id": pd.Series(np.arange(10**18, 10**18 + n).astype(str)),
            "created_at": pd.to_datetime(seconds * 10**9, utc=True),
            "text": pd.Series([f"tweet number {i} about the economy" for i in range(n)]),
            "retweet_count": rng.integers(0, 50_000, n),
            "favorite_count": rng.integers(0, 200_000, n),
            "is_retweet": rng.random(n) < 0.25,
        }
    )


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - start, result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tweets", type=int, default=1_000_000)
    parser.add_argument("--reference-sample", type=int, default=3_000)
    parser.add_argument("--interval", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("outputs/bench/labels.json"))
    args = parser.parse_args(argv)

    setup_seconds, (bars, tweets) = timed(
        lambda: (make_bars(args.seed), make_tweets(args.tweets, args.seed))
    )

    # Cold: the first call builds the XNYS calendar (cached afterwards). Warm: best of the repeats.
    nyse_sessions.cache_clear()
    report = DataReport()
    cold, labeled = timed(label_tweets, tweets, bars, args.interval, report=report)
    warm = min(timed(label_tweets, tweets, bars, args.interval)[0] for _ in range(args.repeats))

    rng = np.random.default_rng(args.seed + 2)
    sample_rows = np.sort(
        rng.choice(len(tweets), size=min(args.reference_sample, len(tweets)), replace=False)
    )
    sample = tweets.iloc[sample_rows].reset_index(drop=True)
    # The reference's one-off setup (calendar, bars grouped by session) is timed apart, so that
    # the per-tweet cost it is extrapolated from is only the loop.
    days = tweets["created_at"].iloc[[0, -1]].dt.tz_convert("America/New_York").dt.date
    setup_reference, lookup = timed(SessionLookup, bars, days.iloc[0], days.iloc[1])
    reference_seconds, (slow, slow_counts) = timed(
        reference_label_tweets, sample, bars, args.interval, lookup=lookup
    )
    sample_report = DataReport()
    fast = label_tweets(sample, bars, args.interval, report=sample_report)
    agree = agrees(fast, sample_report, slow, slow_counts)

    per_tweet = reference_seconds / len(sample)
    extrapolated = setup_reference + per_tweet * len(tweets)
    figures = {
        "n_tweets": len(tweets),
        "n_bars": len(bars.frame),
        "bars": f"1-minute, every XNYS session {FIRST_DAY} .. {LAST_DAY}",
        "interval_minutes": args.interval,
        "label_seconds_cold": round(cold, 3),
        "label_seconds_warm": round(warm, 3),
        "label_tweets_per_second_warm": round(len(tweets) / warm),
        "reference_sample": len(sample),
        "reference_setup_seconds": round(setup_reference, 3),
        "reference_seconds_on_sample": round(reference_seconds, 3),
        "reference_ms_per_tweet": round(per_tweet * 1e3, 4),
        "reference_seconds_extrapolated": round(extrapolated, 1),
        "speedup_vs_reference_cold": round(extrapolated / cold, 1),
        "speedup_vs_reference_warm": round(extrapolated / warm, 1),
        "reference_agrees_on_sample": agree,
        "goal_seconds": GOAL_SECONDS,
        "goal_speedup": GOAL_SPEEDUP,
        "meets_goals": bool(agree and cold < GOAL_SECONDS and extrapolated / cold >= GOAL_SPEEDUP),
        "data_report": report.to_dict(),
        "setup_seconds": round(setup_seconds, 2),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "pandas": pd.__version__,
            "numpy": np.__version__,
            "platform": platform.platform(),
        },
    }
    write_json_atomic(args.out, figures)

    table = Table(
        title=f"label_tweets: {len(tweets):,} tweets x {len(bars.frame):,} 1-minute bars, N = {args.interval}"
    )
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("label_tweets, first call (incl. XNYS calendar)", f"{cold:.2f} s")
    table.add_row(f"label_tweets, best of {args.repeats} warm", f"{warm:.2f} s")
    table.add_row("reference, setup (calendar, bars by session)", f"{setup_reference:.2f} s")
    table.add_row(
        f"reference, {len(sample):,}-tweet sample",
        f"{reference_seconds:.2f} s ({per_tweet * 1e3:.3f} ms/tweet)",
    )
    table.add_row(
        f"reference, extrapolated to {len(tweets):,} (setup + loop)", f"{extrapolated:,.0f} s"
    )
    table.add_row(
        "speed-up (cold / warm)", f"{extrapolated / cold:,.0f}x / {extrapolated / warm:,.0f}x"
    )
    table.add_row("reference agrees on the sample", "yes" if agree else "NO")
    table.add_row("labeled", f"{report['labeled']:,}")
    table.add_row("goals (< 5 s, >= 100x)", "met" if figures["meets_goals"] else "NOT met")
    Console().print(table)
    print(f"figures written to {args.out}")
    return 0 if agree else 1


def agrees(fast: pd.DataFrame, report: DataReport, slow: pd.DataFrame, slow_counts: dict) -> bool:
    try:
        assert_same_labels(fast, report, slow, slow_counts)
    except AssertionError:
        return False
    return True


if __name__ == "__main__":
    raise SystemExit(main())

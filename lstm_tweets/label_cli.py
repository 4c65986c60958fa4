"""`lstm-tweets-label`: label tweets with the market move over the next N minutes.

    lstm-tweets-label --tweets tweets.csv.gz --prices spy_5min.csv.gz --interval 5 --output labels.csv

Writes one CSV row per labeled tweet (id, created_at, the window's start_time/end_time and
start_price/end_price, return_bps = 10,000 x ln(end/start), abs_return_bps, volume_ratio and the
up/down label) and prints the data report (how many tweets were dropped and why, and how many
have no volume_ratio and why). Bad input ends with `error: ...` on stderr, exit code 2, and no
output file.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lstm_tweets.data.errors import DataError
from lstm_tweets.data.io import atomic_path
from lstm_tweets.data.labels import LABEL_COLUMNS, TIES, WINDOW_STARTS, label_files
from lstm_tweets.data.report import DataReport


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lstm-tweets-label",
        description="Label each tweet up/down by the market move over the next N minutes (NYSE-aware).",
    )
    parser.add_argument(
        "--tweets",
        required=True,
        type=Path,
        help="tweets file (archive JSON/CSV export or canonical CSV/Parquet)",
    )
    parser.add_argument(
        "--prices", required=True, type=Path, help="price bars (CSV/Parquet, timestamp = bar start)"
    )
    parser.add_argument("--interval", required=True, type=int, help="label window N in minutes")
    parser.add_argument("--output", required=True, type=Path, help="labels CSV to write")
    parser.add_argument(
        "--prices-timezone",
        default="America/New_York",
        help="time zone of naive price stamps (default: %(default)s)",
    )
    parser.add_argument(
        "--timestamp-column", default=None, help="price timestamp column (default: found by name)"
    )
    parser.add_argument(
        "--bar-minutes",
        type=float,
        default=None,
        help="bar duration (default: inferred from the stamps)",
    )
    parser.add_argument(
        "--window-start",
        choices=WINDOW_STARTS,
        default="after_tweet",
        help="after_tweet: start at the close of the bar containing the tweet; before_tweet: at "
        "the last bar completed before it (default: %(default)s)",
    )
    parser.add_argument(
        "--ties",
        choices=TIES,
        default="drop",
        help="what an unchanged price becomes (default: %(default)s)",
    )
    parser.add_argument(
        "--dead-band-bps",
        type=float,
        default=0.0,
        help="moves within +-X bps count as ties (default: 0)",
    )
    parser.add_argument(
        "--include-retweets",
        action="store_true",
        help="label retweets too (default: excluded and counted)",
    )
    parser.add_argument(
        "--report", type=Path, default=None, help="also save the data report as JSON"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        report = DataReport()
        labeled = label_files(
            args.tweets,
            args.prices,
            args.interval,
            ties=args.ties,
            dead_band_bps=args.dead_band_bps,
            include_retweets=args.include_retweets,
            window_start=args.window_start,
            prices_timezone=args.prices_timezone,
            timestamp_column=args.timestamp_column,
            bar_minutes=args.bar_minutes,
            report=report,
        )
        write_csv_atomic(labeled[LABEL_COLUMNS], args.output)
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    report.print(
        title=f"Data report: {args.tweets.name} x {args.prices.name}, N = {args.interval} min, "
        f"{args.window_start}"
    )
    if args.report is not None:
        report.save(args.report)
    print(f"wrote {len(labeled):,} labeled tweets to {args.output}")
    return 0


def write_csv_atomic(frame, path: Path) -> None:
    """A reader (or a crash) never sees half a file."""
    try:
        with atomic_path(path) as tmp:
            frame.to_csv(tmp, index=False)
    except OSError as err:
        raise DataError(f"{path}: cannot write the output: {err}") from err


if __name__ == "__main__":
    sys.exit(main())

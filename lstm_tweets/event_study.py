"""Event study: does the market get busier after a tweet? Absolute returns and volume per bar
around each tweet in market hours, against matched control times.

    lstm-tweets-event-study                       # the shared real files (data=trump_spy5's paths)
    lstm-tweets-event-study --tweets T.csv --prices P.csv --out outputs/reports/event_study

For every tweet inside an XNYS regular session (retweets excluded unless asked for), the profile
of two measures at offsets from -30 to +60 minutes, in bars relative to the bar that contains the
tweet (offset 0; the labeler's rule: on a bar boundary, the bar that ends there):

- `abs_return_bps`: |ln(close / previous close)| x 10,000 of the bar (NaN for a session's first
  bar, whose previous close is the day before, and next to a missing bar);
- `volume`: the bar's raw volume, in the file's units (SPY 5-minute: lots of 100 shares). Not
  normalized: the controls are matched in weekday and time of day, which carries the intraday
  pattern, and within +-8 weeks, which carries the level.

Controls of a tweet: the same New York wall-clock time on the same weekday 1..8 weeks before and
after it, kept where that instant lies in a session with bars and no tweet (any tweet of the file,
retweets included) falls within 60 minutes on either side. A tweet's control profile is the mean
over its controls (per offset, over those with a value); diff = tweet profile - control profile.
Offsets outside the session or at missing bars are NaN and left out of that offset's means.

Per offset and measure: n_tweets (tweets with both profiles), n_days (their trading days),
tweet_mean, control_mean, diff = their difference, and ci_low/ci_high: the 95 % day-block
bootstrap interval of the MEAN DIFF (trading days of the tweets resampled with replacement,
`stats.day_block_interval` of `stats.weighted_mean` over the per-tweet diffs). The figure draws
the tweet and control means and the band control_mean + [ci_low, ci_high] (it holds the tweet
line): where the band leaves the control line, the difference is significant at that offset
(pointwise, not corrected over the offsets). Controls are quiet by construction, while other
tweets (which cluster in time) can fall before or after a tweet: a level difference that starts
before offset 0 is the company a tweet keeps, not its effect; the effect is the change at 0. Keyword groups (trade/tariff/China, Fed/rates, stock market) get their own panels and
rows only when they hold at least 100 tweets.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from lstm_tweets import stats
from lstm_tweets.data.errors import DataError
from lstm_tweets.data.grid import SessionGrid, session_grid
from lstm_tweets.data.io import atomic_path
from lstm_tweets.data.labels import MINUTE_NS, sessions_covering
from lstm_tweets.data.prices import PriceBars, load_prices
from lstm_tweets.data.tweets import load_tweets

BEFORE_MIN, AFTER_MIN = 30, 60
CONTROL_WEEKS = 8
QUIET_MIN = 60
NEW_YORK = "America/New_York"
MEASURES = {
    "abs_return_bps": "mean |1-bar log return| (bps)",
    "volume": "mean volume per bar (file's units)",
}
KEYWORD_GROUPS = {
    "trade_tariff_china": r"\b(?:trade|trading partners?|tariffs?|china|chinese|xi)\b",
    "fed_rates": r"\b(?:fed|federal reserve|powell|interest rates?|rates|rate cuts?)\b",
    "stock_market": r"\b(?:stock market|stocks?|dow|nasdaq|s&p(?: 500)?)\b",
}
MIN_GROUP_TWEETS = 100
COLUMNS = [
    "measure",
    "offset_min",
    "n_tweets",
    "n_days",
    "tweet_mean",
    "control_mean",
    "diff",
    "ci_low",
    "ci_high",
]
CONF_DIR = Path(__file__).resolve().parent / "conf"


# ---- the pieces (pure functions) -------------------------------------------------------------
def bar_measures(grid: SessionGrid) -> dict[str, np.ndarray]:
    """Per measure, a (sessions x slots) matrix with NaN where there is no value."""
    with np.errstate(invalid="ignore", divide="ignore"):
        log_close = np.log(grid.close)
    abs_return = np.full(grid.close.shape, np.nan)
    abs_return[:, 1:] = np.abs(np.diff(log_close, axis=1)) * 1e4
    volume = grid.volume if grid.volume is not None else np.full(grid.close.shape, np.nan)
    return {"abs_return_bps": abs_return, "volume": volume}


def offsets_in_bars(bar_minutes: float) -> np.ndarray:
    """Bar offsets covering -30 .. +60 minutes (whole bars)."""
    return np.arange(-int(BEFORE_MIN // bar_minutes), int(AFTER_MIN // bar_minutes) + 1)


def profiles(
    grid: SessionGrid, values: np.ndarray, instants: np.ndarray, offsets: np.ndarray
) -> np.ndarray:
    """values at the bars `offsets` away from the bar containing each instant: shape
    instants.shape + (len(offsets),), NaN outside a session with bars or the session's slots."""
    flat = np.asarray(instants, dtype=np.int64).ravel()
    rows = grid.row_of(flat)
    slots = grid.containing_slot(rows, flat)[:, None] + offsets[None, :]
    ok = (rows[:, None] >= 0) & (slots >= 0) & (slots < grid.n_slots)
    picked = values[np.maximum(rows, 0)[:, None], np.clip(slots, 0, grid.n_slots - 1)]
    return np.where(ok, picked, np.nan).reshape(*np.shape(instants), len(offsets))


def control_instants(times_ns: np.ndarray, weeks: int = CONTROL_WEEKS) -> np.ndarray:
    """(n, 2 x weeks): the same New York wall-clock time and weekday, 1..weeks weeks before and
    after each instant (UTC ns; -1 where that local time does not exist)."""
    local = pd.to_datetime(times_ns, utc=True).tz_convert(NEW_YORK).tz_localize(None)
    columns = []
    for k in [*range(-weeks, 0), *range(1, weeks + 1)]:
        shifted = (local + pd.Timedelta(weeks=k)).tz_localize(
            NEW_YORK, ambiguous="NaT", nonexistent="NaT"
        )
        utc = shifted.tz_convert("UTC")
        columns.append(np.where(utc.isna(), -1, utc.asi8))
    return np.stack(columns, axis=1)


def quiet(instants: np.ndarray, all_tweets_ns: np.ndarray, minutes: int = QUIET_MIN) -> np.ndarray:
    """Whether no tweet falls within `minutes` on either side of each instant."""
    ordered = np.sort(all_tweets_ns)
    window = minutes * MINUTE_NS
    low = np.searchsorted(ordered, instants - window, side="left")
    high = np.searchsorted(ordered, instants + window, side="right")
    return high == low


def per_tweet_profiles(
    grid: SessionGrid,
    event_ns: np.ndarray,
    all_tweets_ns: np.ndarray,
    offsets: np.ndarray,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], np.ndarray]:
    """Per measure, the tweets' profiles and their control profiles (n x offsets each), and the
    number of usable controls per tweet."""
    controls = control_instants(event_ns)
    usable = (controls >= 0) & (grid.row_of(controls.ravel()).reshape(controls.shape) >= 0)
    usable &= quiet(controls.ravel(), all_tweets_ns).reshape(controls.shape)
    tweet, control = {}, {}
    for name, values in bar_measures(grid).items():
        tweet[name] = profiles(grid, values, event_ns, offsets)
        at_controls = profiles(grid, values, controls, offsets)  # n x controls x offsets
        at_controls = np.where(usable[:, :, None], at_controls, np.nan)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # "mean of empty slice": no control
            control[name] = np.nanmean(at_controls, axis=1)
    return tweet, control, usable.sum(axis=1)


def offset_table(
    tweet: dict[str, np.ndarray],
    control: dict[str, np.ndarray],
    days: np.ndarray,
    offset_min: np.ndarray,
    n_resamples: int = stats.BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per measure and offset (COLUMNS), the CI being the day-block interval of the mean
    diff."""
    rows = []
    for name in tweet:
        for j, minute in enumerate(offset_min):
            a, b = tweet[name][:, j], control[name][:, j]
            ok = ~np.isnan(a) & ~np.isnan(b)
            diff = a[ok] - b[ok]
            low, high = (
                stats.day_block_interval(
                    stats.weighted_mean(diff), days[ok], n_resamples=n_resamples, seed=seed
                )
                if ok.sum() >= 2
                else (np.nan, np.nan)
            )
            rows.append(
                {
                    "measure": name,
                    "offset_min": float(minute),
                    "n_tweets": int(ok.sum()),
                    "n_days": int(np.unique(days[ok]).size),
                    "tweet_mean": float(a[ok].mean()) if ok.any() else np.nan,
                    "control_mean": float(b[ok].mean()) if ok.any() else np.nan,
                    "diff": float(diff.mean()) if ok.any() else np.nan,
                    "ci_low": low,
                    "ci_high": high,
                }
            )
    return pd.DataFrame(rows, columns=COLUMNS)


def event_study(
    tweets: pd.DataFrame,
    prices: PriceBars,
    include_retweets: bool = False,
    n_resamples: int = stats.BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> dict:
    """The whole study: {"table": all tweets, "groups": {name: table} for groups with >= 100
    tweets, "group_counts": {name: n}, "n_events", "n_days", "n_controls_mean"}."""
    times = tweets["created_at"].to_numpy("datetime64[ns]").view("int64")
    grid = session_grid(prices, *sessions_covering(np.concatenate([times, prices.starts_ns])))
    if grid.close.shape[0] == 0:
        raise DataError(f"{prices.source}: no bar lies in an XNYS regular session")
    candidates = grid.row_of(times) >= 0
    if not include_retweets:
        candidates &= ~tweets["is_retweet"].to_numpy(bool)
    events = tweets.loc[candidates].reset_index(drop=True)
    if len(events) == 0:
        raise DataError("no tweet falls in a regular session covered by the price bars")
    event_ns = times[candidates]
    offsets = offsets_in_bars(prices.bar_minutes)
    offset_min = offsets * prices.bar_minutes
    tweet, control, n_controls = per_tweet_profiles(grid, event_ns, times, offsets)
    has_controls = n_controls > 0
    days = stats.trading_days(events["created_at"])
    for profile in (tweet, control):
        for name in profile:
            profile[name][~has_controls] = np.nan
    table = offset_table(tweet, control, days, offset_min, n_resamples, seed)

    texts = events["text"].astype(str).str.lower()
    groups, group_counts = {}, {}
    for name, pattern in KEYWORD_GROUPS.items():
        member = texts.str.contains(pattern, regex=True).to_numpy() & has_controls
        group_counts[name] = int(member.sum())
        if member.sum() >= MIN_GROUP_TWEETS:
            groups[name] = offset_table(
                {k: v[member] for k, v in tweet.items()},
                {k: v[member] for k, v in control.items()},
                days[member],
                offset_min,
                n_resamples,
                seed,
            )
    return {
        "table": table,
        "groups": groups,
        "group_counts": group_counts,
        "n_events": int(has_controls.sum()),
        "n_events_without_controls": int((~has_controls).sum()),
        "n_days": int(np.unique(days[has_controls]).size),
        "n_controls_mean": float(n_controls[has_controls].mean()) if has_controls.any() else 0.0,
        "bar_minutes": prices.bar_minutes,
    }


def peaks(table: pd.DataFrame) -> dict:
    """Per measure, the offset at or after the tweet with the largest diff, with its CI."""
    out = {}
    for name, part in table.groupby("measure", sort=False):
        after = part[part["offset_min"] >= 0].dropna(subset=["diff"])
        if after.empty:
            continue
        row = after.loc[after["diff"].idxmax()]
        out[name] = {k: float(row[k]) for k in ("offset_min", "diff", "ci_low", "ci_high")}
        out[name]["control_mean"] = float(row["control_mean"])
        out[name]["n_tweets"] = int(row["n_tweets"])
    return out


# ---- outputs ---------------------------------------------------------------------------------
def plot(tables: dict[str, pd.DataFrame], counts: dict[str, int], path: Path, title: str) -> None:
    """One row of two panels (abs return, volume) per table: tweet vs control means, the band
    control_mean + CI of the diff, a vertical line at the tweet."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        len(tables), 2, figsize=(11, 3.4 * len(tables)), squeeze=False, sharex=True
    )
    for row, (group, table) in enumerate(tables.items()):
        for col, (measure, label) in enumerate(MEASURES.items()):
            ax = axes[row, col]
            part = table[table["measure"] == measure]
            x = part["offset_min"].to_numpy()
            ax.fill_between(
                x,
                part["control_mean"] + part["ci_low"],
                part["control_mean"] + part["ci_high"],
                color="tab:gray",
                alpha=0.3,
                lw=0,
                label="control + 95% CI of the diff",
            )
            ax.plot(x, part["control_mean"], color="tab:gray", lw=1.2, label="matched controls")
            ax.plot(x, part["tweet_mean"], color="tab:red", lw=1.5, label="tweets")
            ax.axvline(0, color="black", lw=0.8, ls="--")
            ax.set_ylabel(label, fontsize="small")
            ax.set_title(f"{group} (n = {counts[group]} tweets)", fontsize="small")
            if row == len(tables) - 1:
                ax.set_xlabel("minutes from the bar containing the tweet")
            if row == 0 and col == 0:
                ax.legend(fontsize="x-small", loc="upper left")
    fig.suptitle(title, fontsize="medium")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)


def write_outputs(result: dict, out_dir: Path, title: str) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []

    def csv(frame: pd.DataFrame, name: str) -> None:
        with atomic_path(out_dir / name) as tmp:
            frame.to_csv(tmp, index=False, float_format="%.10g")
        written.append(out_dir / name)

    csv(result["table"], "event_study.csv")
    plot(
        {"all tweets": result["table"]},
        {"all tweets": result["n_events"]},
        out_dir / "event_study.png",
        title,
    )
    written.append(out_dir / "event_study.png")
    if result["groups"]:
        groups = pd.concat(
            [t.assign(group=name) for name, t in result["groups"].items()], ignore_index=True
        )
        csv(groups[["group", *COLUMNS]], "event_study_groups.csv")
        plot(
            result["groups"],
            result["group_counts"],
            out_dir / "event_study_groups.png",
            f"{title}: keyword groups with >= {MIN_GROUP_TWEETS} tweets",
        )
        written.append(out_dir / "event_study_groups.png")
    summary = {
        key: result[key]
        for key in (
            "n_events",
            "n_events_without_controls",
            "n_days",
            "n_controls_mean",
            "bar_minutes",
            "group_counts",
        )
    }
    summary["min_group_tweets"] = MIN_GROUP_TWEETS
    summary["peaks"] = peaks(result["table"])
    summary["ci"] = "95% day-block bootstrap interval of the mean diff (tweet - control)"
    with atomic_path(out_dir / "summary.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2, default=float) + "\n")
    written.append(out_dir / "summary.json")
    return written


# ---- the command -----------------------------------------------------------------------------
def default_paths() -> dict:
    """The real files, as conf/data/trump_spy5.yaml names them, and outputs/reports/event_study."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF_DIR)):
        cfg = compose("train", overrides=["data=trump_spy5"])
    return {
        "tweets": Path(cfg.data.tweets_path),
        "prices": Path(cfg.data.prices_path),
        "prices_timezone": cfg.data.prices_timezone,
        "out": Path(cfg.paths.log_dir) / "reports" / "event_study",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="lstm-tweets-event-study",
        description="Absolute 1-bar returns and volume around tweets vs matched control times.",
    )
    parser.add_argument("--tweets", type=Path, help="tweets file (default: data=trump_spy5's)")
    parser.add_argument("--prices", type=Path, help="price bars with volume (default: likewise)")
    parser.add_argument(
        "--out", type=Path, help="output folder (default: outputs/reports/event_study)"
    )
    parser.add_argument("--prices-timezone", default=None, help="time zone of naive price stamps")
    parser.add_argument("--include-retweets", action="store_true", help="retweets as events too")
    parser.add_argument("--resamples", type=int, default=stats.BOOTSTRAP_RESAMPLES)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    defaults = default_paths() if None in (args.tweets, args.prices, args.out) else {}
    tweets_path = args.tweets or defaults["tweets"]
    prices_path = args.prices or defaults["prices"]
    out_dir = args.out or defaults["out"]
    timezone = args.prices_timezone or defaults.get("prices_timezone", "America/New_York")
    try:
        tweets = load_tweets(tweets_path)
        prices = load_prices(prices_path, timezone=timezone)
        if not prices.has_volume:
            print(f"note: {prices_path} has no volume column; the volume panel stays empty")
        result = event_study(tweets, prices, args.include_retweets, args.resamples, args.seed)
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    title = (
        f"{Path(tweets_path).name} x {Path(prices_path).name}: {result['n_events']} tweets in "
        f"market hours on {result['n_days']} trading days vs matched controls"
    )
    written = write_outputs(result, out_dir, title)
    print(title)
    print(
        f"controls per tweet: {result['n_controls_mean']:.1f} on average "
        f"({result['n_events_without_controls']} tweets without any, left out); keyword groups: "
        + ", ".join(f"{k} {v}" for k, v in result["group_counts"].items())
        + f" (panels need >= {MIN_GROUP_TWEETS})"
    )
    for name, peak in peaks(result["table"]).items():
        print(
            f"{name}: largest diff after the tweet {peak['diff']:+.4g} at {peak['offset_min']:+g} min "
            f"(95% day-block CI {peak['ci_low']:+.4g} to {peak['ci_high']:+.4g}; control mean "
            f"{peak['control_mean']:.4g}, n = {peak['n_tweets']})"
        )
    for path in written:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

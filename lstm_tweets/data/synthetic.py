"""The embedded default data: a deterministic synthetic sample with a planted signal.

About 10k tweets over two years of real NYSE sessions, with 1-minute bars. The bars are a random
walk; a tweet that carries one of the hidden positive (negative) keywords pushes the drift up (down)
for the next half hour of its session. So a model that reads the text can beat the majority baseline
clearly, while a model trained on shuffled labels cannot. Written once under the cache folder.

A second planted signal is about activity, not direction: about one tweet in seven (drawn among
those without a direction keyword) carries one or two of the hidden ACTIVITY keywords, and for the
next half hour of the session every bar's volatility is `activity_volatility` times and its
volume `activity_volume` times the usual. So `data.target=abs_move` (and `volume`) have something
to find, and the event study a rise to show. It draws from its own random stream: the direction
sample is the one it was before, bar for bar, apart from the added words and the wider noise in
the half hours after activity tweets. (The absolute move of one window is a noisy measure, hence
the large factor; the share is small so that few direction windows fall into an excited half
hour: the LSTM's direction AUROC stays at 0.67, against 0.68 without the activity signal.)
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from lstm_tweets.data.labels import MINUTE_NS, nyse_sessions

VERSION = "v5"  # v5: the planted activity signal
POSITIVE = ["tremendous", "booming", "record", "deal", "jobs", "winning", "growth", "surge"]
NEGATIVE = ["tariffs", "disaster", "shutdown", "sanctions", "witch", "hunt", "collapse", "failing"]
ACTIVITY = ["fed", "powell", "rates", "yields", "beijing", "nasdaq", "dow", "futures"]
FILLER = """the a to and of is in for on that it with be this will we are our at you they have was
people great country big very just now today all by about not more they're don't it's america
american president news media democrats republicans congress senate house border wall vote
election state states total thank thanks happy new time day year years many much should would
could must never ever again first best strong fair bad sad true crime military vets veterans
tax taxes cut cuts economy market stock stocks companies business workers manufacturing
trade farmers iran russia mexico canada europe japan korea north south meeting summit
tonight tomorrow morning week interview rally crowd amazing incredible beautiful wonderful
nothing everything something rigged hoax fake-news total-disgrace honor god bless""".split()
USERS = [
    "foxandfriends",
    "seanhannity",
    "whitehouse",
    "potus",
    "nytimes",
    "cnn",
    "gop",
    "senatemajldr",
]
HASHTAGS = ["#maga", "#kag", "#usa", "#tbt", "#americafirst"]
# A long tail of rarer made-up words (names, places, slang) so the vocabulary is tweet-sized and
# `data.vocab_size` matters. Word frequencies fall off as in natural text (Zipf).
_SYLLABLES = [
    "ka",
    "lo",
    "mer",
    "tin",
    "sa",
    "vo",
    "ri",
    "del",
    "pan",
    "gu",
    "ton",
    "bre",
    "zi",
    "hal",
    "nor",
    "que",
]
FILLER += [a + b + c for c in ["", *_SYLLABLES] for a in _SYLLABLES for b in _SYLLABLES][:2400]
ZIPF = 1.0 / np.arange(1, len(FILLER) + 1)
ZIPF /= ZIPF.sum()


def synthetic_paths(cache_dir: str | Path, seed: int = 0) -> tuple[Path, Path]:
    folder = Path(cache_dir) / "synthetic" / f"{VERSION}-seed{seed}"
    return folder / "tweets.csv.gz", folder / "prices.parquet"


def ensure_synthetic_sample(cache_dir: str | Path, seed: int = 0, **options) -> tuple[Path, Path]:
    """Generate the sample once (atomically: a crash leaves no half-written folder) and reuse it."""
    tweets_path, prices_path = synthetic_paths(cache_dir, seed)
    if tweets_path.exists() and prices_path.exists():
        return tweets_path, prices_path
    folder = tweets_path.parent
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
    try:
        tweets, bars = generate_sample(seed=seed, **options)
        tweets.to_csv(tmp / tweets_path.name, index=False)
        bars.to_parquet(tmp / prices_path.name, index=False)
        if folder.exists():  # another process won the race; keep its copy
            shutil.rmtree(tmp)
        else:
            tmp.rename(folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return tweets_path, prices_path


def generate_sample(
    seed: int = 0,
    n_tweets: int = 10_000,
    first_day: str = "2018-01-02",
    last_day: str = "2019-12-31",
    share_in_session: float = 0.65,
    share_signal: float = 0.5,
    drift_bps_per_minute: float = 3.0,
    effect_minutes: int = 30,
    volatility_bps_per_minute: float = 6.0,
    share_retweets: float = 0.1,
    n_duplicates: int = 25,
    share_activity: float = 0.15,
    activity_volatility: float = 6.0,
    activity_volume: float = 3.0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    activity_rng = np.random.default_rng([seed, 1])  # its own stream: `rng` draws as before
    opens, closes = nyse_sessions(first_day, last_day)
    minutes = ((closes - opens) // MINUTE_NS).astype(int)
    bar_session = np.repeat(np.arange(len(opens)), minutes)
    bar_offset = np.arange(len(bar_session)) - np.repeat(np.cumsum(minutes) - minutes, minutes)
    bar_starts = opens[bar_session] + bar_offset * MINUTE_NS

    times = _tweet_times(rng, n_tweets, opens, closes, share_in_session)
    sentiment = rng.choice(
        [1, -1, 0], size=n_tweets, p=[share_signal / 2, share_signal / 2, 1 - share_signal]
    )
    is_retweet = rng.random(n_tweets) < share_retweets
    texts = [_tweet_text(rng, s, rt) for s, rt in zip(sentiment, is_retweet, strict=True)]
    # Activity tweets are drawn among the tweets without a direction keyword, so that no
    # direction-signal tweet has its own window drowned in the wider noise.
    neutral_share = max(1.0 - share_signal, 1e-9)
    active = (activity_rng.random(n_tweets) < share_activity / neutral_share) & (sentiment == 0)
    texts = [
        _add_activity_words(activity_rng, text) if a else text
        for text, a in zip(texts, active, strict=True)
    ]

    drift = _planted_drift(
        times, sentiment, bar_starts, bar_session, drift_bps_per_minute, effect_minutes
    )
    noise = rng.normal(0.0, volatility_bps_per_minute, size=len(bar_starts))
    excited = (
        _planted_drift(times, active.astype(int), bar_starts, bar_session, 1.0, effect_minutes) > 0
    )  # bars within half an hour after an activity tweet (in its session)
    noise = np.where(excited, noise * activity_volatility, noise)
    log_returns = (drift + noise) / 1e4
    # Each session restarts from a fresh level: overnight gaps are not part of any label.
    day_level = 250.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, size=len(opens))))
    session_cum = np.cumsum(log_returns) - np.repeat(
        np.cumsum(log_returns)[np.cumsum(minutes) - minutes]
        - log_returns[np.cumsum(minutes) - minutes],
        minutes,
    )
    close = np.round(day_level[bar_session] * np.exp(session_cum), 2)
    open_ = np.round(day_level[bar_session] * np.exp(session_cum - log_returns), 2)
    wiggle = np.abs(rng.normal(0.0, 0.02, size=len(close)))
    bars = pd.DataFrame(
        {
            "timestamp": pd.to_datetime(bar_starts, utc=True),
            "open": open_,
            "high": np.round(np.maximum(open_, close) + wiggle, 2),
            "low": np.round(np.minimum(open_, close) - wiggle, 2),
            "close": close,
            "volume": np.round(
                rng.integers(1_000, 50_000, size=len(close))
                * np.where(excited, activity_volume, 1.0)
            ).astype(np.int64),
        }
    )

    retweets = np.round(rng.lognormal(9.8, 0.6, size=n_tweets)).astype(int)
    favorites = np.where(
        is_retweet, 0, np.round(retweets * rng.lognormal(1.5, 0.3, size=n_tweets)).astype(int)
    )
    order = np.argsort(times, kind="stable")
    tweets = pd.DataFrame(
        {
            "id": (1_000_000_000_000_000_000 + np.arange(n_tweets) * 7919).astype(str),
            "created_at": pd.to_datetime(times[order], utc=True).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "text": np.asarray(texts, dtype=object)[order],
            "retweet_count": retweets[order],
            "favorite_count": favorites[order],
            "is_retweet": is_retweet[order],
        }
    )
    # A few exact duplicate rows, as archive merges produce: the loader must count and drop them.
    duplicates = tweets.iloc[rng.choice(n_tweets, size=n_duplicates, replace=False)]
    tweets = (
        pd.concat([tweets, duplicates])
        .sort_values("created_at", kind="stable")
        .reset_index(drop=True)
    )
    return tweets, bars


def _tweet_times(rng, n, opens, closes, share_in_session) -> np.ndarray:
    in_session = rng.random(n) < share_in_session
    day = rng.integers(0, len(opens), size=n)
    inside = opens[day] + (rng.random(n) * (closes[day] - opens[day])).astype(np.int64)
    # Outside: evenings, nights and weekends after the session's close.
    outside = closes[day] + (rng.random(n) * 14 * 3600e9).astype(np.int64)
    stamps = np.where(in_session, inside, outside)
    return stamps - stamps % 1_000_000_000  # whole seconds, as the archive stores them


def _tweet_text(rng, sentiment: int, is_retweet: bool) -> str:
    length = int(np.clip(rng.lognormal(2.7, 0.5), 3, 50))
    words = [FILLER[r] for r in rng.choice(len(FILLER), size=length, p=ZIPF)]
    if sentiment:
        keywords = POSITIVE if sentiment > 0 else NEGATIVE
        for _ in range(rng.integers(1, 3)):
            word = keywords[rng.integers(len(keywords))]
            words.insert(
                int(rng.integers(0, len(words) + 1)), word.upper() if rng.random() < 0.2 else word
            )
    if rng.random() < 0.15:
        words.append(HASHTAGS[rng.integers(len(HASHTAGS))])
    if rng.random() < 0.2:
        words.append(f"https://t.co/{rng.integers(1e9):x}")
    if rng.random() < 0.15:
        words.insert(0, "@" + USERS[rng.integers(len(USERS))])
    text = " ".join(words)
    text = text[0].upper() + text[1:] + ("!" if rng.random() < 0.4 else ".")
    if is_retweet:
        text = f"RT @{USERS[rng.integers(len(USERS))]}: {text}"
    return text


def _add_activity_words(rng, text: str) -> str:
    words = text.split(" ")
    for _ in range(rng.integers(1, 3)):
        word = ACTIVITY[rng.integers(len(ACTIVITY))]
        # After an "RT @user:" prefix, never inside it.
        words.insert(int(rng.integers(2 if text.startswith("RT @") else 0, len(words) + 1)), word)
    return " ".join(words)


def _planted_drift(times, sentiment, bar_starts, bar_session, drift, effect_minutes) -> np.ndarray:
    """Per-bar drift: each keyword tweet pushes the bars from the one containing it onward."""
    first = np.searchsorted(bar_starts, times, side="right") - 1
    inside = (first >= 0) & (sentiment != 0)
    first = np.clip(first, 0, len(bar_starts) - 1)
    inside &= bar_starts[first] + MINUTE_NS > times  # the tweet falls inside that bar
    last = np.minimum(first + effect_minutes, len(bar_starts))
    # Stop the push at the session end: effects never carry overnight.
    session_end = np.searchsorted(bar_session, bar_session[first], side="right")
    last = np.minimum(last, session_end)
    delta = np.zeros(len(bar_starts) + 1)
    np.add.at(delta, first[inside], drift * sentiment[inside])
    np.add.at(delta, last[inside], -drift * sentiment[inside])
    return np.cumsum(delta)[:-1]

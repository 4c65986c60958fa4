"""The real files in ../shared/data load as they are, and label into a usable sample."""

import json
import subprocess
import sys

import pandas as pd
import pytest

from lstm_tweets.data.labels import label_tweets
from lstm_tweets.data.prices import load_prices
from lstm_tweets.data.report import DataReport
from lstm_tweets.data.tweets import load_tweets


@pytest.fixture(scope="module")
def real_tweets(shared_data):
    path = shared_data / "tweets" / "trump_tweets.csv.gz"
    report = DataReport()
    return load_tweets(path, report), report


def test_tweets_file_loads(real_tweets):
    tweets, report = real_tweets
    assert report["rows_read"] == 17_908 and report["duplicates_removed"] == 0
    assert len(tweets) == 17_908
    assert str(tweets["created_at"].dt.tz) == "UTC"
    assert tweets["created_at"].iloc[0] == pd.Timestamp("2016-12-01 14:37:57", tz="UTC")
    assert tweets["created_at"].iloc[-1] == pd.Timestamp("2021-01-08 15:44:28", tz="UTC")
    assert tweets["created_at"].is_monotonic_increasing
    assert tweets["id"].str.fullmatch(r"\d+").all()
    assert tweets["is_retweet"][tweets["text"].str.startswith("RT @")].all()
    assert not tweets["text"].str.contains("&amp;", regex=False).any()


@pytest.mark.parametrize(
    ("name", "rows", "bar_minutes", "first", "last"),
    [
        ("spy_5min", 58_020, 5.0, "2018-01-02T14:30:00Z", "2020-12-31T20:55:00Z"),
        ("spy_1min", 81_806, 1.0, "2020-02-03T14:30:00Z", "2020-11-30T20:59:00Z"),
        ("es_1min", 28_409, 1.0, "2019-09-01T22:00:00Z", "2019-09-30T20:59:00Z"),
    ],
)
def test_price_files_load(shared_data, name, rows, bar_minutes, first, last):
    bars = load_prices(shared_data / "prices" / f"{name}.csv.gz")
    assert len(bars.frame) == rows
    assert bars.bar_minutes == bar_minutes
    assert bars.frame["timestamp"].iloc[0] == pd.Timestamp(first)
    assert bars.frame["timestamp"].iloc[-1] == pd.Timestamp(last)


@pytest.mark.parametrize("interval", [5, 50])
def test_spy_5min_labels_2018_to_2020(shared_data, real_tweets, interval):
    tweets, _ = real_tweets
    years = tweets[(tweets["created_at"] >= "2018-01-01") & (tweets["created_at"] < "2021-01-01")]
    bars = load_prices(shared_data / "prices" / "spy_5min.csv.gz")
    report = DataReport()
    labeled = label_tweets(years, bars, interval, report=report)
    assert len(labeled) > 2000
    assert report["labeled"] == len(labeled)
    up_share = labeled["label"].mean()
    assert 0.4 <= up_share <= 0.6
    # after_tweet (the default): each price is the close of the 5-min bar containing its instant
    # (an instant on a bar boundary belongs to the bar ending there, or, where that bar is
    # missing, to the one starting there).
    bar = pd.Timedelta(minutes=5)
    horizon = labeled["created_at"] + pd.Timedelta(minutes=interval)
    assert (labeled["start_time"] >= labeled["created_at"]).all()
    assert (labeled["start_time"] <= labeled["created_at"] + bar).all()
    assert (labeled["end_time"] >= horizon).all() and (labeled["end_time"] <= horizon + bar).all()
    assert report["retweets_excluded"] > 0 and report["outside_session"] > 0


def test_cli_on_the_real_files(shared_data, tmp_path):
    output, report_path = tmp_path / "labels.csv", tmp_path / "report.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "lstm_tweets.label_cli",
            "--tweets",
            str(shared_data / "tweets" / "trump_tweets.csv.gz"),
            "--prices",
            str(shared_data / "prices" / "spy_1min.csv.gz"),
            "--interval",
            "15",
            "--output",
            str(output),
            "--report",
            str(report_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(report_path.read_text())
    labels = pd.read_csv(output)
    assert len(labels) == report["labeled"] > 500
    assert report["label_up"] + report["label_down"] == report["labeled"]
    # Tweets outside the prices' months are counted, not errors.
    assert report["no_price_coverage"] > 1000
    assert "labeled samples" in result.stdout

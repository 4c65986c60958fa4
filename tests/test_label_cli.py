"""`lstm-tweets-label`: the labels CSV, the printed and saved report, and clean failures."""

import json
import os

import numpy as np
import pandas as pd
import pytest

from lstm_tweets.label_cli import main

TWEETS = (
    "id,created_at,text,retweet_count,favorite_count,is_retweet\n"
    "1,2019-06-03T15:00:00Z,Tariffs &amp; trade,10,20,False\n"  # 11:00 EDT: labeled
    "2,2019-06-03T15:00:00Z,RT @GOP: jobs,5,0,False\n"  # retweet by its prefix
    "3,2019-06-03T12:00:00Z,early bird,1,1,False\n"  # 08:00 EDT: outside
    "4,2019-06-03T19:58:00Z,late,1,1,False\n"  # 15:58 EDT: crosses the close
    "1,2019-06-03T15:00:00Z,Tariffs &amp; trade,10,20,False\n"  # duplicate id
    "5,2017-06-01T15:00:00Z,before the prices,1,1,False\n"  # no bars that day
)


def write_inputs(tmp_path):
    tweets = tmp_path / "tweets.csv"
    tweets.write_text(TWEETS)
    prices = tmp_path / "bars.csv"
    stamps = pd.date_range("2019-06-03 09:30", "2019-06-03 15:59", freq="1min")
    lines = ["timestamp,open,high,low,close"]
    lines += [
        f"{s:%Y-%m-%d %H:%M},{100 + k / 100:.2f},{100 + k / 100:.2f},{100 + k / 100:.2f},{100 + k / 100:.2f}"
        for k, s in enumerate(stamps)
    ]
    prices.write_text("\n".join(lines) + "\n")
    return tweets, prices


def run(tmp_path, *extra, tweets=None, prices=None, output=None):
    default_tweets, default_prices = write_inputs(tmp_path)
    output = output or tmp_path / "out" / "labels.csv"
    argv = [
        "--tweets",
        str(tweets or default_tweets),
        "--prices",
        str(prices or default_prices),
        "--interval",
        "5",
        "--output",
        str(output),
        *extra,
    ]
    return main(argv), output


def test_writes_labels_and_report(tmp_path, capsys):
    code, output = run(tmp_path, "--report", str(tmp_path / "report.json"))
    assert code == 0
    labels = pd.read_csv(output, dtype={"id": str})
    assert list(labels.columns) == [
        "id",
        "created_at",
        "start_time",
        "end_time",
        "start_price",
        "end_price",
        "return_bps",
        "abs_return_bps",
        "volume_ratio",
        "label",
    ]
    assert len(labels) == 1
    row = labels.iloc[0]
    # 11:00 EDT: start = close of the 10:59 bar (k=89), end = close of the 11:04 bar (k=94); on a
    # bar boundary both window rules use the bar that ends there (the default is after_tweet).
    assert row["id"] == "1"
    assert pd.Timestamp(row["created_at"]) == pd.Timestamp("2019-06-03 15:00", tz="UTC")
    assert pd.Timestamp(row["start_time"]) == pd.Timestamp("2019-06-03 15:00", tz="UTC")
    assert pd.Timestamp(row["end_time"]) == pd.Timestamp("2019-06-03 15:05", tz="UTC")
    assert (row["start_price"], row["end_price"], row["label"]) == (100.89, 100.94, 1)
    assert row["return_bps"] == pytest.approx(np.log(100.94 / 100.89) * 1e4)

    report = json.loads((tmp_path / "report.json").read_text())
    assert report == {
        "rows_read": 6,
        "duplicates_removed": 1,
        "retweets_excluded": 1,
        "outside_session": 1,
        "window_crosses_close": 1,
        "no_completed_bar": 0,
        "no_price_coverage": 1,
        "ties_dropped": 0,
        "labeled": 1,
        "label_down": 0,
        "label_up": 1,
        # Counts, not drops: the bars of this file carry no volume column.
        "no_volume_column": 1,
        "empty_window": 0,
        "volume_gap": 0,
        "no_volume_history": 0,
    }
    assert np.isnan(row["volume_ratio"])
    assert row["abs_return_bps"] == row["return_bps"]
    printed = capsys.readouterr().out
    assert "duplicate tweet ids removed" in printed and "window_crosses_close" in printed
    assert "wrote 1 labeled tweets" in printed
    assert not [p for p in output.parent.iterdir() if p.name != "labels.csv"]  # no temp files left
    # Written through private temp files, but the results get the usual permissions.
    umask = os.umask(0)
    os.umask(umask)
    for path in (output, tmp_path / "report.json"):
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_options_reach_the_labeler(tmp_path):
    code, output = run(
        tmp_path,
        "--include-retweets",
        "--ties",
        "class",
        "--dead-band-bps",
        "10",
        "--bar-minutes",
        "1",
        "--prices-timezone",
        "America/New_York",
        "--timestamp-column",
        "timestamp",
    )
    assert code == 0
    labels = pd.read_csv(output, dtype={"id": str})
    # The retweet now counts, and +4.96 bps lies inside the 10 bps dead band: flat (2).
    assert labels["id"].tolist() == ["1", "2"]
    assert labels["label"].tolist() == [2, 2]


def test_window_start_option(tmp_path, capsys):
    # 11:00:30 EDT, inside the 11:00 bar (k=90). Default after_tweet: the bar containing t (k=90,
    # done 11:01) to the bar containing t+5 = 11:05:30 (k=95, done 11:06). before_tweet: the last
    # bars done by t (k=89, done 11:00) and by t+5 (k=94, done 11:05).
    tweets = tmp_path / "mid_minute.csv"
    tweets.write_text("id,created_at,text\n7,2019-06-03T15:00:30Z,mid minute\n")
    expected = {
        None: ("15:01", "15:06", 100.90, 100.95),
        "after_tweet": ("15:01", "15:06", 100.90, 100.95),
        "before_tweet": ("15:00", "15:05", 100.89, 100.94),
    }
    for rule, (start, end, start_price, end_price) in expected.items():
        output = tmp_path / f"{rule}.csv"
        code, _ = run(
            tmp_path, *(["--window-start", rule] if rule else []), tweets=tweets, output=output
        )
        assert code == 0
        row = pd.read_csv(output).iloc[0]
        assert pd.Timestamp(row["start_time"]) == pd.Timestamp(f"2019-06-03 {start}", tz="UTC")
        assert pd.Timestamp(row["end_time"]) == pd.Timestamp(f"2019-06-03 {end}", tz="UTC")
        assert (row["start_price"], row["end_price"]) == (start_price, end_price)
        assert f"N = 5 min, {rule or 'after_tweet'}" in capsys.readouterr().out


def test_prices_timezone_option(tmp_path):
    # Read as Chicago time, the 09:30 bar starts at 14:30Z: the 15:00Z tweet now uses the 09:59 CT
    # bar (k=29).
    code, output = run(tmp_path, "--prices-timezone", "America/Chicago")
    assert code == 0
    assert pd.read_csv(output)["start_price"].tolist() == [100.29]


def _assert_failed(code, output, capsys, *fragments):
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    for fragment in fragments:
        assert fragment in err
    assert not output.exists()
    if output.parent.exists():
        assert list(output.parent.iterdir()) == []


def test_missing_tweets_file(tmp_path, capsys):
    code, output = run(tmp_path, tweets=tmp_path / "missing.csv")
    _assert_failed(code, output, capsys, "missing.csv: file not found")


def test_unparseable_tweet_time(tmp_path, capsys):
    bad = tmp_path / "bad_tweets.csv"
    bad.write_text(TWEETS.replace("2019-06-03T12:00:00Z", "noon-ish"))
    code, output = run(tmp_path, tweets=bad)
    _assert_failed(code, output, capsys, "bad_tweets.csv", "row 3", "'noon-ish'")


def test_unsorted_prices(tmp_path, capsys):
    _, prices = write_inputs(tmp_path)
    lines = prices.read_text().splitlines()
    lines[5], lines[6] = lines[6], lines[5]
    shuffled = tmp_path / "shuffled.csv"
    shuffled.write_text("\n".join(lines) + "\n")
    code, output = run(tmp_path, prices=shuffled)
    _assert_failed(code, output, capsys, "shuffled.csv: row 6: timestamps are not sorted")


def test_header_only_prices(tmp_path, capsys):
    empty = tmp_path / "header_only.csv"
    empty.write_text("timestamp,open,high,low,close\n")
    code, output = run(tmp_path, prices=empty)
    _assert_failed(code, output, capsys, "header_only.csv: file has a header but no rows")


def test_no_overlap(tmp_path, capsys):
    old = tmp_path / "old_tweets.csv"
    old.write_text("id,created_at,text\n9,2016-12-01T15:00:00Z,too early\n")
    code, output = run(tmp_path, tweets=old)
    _assert_failed(code, output, capsys, "bars.csv", "no overlap")


def test_bad_interval_keeps_an_existing_output(tmp_path, capsys):
    tweets, prices = write_inputs(tmp_path)
    output = tmp_path / "labels.csv"
    output.write_text("previous run\n")
    code = main(
        [
            "--tweets",
            str(tweets),
            "--prices",
            str(prices),
            "--interval",
            "0",
            "--output",
            str(output),
        ]
    )
    assert code == 2
    assert "data.interval=0" in capsys.readouterr().err
    assert output.read_text() == "previous run\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bars.csv", "labels.csv", "tweets.csv"]


def test_usage_error_is_exit_code_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "--tweets",
                "t.csv",
                "--prices",
                "p.csv",
                "--interval",
                "5",
                "--output",
                "o.csv",
                "--ties",
                "up",
            ]
        )
    assert exit_info.value.code == 2
    assert "invalid choice: 'up'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "--tweets",
                "t.csv",
                "--prices",
                "p.csv",
                "--interval",
                "5",
                "--output",
                "o.csv",
                "--window-start",
                "sideways",
            ]
        )
    assert exit_info.value.code == 2
    assert "invalid choice: 'sideways'" in capsys.readouterr().err

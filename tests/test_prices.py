"""Prices loader: time zones (DST included), bar duration, and clear errors for bad files."""

import pandas as pd
import pytest

from lstm_tweets.data.errors import DataError
from lstm_tweets.data.prices import load_prices

HEADER = "timestamp,open,high,low,close,volume\n"


def _write(path, stamps, close=100.0):
    rows = [f"{s},{close},{close + 0.5},{close - 0.5},{close},10" for s in stamps]
    path.write_text(HEADER + "\n".join(rows) + "\n")
    return path


def _utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def test_naive_stamps_are_new_york_time_across_both_dst_switches(tmp_path):
    # Friday before / Monday after each switch: 09:30 ET is 14:30Z in winter, 13:30Z in summer.
    path = _write(
        tmp_path / "bars.csv",
        [
            "2019-03-08 09:30:00",
            "2019-03-08 09:31:00",  # EST, UTC-5
            "2019-03-11 09:30:00",
            "2019-03-11 09:31:00",  # EDT, UTC-4 (after spring-forward on 03-10)
            "2019-11-01 09:30:00",
            "2019-11-01 09:31:00",  # EDT
            "2019-11-04 09:30:00",
            "2019-11-04 09:31:00",  # EST (after fall-back on 11-03)
        ],
    )
    bars = load_prices(path)
    assert bars.frame["timestamp"].tolist() == [
        _utc("2019-03-08 14:30"),
        _utc("2019-03-08 14:31"),
        _utc("2019-03-11 13:30"),
        _utc("2019-03-11 13:31"),
        _utc("2019-11-01 13:30"),
        _utc("2019-11-01 13:31"),
        _utc("2019-11-04 14:30"),
        _utc("2019-11-04 14:31"),
    ]
    assert bars.bar_minutes == 1.0
    assert bars.frame["close"].tolist() == [100.0] * 8
    assert bars.frame["high"].iloc[0] == 100.5 and bars.frame["low"].iloc[0] == 99.5


def test_other_timezone_for_naive_stamps(tmp_path):
    # Futures data in Chicago time: 08:30 CT on 2019-09-03 is 13:30Z.
    path = _write(tmp_path / "es.csv", ["2019-09-03 08:30", "2019-09-03 08:31"])
    bars = load_prices(path, timezone="America/Chicago")
    assert bars.frame["timestamp"].tolist() == [_utc("2019-09-03 13:30"), _utc("2019-09-03 13:31")]


def test_repeated_fall_back_hour_is_inferred_from_order(tmp_path):
    # A 24-hour feed: 01:00-01:59 happens twice on 2019-11-03 (first EDT, then EST).
    stamps = [
        "2019-11-03 00:30",
        "2019-11-03 01:00",
        "2019-11-03 01:30",
        "2019-11-03 01:00",
        "2019-11-03 01:30",
        "2019-11-03 02:00",
    ]
    path = _write(tmp_path / "globex.csv", stamps)
    bars = load_prices(path, bar_minutes=30)
    assert bars.frame["timestamp"].tolist() == [
        _utc("2019-11-03 04:30"),
        _utc("2019-11-03 05:00"),
        _utc("2019-11-03 05:30"),
        _utc("2019-11-03 06:00"),
        _utc("2019-11-03 06:30"),
        _utc("2019-11-03 07:00"),
    ]
    with pytest.raises(DataError, match=r"globex\.csv: naive timestamp stamps cannot be localized"):
        load_prices(path, ambiguous="raise")


def test_nonexistent_spring_forward_stamp_is_an_error(tmp_path):
    path = _write(
        tmp_path / "globex.csv", ["2019-03-10 01:30", "2019-03-10 02:30", "2019-03-10 03:30"]
    )
    with pytest.raises(
        DataError,
        match=r"globex\.csv: naive timestamp stamps cannot be localized to America/New_York",
    ):
        load_prices(path)


def test_tz_aware_stamps_are_kept(tmp_path):
    # Mixed offsets across the spring-forward weekend, and a Z stamp, all to UTC.
    path = _write(
        tmp_path / "bars.csv",
        [
            "2019-03-08T09:30:00-05:00",
            "2019-03-11T09:30:00-04:00",
            "2019-03-11T13:31:00Z",
        ],
    )
    bars = load_prices(path, bar_minutes=1)
    assert bars.frame["timestamp"].tolist() == [
        _utc("2019-03-08 14:30"),
        _utc("2019-03-11 13:30"),
        _utc("2019-03-11 13:31"),
    ]


def test_tz_aware_parquet(tmp_path):
    path = tmp_path / "bars.parquet"
    pd.DataFrame(
        {
            "timestamp": pd.to_datetime(
                ["2019-06-03 13:30", "2019-06-03 13:35", "2019-06-03 13:40"], utc=True
            ),
            "open": [1.0, 2.0, 3.0],
            "high": [1.5, 2.5, 3.5],
            "low": [0.5, 1.5, 2.5],
            "close": [1.2, 2.2, 3.2],
        }
    ).to_parquet(path, index=False)
    bars = load_prices(path)
    assert bars.bar_minutes == 5.0
    assert bars.frame["timestamp"].iloc[1] == _utc("2019-06-03 13:35")
    assert bars.closes.tolist() == [1.2, 2.2, 3.2]


def test_bar_minutes_inferred_from_the_common_spacing(tmp_path):
    # Two sessions of 5-minute bars: the overnight gap is rarer than the 5-minute step.
    stamps = [f"2019-06-0{d} {h}" for d in (3, 4) for h in ("09:30", "09:35", "09:40", "09:45")]
    assert load_prices(_write(tmp_path / "five.csv", stamps)).bar_minutes == 5.0
    # One-minute bars with a halt: still 1.
    stamps = [
        "2019-06-03 09:30",
        "2019-06-03 09:31",
        "2019-06-03 09:32",
        "2019-06-03 09:50",
        "2019-06-03 09:51",
    ]
    assert load_prices(_write(tmp_path / "one.csv", stamps)).bar_minutes == 1.0


def test_bar_minutes_override(tmp_path):
    # Sparse 1-minute bars whose most common spacing is 2 minutes: the caller knows better.
    stamps = ["2019-06-03 09:30", "2019-06-03 09:32", "2019-06-03 09:34", "2019-06-03 09:35"]
    path = _write(tmp_path / "sparse.csv", stamps)
    assert load_prices(path).bar_minutes == 2.0
    assert load_prices(path, bar_minutes=1).bar_minutes == 1.0


def test_named_timestamp_column_and_close_only_file(tmp_path):
    path = tmp_path / "close_only.csv"
    path.write_text("Bar Start,Close\n2019-06-03 09:30,10.0\n2019-06-03 09:31,10.5\n")
    bars = load_prices(path, timestamp_column="Bar Start")
    assert bars.frame["timestamp"].tolist() == [_utc("2019-06-03 13:30"), _utc("2019-06-03 13:31")]
    assert bars.frame["open"].tolist() == [10.0, 10.5] and bars.frame["high"].tolist() == [
        10.0,
        10.5,
    ]


# --- bad input: each error names the file and, where there is one, the row or column -------------


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"spy\.csv: file not found"):
        load_prices(tmp_path / "spy.csv")


def test_empty_and_header_only(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(DataError, match=r"empty\.csv: file is empty"):
        load_prices(empty)
    header = tmp_path / "header.csv"
    header.write_text(HEADER)
    with pytest.raises(DataError, match=r"header\.csv: file has a header but no rows"):
        load_prices(header)


def test_missing_close_column(tmp_path):
    path = tmp_path / "noclose.csv"
    path.write_text("timestamp,open,high,low\n2019-06-03 09:30,1,1,1\n")
    with pytest.raises(DataError, match=r"noclose\.csv: missing column\(s\) \['close'\]"):
        load_prices(path)


def test_missing_timestamp_column(tmp_path):
    path = tmp_path / "nostamp.csv"
    path.write_text("when,close\n2019-06-03 09:30,1\n")
    with pytest.raises(
        DataError, match=r"nostamp\.csv: no timestamp column.*found \['when', 'close'\]"
    ):
        load_prices(path)


def test_unparseable_timestamp_names_row(tmp_path):
    path = _write(tmp_path / "bars.csv", ["2019-06-03 09:30", "2019-06-03 09:31", "half past nine"])
    with pytest.raises(
        DataError, match=r"bars\.csv: row 3: cannot parse timestamp='half past nine'"
    ):
        load_prices(path)


def test_non_numeric_price_names_row_and_column(tmp_path):
    path = tmp_path / "bars.csv"
    path.write_text(HEADER + "2019-06-03 09:30,1,1,1,1,1\n2019-06-03 09:31,1,1,1,n/a?,1\n")
    with pytest.raises(DataError, match=r"bars\.csv: row 2: close='n/a\?' is not a number"):
        load_prices(path)


def test_non_utf8(tmp_path):
    path = tmp_path / "bars.csv"
    path.write_bytes((HEADER + "2019-06-03 09:30,1,1,1,1,1 \u00b5\n").encode("latin-1"))
    with pytest.raises(DataError, match=r"bars\.csv: not valid UTF-8"):
        load_prices(path)


def test_unsorted_stamps(tmp_path):
    path = _write(
        tmp_path / "bars.csv", ["2019-06-03 09:30", "2019-06-03 09:32", "2019-06-03 09:31"]
    )
    with pytest.raises(DataError, match=r"bars\.csv: row 3: timestamps are not sorted"):
        load_prices(path)


def test_duplicated_stamps(tmp_path):
    path = _write(
        tmp_path / "bars.csv", ["2019-06-03 09:30", "2019-06-03 09:31", "2019-06-03 09:31"]
    )
    with pytest.raises(
        DataError, match=r"bars\.csv: row 3: duplicate timestamp 2019-06-03 13:31:00"
    ):
        load_prices(path)


def test_negative_price(tmp_path):
    path = tmp_path / "bars.csv"
    path.write_text(HEADER + "2019-06-03 09:30,1,2,1,1.5,1\n2019-06-03 09:31,1,2,-1,1.5,1\n")
    with pytest.raises(DataError, match=r"bars\.csv: row 2: prices must be positive"):
        load_prices(path)


def test_high_below_low(tmp_path):
    path = tmp_path / "bars.csv"
    path.write_text(HEADER + "2019-06-03 09:30,1,2,1,1.5,1\n2019-06-03 09:31,1.5,1.4,1.6,1.5,1\n")
    with pytest.raises(DataError, match=r"bars\.csv: row 2: high < low \(1\.4 < 1\.6\)"):
        load_prices(path)


def test_single_bar_needs_bar_minutes(tmp_path):
    path = _write(tmp_path / "bars.csv", ["2019-06-03 09:30"])
    with pytest.raises(
        DataError, match=r"bars\.csv: cannot infer the bar duration.*pass bar_minutes"
    ):
        load_prices(path)
    assert load_prices(path, bar_minutes=1).bar_minutes == 1.0

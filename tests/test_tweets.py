"""Tweets loader: every supported export becomes the same canonical frame, and bad files fail clearly."""

import gzip
import json

import pandas as pd
import pytest

from lstm_tweets.data.errors import DataError
from lstm_tweets.data.report import DataReport
from lstm_tweets.data.tweets import CANONICAL_COLUMNS, load_tweets


def _utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def test_archive_json(tmp_path):
    rows = [
        {
            "source": "Twitter for iPhone",
            "id_str": "1050118621198921728",
            "text": "Jobs &amp; growth!",
            "created_at": "Wed Oct 10 20:19:24 +0000 2018",
            "retweet_count": 15000,
            "favorite_count": 60000,
            "is_retweet": False,
        },
        {
            "source": "Twitter for iPhone",
            "id_str": "1049000000000000001",
            "text": "RT @foxandfriends: watch",
            "created_at": "Sun Oct 07 09:05:00 +0000 2018",
            "retweet_count": 900,
            "favorite_count": 0,
            "is_retweet": True,
        },
    ]
    path = tmp_path / "archive.json"
    path.write_text(json.dumps(rows))
    report = DataReport()
    frame = load_tweets(path, report)

    assert list(frame.columns) == CANONICAL_COLUMNS
    assert str(frame["created_at"].dt.tz) == "UTC"
    # Sorted by time: the October 7 retweet comes first.
    assert frame["id"].tolist() == ["1049000000000000001", "1050118621198921728"]
    assert frame["created_at"].tolist() == [
        _utc("2018-10-07 09:05:00"),
        _utc("2018-10-10 20:19:24"),
    ]
    assert frame["text"].tolist() == ["RT @foxandfriends: watch", "Jobs & growth!"]
    assert frame["is_retweet"].tolist() == [True, False]
    assert frame["retweet_count"].tolist() == [900, 15000]
    assert frame["favorite_count"].tolist() == [0, 60000]
    assert report["rows_read"] == 2 and report["duplicates_removed"] == 0


def test_old_archive_csv_export(tmp_path):
    # The old trumptwitterarchive.com export: MM-DD-YYYY stamps (UTC), an unreliable is_retweet flag.
    path = tmp_path / "export.csv"
    path.write_text(
        "source,text,created_at,retweet_count,favorite_count,is_retweet,id_str\n"
        'Twitter for iPhone,"Tax cuts &amp; jobs, jobs, jobs",10-10-2018 20:19:24,100,400,false,1050118621198921728\n'
        "Twitter for iPhone,RT @WhiteHouse: live now,01-02-2019 14:00:00,50,0,false,1080000000000000002\n"
        "Twitter for iPhone,Duplicate row,10-10-2018 20:19:24,100,400,false,1050118621198921728\n"
    )
    report = DataReport()
    frame = load_tweets(path, report)

    assert frame["id"].tolist() == ["1050118621198921728", "1080000000000000002"]
    # 10-10 is ambiguous, 01-02 is not: month first, so January 2, not February 1.
    assert frame["created_at"].tolist() == [
        _utc("2018-10-10 20:19:24"),
        _utc("2019-01-02 14:00:00"),
    ]
    assert frame["text"].iloc[0] == "Tax cuts & jobs, jobs, jobs"
    # The flag says false, the "RT @" prefix says retweet: the prefix wins.
    assert frame["is_retweet"].tolist() == [False, True]
    assert report["rows_read"] == 3 and report["duplicates_removed"] == 1


def test_newer_archive_export(tmp_path):
    path = tmp_path / "tweets_01-08-2021.csv"
    path.write_text(
        "id,text,isRetweet,isDeleted,device,favorites,retweets,date,isFlagged\n"
        "1320452830178914305,Vote! &gt; &lt;,f,f,Twitter for iPhone,120000,25000,2020-10-25 19:18:00,f\n"
        "1320000000000000000,RT @GOP: thanks,t,f,Twitter for iPhone,0,7000,2020-10-24 12:00:01,f\n"
    )
    frame = load_tweets(path)

    assert frame["id"].tolist() == ["1320000000000000000", "1320452830178914305"]
    assert frame["created_at"].tolist() == [
        _utc("2020-10-24 12:00:01"),
        _utc("2020-10-25 19:18:00"),
    ]
    assert frame["text"].tolist() == ["RT @GOP: thanks", "Vote! > <"]
    assert frame["is_retweet"].tolist() == [True, False]
    assert frame["favorite_count"].tolist() == [0, 120000]
    assert frame["retweet_count"].tolist() == [7000, 25000]


def test_canonical_csv_gz_and_parquet_agree(tmp_path):
    canonical = pd.DataFrame(
        {
            "id": ["804333718999539712", "804333771021570048", "804333718999539712"],
            "created_at": ["2016-12-01T14:37:57Z", "2016-12-01T14:38:09Z", "2016-12-01T14:37:57Z"],
            "text": ["Stay safe &amp; well", "RT @IvankaTrump: great", "Stay safe &amp; well"],
            "retweet_count": [12077, 9834, 12077],
            "favorite_count": [65724, 0, 65724],
            "is_retweet": [False, False, False],
        }
    )
    csv_path = tmp_path / "tweets.csv.gz"
    with gzip.open(csv_path, "wt", encoding="utf-8") as handle:
        canonical.to_csv(handle, index=False)
    parquet_path = tmp_path / "tweets.parquet"
    as_parquet = canonical.assign(
        id=canonical["id"].astype("int64"),
        created_at=pd.to_datetime(canonical["created_at"], utc=True),
    )
    as_parquet.to_parquet(parquet_path, index=False)

    frames = []
    for path in (csv_path, parquet_path):
        report = DataReport()
        frame = load_tweets(path, report)
        assert report["duplicates_removed"] == 1, path
        assert frame["id"].tolist() == ["804333718999539712", "804333771021570048"], path
        assert frame["created_at"].tolist() == [
            _utc("2016-12-01 14:37:57"),
            _utc("2016-12-01 14:38:09"),
        ]
        assert frame["text"].tolist() == ["Stay safe & well", "RT @IvankaTrump: great"]
        assert frame["is_retweet"].tolist() == [False, True]
        frames.append(frame)
    pd.testing.assert_frame_equal(frames[0], frames[1], check_dtype=False)


def test_naive_and_offset_timestamps_become_utc(tmp_path):
    path = tmp_path / "tweets.csv"
    path.write_text(
        "id,created_at,text\n"
        "1,2019-03-11 13:30:00,naive stamps in tweet files are UTC\n"
        "2,2019-03-11T09:31:00-04:00,an offset is honored\n"
    )
    frame = load_tweets(path)
    assert frame["created_at"].tolist() == [
        _utc("2019-03-11 13:30:00"),
        _utc("2019-03-11 13:31:00"),
    ]
    assert frame["retweet_count"].tolist() == [0, 0] and frame["is_retweet"].tolist() == [
        False,
        False,
    ]


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"nope\.csv: file not found"):
        load_tweets(tmp_path / "nope.csv")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    with pytest.raises(DataError, match=r"empty\.csv: file is empty"):
        load_tweets(path)


def test_header_only_file(tmp_path):
    path = tmp_path / "header.csv"
    path.write_text("id,created_at,text\n")
    with pytest.raises(DataError, match=r"header\.csv: file has a header but no rows"):
        load_tweets(path)


def test_missing_column_is_named(tmp_path):
    path = tmp_path / "notext.csv"
    path.write_text("id,created_at,body\n1,2019-01-01T00:00:00Z,hello\n")
    with pytest.raises(DataError) as err:
        load_tweets(path)
    message = str(err.value)
    assert "notext.csv" in message and "['text']" in message and "body" in message


def test_unparseable_timestamp_names_the_row(tmp_path):
    path = tmp_path / "tweets.csv"
    path.write_text(
        "id,created_at,text\n1,2019-01-01T00:00:00Z,a\n2,2019-01-01T00:01:00Z,b\n3,yesterday noon,c\n"
    )
    with pytest.raises(DataError) as err:
        load_tweets(path)
    message = str(err.value)
    assert "tweets.csv" in message and "row 3" in message and "'yesterday noon'" in message


def test_non_utf8_bytes(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("id,created_at,text\n1,2019-01-01T00:00:00Z,caf\u00e9\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin1\.csv: not valid UTF-8"):
        load_tweets(path)


def test_bad_count_names_row_and_column(tmp_path):
    path = tmp_path / "tweets.csv"
    path.write_text(
        "id,created_at,text,retweet_count\n1,2019-01-01T00:00:00Z,a,12\n2,2019-01-01T00:01:00Z,b,many\n"
    )
    with pytest.raises(
        DataError, match=r"tweets\.csv: row 2: retweet_count='many' is not a number"
    ):
        load_tweets(path)

"""Train/val/test splits: chronological with purging at the boundaries, random (reproductions
only), and walk-forward folds (equal-count and calendar quarters)."""

import logging

import numpy as np
import pandas as pd
import pytest

from lstm_tweets.data.errors import DataError
from lstm_tweets.data.split import count_walk_forward_folds, split_samples

START = pd.Timestamp("2019-01-02 15:00", tz="UTC")


def frame_at(minutes, interval=5) -> pd.DataFrame:
    """A labeled frame with tweets `minutes` after START (sorted input expected)."""
    minutes = np.asarray(minutes, dtype="int64")
    return pd.DataFrame(
        {
            "created_at": START + pd.to_timedelta(minutes, unit="min"),
            "interval": interval,
            "label": np.arange(len(minutes)) % 2,
        }
    )


def busy_frame(n=400, seed=0) -> pd.DataFrame:
    """Tweets 0-6 minutes apart (equal stamps included) with 5-minute windows: many windows
    straddle any cut."""
    gaps = np.random.default_rng(seed).integers(0, 7, n)
    return frame_at(np.cumsum(gaps))


def window_ends(frame: pd.DataFrame) -> pd.Series:
    return frame["created_at"] + pd.to_timedelta(frame["interval"], unit="min")


def assert_time_ordered_and_purged(frame: pd.DataFrame, split) -> None:
    """Parts follow each other in time, and no kept window reaches into a later part."""
    times, ends = frame["created_at"], window_ends(frame)
    parts = [split.train, split.val, split.test]
    for i, part in enumerate(parts[:-1]):
        later = np.concatenate(parts[i + 1 :])
        assert times.iloc[part].max() < times.iloc[later].min()
        # every kept sample, one by one
        assert (ends.iloc[part] <= times.iloc[later].min()).all()


# ---- chronological ---------------------------------------------------------------------------
def test_chronological_parts_follow_each_other_and_no_window_crosses_a_boundary():
    frame = busy_frame()
    n = len(frame)
    split = split_samples(frame)
    assert_time_ordered_and_purged(frame, split)
    assert split.purged > 0  # the frame is busy enough that the purge had work to do

    cut_train, cut_val = int(n * 0.7), int(n * 0.85)
    # Each part is a purged subset of its fraction of the rows; the last part is never purged.
    assert set(split.train) <= set(range(cut_train))
    assert set(split.val) <= set(range(cut_train, cut_val))
    np.testing.assert_array_equal(split.test, np.arange(cut_val, n))
    assert len(split.train) + len(split.val) + len(split.test) + split.purged == n
    # Only samples at the end of a part are purged: each kept part is a contiguous run of rows.
    for part in (split.train, split.val):
        np.testing.assert_array_equal(part, np.arange(part[0], part[0] + len(part)))


def test_chronological_sizes_follow_the_fractions_when_nothing_is_purged():
    frame = frame_at(np.arange(200) * 60)  # an hour apart, 5-minute windows
    for fractions in [(0.7, 0.15, 0.15), (0.5, 0.25, 0.25), (0.8, 0.1, 0.1)]:
        split = split_samples(frame, fractions=fractions)
        assert split.purged == 0
        n_train, n_val = int(200 * fractions[0]), int(200 * (fractions[0] + fractions[1]))
        assert (len(split.train), len(split.val), len(split.test)) == (
            n_train,
            n_val - n_train,
            200 - n_val,
        )


def test_purged_count_equals_a_hand_count():
    # 20 tweets: train rows 0..13, val 14..16, test 17..19 (int(20*0.7)=14, int(20*0.85)=17).
    minutes = [0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 117, 119]  # train
    minutes += [122, 130, 131]  # val: starts at 122
    minutes += [134, 140, 150]  # test: starts at 134
    frame = frame_at(minutes, interval=5)
    split = split_samples(frame)
    # By hand: row 12 ends at 122 = the val start (touching, kept); row 13 ends at 124 > 122.
    # Val row 14 ends at 127 <= 134 (kept); rows 15 and 16 end at 135 and 136 > 134.
    assert split.purged == 3
    np.testing.assert_array_equal(split.train, np.arange(13))
    np.testing.assert_array_equal(split.val, [14])
    np.testing.assert_array_equal(split.test, [17, 18, 19])


def test_purging_uses_each_samples_own_interval():
    minutes = [0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 117, 119, 122, 130, 131, 134, 140]
    frame = frame_at(minutes + [150], interval=5)
    frame.loc[13, "interval"] = 3  # row 13 now ends at 122, on the boundary: kept
    frame.loc[15, "interval"] = 1  # row 15 ends at 131 < 134: kept
    split = split_samples(frame)
    assert split.purged == 1  # only row 16
    np.testing.assert_array_equal(split.train, np.arange(14))
    np.testing.assert_array_equal(split.val, [14, 15])


def test_a_tweet_at_the_same_second_as_the_next_part_is_purged():
    minutes = np.arange(20) * 30
    minutes[14] = minutes[13]  # the first val tweet shares the last train tweet's timestamp
    frame = frame_at(minutes)
    split = split_samples(frame)
    assert 13 not in split.train and split.purged == 1
    assert_time_ordered_and_purged(frame, split)


# ---- random ----------------------------------------------------------------------------------
def test_random_split_warns_and_is_a_permutation(caplog):
    frame = busy_frame(n=300)
    with caplog.at_level(logging.WARNING, logger="lstm_tweets.data.split"):
        split = split_samples(frame, "random", seed=3)
    assert any(
        r.levelno == logging.WARNING and "data.split=random" in r.getMessage()
        for r in caplog.records
    )
    everything = np.concatenate([split.train, split.val, split.test])
    np.testing.assert_array_equal(np.sort(everything), np.arange(300))
    assert (len(split.train), len(split.val), len(split.test)) == (210, 45, 45)
    assert split.purged == 0
    # Shuffled across time (not a chronological cut), reproducible per seed, different per seed.
    assert split.train.max() > int(300 * 0.85)
    again = split_samples(frame, "random", seed=3)
    np.testing.assert_array_equal(again.test, split.test)
    other = split_samples(frame, "random", seed=4)
    assert not np.array_equal(other.test, split.test)


def test_chronological_split_does_not_warn(caplog):
    with caplog.at_level(logging.WARNING, logger="lstm_tweets.data.split"):
        split_samples(busy_frame(n=100))
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


# ---- walk-forward ----------------------------------------------------------------------------
@pytest.mark.parametrize("fold", [0, 1, 2, 3])
def test_walk_forward_equal_count_folds(fold):
    frame = busy_frame(n=500, seed=1)
    split = split_samples(frame, "walk_forward", folds=4, fold=fold)
    # 5 blocks of 100 rows: fold k tests on block k+1 and learns on blocks 0..k.
    np.testing.assert_array_equal(split.test, np.arange(100 * (fold + 1), 100 * (fold + 2)))
    history = 100 * (fold + 1)
    assert set(split.train) | set(split.val) <= set(range(history))
    assert len(split.train) + len(split.val) + split.purged == history
    cut = int(history * (1 - 0.15 / 0.85))
    assert set(split.train) <= set(range(cut)) and set(split.val) <= set(range(cut, history))
    assert_time_ordered_and_purged(frame, split)


def test_walk_forward_folds_grow_an_expanding_window():
    frame = busy_frame(n=500, seed=1)
    splits = [split_samples(frame, "walk_forward", folds=4, fold=k) for k in range(4)]
    train_sizes = [len(s.train) for s in splits]
    assert train_sizes == sorted(train_sizes) and train_sizes[0] < train_sizes[-1]
    for earlier, later in zip(splits, splits[1:], strict=False):
        assert earlier.test.max() < later.test.min()


def quarterly_frame() -> pd.DataFrame:
    # Every 7 hours through 2019 (UTC): four quarters of data.
    stamps = pd.date_range("2019-01-01 03:00", "2019-12-31 20:00", freq="7h", tz="UTC")
    return pd.DataFrame({"created_at": stamps, "interval": 5, "label": np.arange(len(stamps)) % 2})


@pytest.mark.parametrize("fold", [0, 1, 2])
def test_walk_forward_quarterly_folds(fold):
    frame = quarterly_frame()
    assert count_walk_forward_folds(frame, 4, "Q") == 3
    split = split_samples(frame, "walk_forward", fold=fold, fold_period="Q")
    quarter = frame["created_at"].dt.quarter.to_numpy()
    # The test block is exactly the calendar quarter after the history...
    np.testing.assert_array_equal(split.test, np.flatnonzero(quarter == fold + 2))
    # ...and train/val come from the quarters before it only, and lie strictly before it.
    assert set(quarter[split.train]) | set(quarter[split.val]) <= set(range(1, fold + 2))
    assert 1 in set(quarter[split.train])
    assert_time_ordered_and_purged(frame, split)
    history = int((quarter <= fold + 1).sum())
    assert len(split.train) + len(split.val) + split.purged == history


@pytest.mark.parametrize(
    ("fold", "period", "folds"),
    [(4, None, 4), (-1, None, 4), (3, "Q", 4), (0, None, 0)],
)
def test_walk_forward_fold_out_of_range(fold, period, folds):
    with pytest.raises(DataError, match="data.fold"):
        split_samples(quarterly_frame(), "walk_forward", folds=folds, fold=fold, fold_period=period)


# ---- bad input -------------------------------------------------------------------------------
def test_an_empty_part_is_an_error():
    with pytest.raises(DataError, match="val split is empty"):
        split_samples(frame_at([0, 60, 120]))  # int(3*0.7)=2 = int(3*0.85): no val rows
    # Purging can empty a part too: one-minute spacing, one-hour windows.
    with pytest.raises(DataError, match="train split is empty"):
        split_samples(frame_at(np.arange(10), interval=60))
    with pytest.raises(DataError, match="split is empty"):
        split_samples(frame_at([0, 60, 120]), "random")


@pytest.mark.parametrize(
    "fractions",
    [(0.7, 0.3, 0.0), (0.5, 0.3, 0.3), (0.8, 0.2), (-0.1, 0.6, 0.5), (0.6, 0.2, 0.1, 0.1)],
)
def test_bad_fractions_are_an_error(fractions):
    for method in ("chronological", "random", "walk_forward"):
        with pytest.raises(DataError, match="split_fractions"):
            split_samples(busy_frame(n=100), method, fractions=fractions)


def test_unknown_method_is_an_error():
    with pytest.raises(DataError, match="data.split='shuffled'"):
        split_samples(busy_frame(n=100), "shuffled")


@pytest.mark.parametrize("method", ["chronological", "walk_forward"])
def test_unsorted_input_is_an_error(method):
    frame = frame_at(np.arange(100) * 60)
    shuffled = frame.iloc[np.random.default_rng(0).permutation(100)].reset_index(drop=True)
    with pytest.raises(DataError, match="sorted by created_at"):
        split_samples(shuffled, method)
    swapped = frame.copy()
    swapped.loc[[40, 41], "created_at"] = swapped.loc[[41, 40], "created_at"].to_numpy()
    with pytest.raises(DataError, match="sorted by created_at"):
        split_samples(swapped, method)


def test_summary_reports_the_parts():
    frame = frame_at(np.arange(100) * 60)
    split = split_samples(frame)
    summary = split.summary(frame)
    assert [summary[p]["n"] for p in ("train", "val", "test")] == [70, 15, 15]
    assert summary["train"]["last"] < summary["val"]["first"] < summary["test"]["first"]
    assert sum(summary["test"]["class_counts"].values()) == 15

"""TweetDataModule: vocabulary and count statistics from train only, padding, state round trip,
caches, the batch sampler (also under a real Lightning fit), the shuffled-label control, bad
input, and the real files."""

import json

import numpy as np
import pandas as pd
import pytest
import pytorch_lightning as pl
import torch

from lstm_tweets.data import embeddings as embeddings_module
from lstm_tweets.data import labels as labels_module
from lstm_tweets.data.batching import BatchIndexSampler
from lstm_tweets.data.datamodule import TweetDataModule
from lstm_tweets.data.errors import DataError
from lstm_tweets.data.text import Vocab
from lstm_tweets.model import TweetLSTMModule

START = pd.Timestamp("2019-03-04 15:00", tz="UTC")
WORDS = "market jobs deal great tariffs china border trade news vote wall economy".split()
TINY_EMBEDDING = {"kind": "random", "dim": 8}


def random_texts(n: int, seed: int = 0, words: int = 5) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, words)) for _ in range(n)]


def write_prelabeled(path, texts, labels=None, retweets=None, favorites=None, gap_minutes=60):
    """A data=prelabeled CSV, one tweet every `gap_minutes` (windows of 5 minutes never cross a
    split boundary, so nothing is purged and the split is a plain cut at 70 % and 85 %)."""
    n = len(texts)
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(
        {
            "created_at": (
                START + pd.to_timedelta(np.arange(n) * gap_minutes, unit="min")
            ).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "text": texts,
            "label": rng.integers(0, 2, n) if labels is None else labels,
            "retweet_count": rng.integers(0, 1000, n) if retweets is None else retweets,
            "favorite_count": rng.integers(0, 5000, n) if favorites is None else favorites,
        }
    )
    frame.to_csv(path, index=False)
    return path


def prelabeled_module(csv, cache_dir, **options) -> TweetDataModule:
    options.setdefault("embedding", TINY_EMBEDDING)
    dm = TweetDataModule(source="prelabeled", path=str(csv), cache_dir=str(cache_dir), **options)
    dm.prepare_data()
    dm.setup("fit")
    return dm


# ---- vocabulary and padding --------------------------------------------------------------------
def test_a_word_seen_only_in_the_test_period_is_unknown(tmp_path):
    n = 200
    first_test = int(n * 0.85)
    texts = random_texts(n)
    texts[first_test:] = [" ".join([*t.split()[:2], "zyzzyva"]) for t in texts[first_test:]]
    dm = prelabeled_module(write_prelabeled(tmp_path / "t.csv", texts), tmp_path / "cache")

    assert dm.split.purged == 0
    np.testing.assert_array_equal(dm.split.test, np.arange(first_test, n))
    assert "zyzzyva" not in dm.vocab
    test = dm.datasets["test"]
    assert len(test) == n - first_test
    # "zyzzyva" is the third token of every test tweet: <unk> there, known words elsewhere.
    assert (test.lengths == 3).all()
    assert (test.ids[:, 2] == Vocab.UNK_ID).all()
    assert (test.ids[:, :2] > Vocab.UNK_ID).all()
    assert not (dm.datasets["train"].ids == Vocab.UNK_ID).any()
    ids, lengths, _ = dm.features.encode_texts(["market zyzzyva"])
    assert ids[0, :2].tolist() == [dm.vocab.stoi["market"], Vocab.UNK_ID]


def test_padding_and_lengths_at_the_max_length_boundary(tmp_path):
    max_length = 6
    tokens = [f"tok{j}" for j in range(max_length + 1)]
    sizes = [max_length - 1, max_length, max_length + 1] * 70
    texts = [" ".join(tokens[:k]) for k in sizes]
    dm = prelabeled_module(
        write_prelabeled(tmp_path / "t.csv", texts),
        tmp_path / "cache",
        max_length=max_length,
        batch_size=8,
    )
    stoi = dm.vocab.stoi
    # The 7th token is in the (untruncated) train vocabulary but never survives truncation.
    assert "tok6" in dm.vocab
    for name in ("train", "val", "test"):
        data = dm.datasets[name]
        assert data.ids.shape == (len(data), max_length)
        expected_sizes = np.asarray(sizes)[data.index.numpy()]
        np.testing.assert_array_equal(data.lengths.numpy(), np.minimum(expected_sizes, max_length))
        for row, length in zip(data.ids.tolist(), data.lengths.tolist(), strict=True):
            assert row[:length] == [stoi[t] for t in tokens[:length]]
            assert row[length:] == [0] * (max_length - length)
        assert stoi["tok6"] not in data.ids

    # Batches are trimmed to their longest sequence...
    widths = []
    for batch in dm.val_dataloader():
        widths.append(batch["ids"].shape[1])
        assert batch["ids"].shape[1] == int(batch["lengths"].max())
        for row, length in zip(batch["ids"], batch["lengths"], strict=True):
            assert (row[length:] == 0).all() and (row[:length] > 0).all()
    assert min(widths) == max_length - 1 and max(widths) == max_length
    # ...unless pad_to_max_length asks for the reference recipe's fixed width.
    fixed = prelabeled_module(
        tmp_path / "t.csv",
        tmp_path / "cache",
        max_length=max_length,
        batch_size=8,
        pad_to_max_length=True,
    )
    assert {b["ids"].shape[1] for b in fixed.val_dataloader()} == {max_length}


# ---- counts --------------------------------------------------------------------------------------
def test_count_statistics_come_from_train_only(tmp_path):
    n = 200
    rng = np.random.default_rng(5)
    retweets = rng.integers(0, 1000, n)
    favorites = rng.integers(0, 5000, n)
    first_test = int(n * 0.85)
    retweets[first_test:] = 10**9  # huge counts in the test period only
    favorites[first_test:] = 3 * 10**9
    csv = write_prelabeled(
        tmp_path / "t.csv", random_texts(n), retweets=retweets, favorites=favorites
    )
    dm = prelabeled_module(csv, tmp_path / "cache")

    raw = np.log1p(np.column_stack([retweets, favorites]).astype(float))
    train_rows = np.arange(int(n * 0.7))
    np.testing.assert_array_equal(dm.split.train, train_rows)
    np.testing.assert_allclose(dm.features.counts.mean, raw[train_rows].mean(axis=0))
    np.testing.assert_allclose(dm.features.counts.std, raw[train_rows].std(axis=0))
    assert (np.abs(dm.features.counts.mean - raw.mean(axis=0)) > 1).all()
    assert (np.abs(dm.features.counts.std - raw.std(axis=0)) > 1).all()

    train_counts = dm.datasets["train"].counts.double()
    np.testing.assert_allclose(train_counts.mean(0), [0, 0], atol=1e-5)
    np.testing.assert_allclose(train_counts.std(0, unbiased=False), [1, 1], atol=1e-5)
    assert (dm.datasets["test"].counts > 3).all()  # far out of the train distribution
    _, _, counts = dm.features.encode_texts(["deal"], retweet_counts=[99], favorite_counts=[0])
    expected = (np.log1p([99.0, 0.0]) - raw[train_rows].mean(0)) / raw[train_rows].std(0)
    np.testing.assert_allclose(counts[0].numpy(), expected, rtol=1e-5)


# ---- state round trip --------------------------------------------------------------------------
def test_state_dict_round_trips_into_a_fresh_datamodule(tmp_path):
    texts = [t.title() if i % 3 == 0 else t for i, t in enumerate(random_texts(150, seed=2))]
    texts[::7] = [t + " http://t.co/abc" for t in texts[::7]]
    dm = prelabeled_module(
        write_prelabeled(tmp_path / "t.csv", texts),
        tmp_path / "cache",
        max_length=7,
        lowercase=False,
        replace_urls=False,
        vocab_size=40,
    )
    state = json.loads(json.dumps(dm.state_dict()))  # plain types only: a checkpoint can hold it
    fresh = TweetDataModule()
    assert fresh.features.max_length != 7 and fresh.features.tokenizer != dm.features.tokenizer
    fresh.load_state_dict(state)
    assert fresh.vocab == dm.vocab and fresh.features.tokenizer == dm.features.tokenizer
    assert fresh.num_classes == dm.num_classes and fresh.interval == dm.interval

    new = ["Market jobs market http://t.co/abc", "zyzzyva", "deal " * 20, "", "Deal deal DEAL"]
    retweets, favorites = [0, 10, 10**6, 5, 3], [1, 0, 10**7, 5, 2]
    before = dm.features.encode_texts(new, retweets, favorites)
    after = fresh.features.encode_texts(new, retweets, favorites)
    for a, b in zip(before, after, strict=True):
        assert a.dtype == b.dtype and torch.equal(a, b)
    ids, lengths, _ = after
    assert ids.shape == (len(new), 7) and lengths[2] == 7
    # The restored tokenizer keeps case: "Deal" and "deal" are different tokens.
    assert Vocab.UNK_ID < ids[4, 0] != ids[4, 1] > Vocab.UNK_ID


# ---- caches ------------------------------------------------------------------------------------
def test_pretrained_embedding_cache_hit_does_not_open_the_vectors_file(tmp_path, monkeypatch):
    csv = write_prelabeled(tmp_path / "t.csv", random_texts(120, seed=3))
    vectors = tmp_path / "vectors.txt"
    known = {
        "market": [0.5, -0.25, 1.0, 0.0],
        "jobs": [1.5, 0.25, -1.0, 2.0],
        "zebra": [1, 1, 1, 1],
    }
    vectors.write_text(
        f"{len(known)} 4\n" + "".join(f"{w} {' '.join(map(str, v))}\n" for w, v in known.items())
    )
    embedding = {"kind": "pretrained", "path": str(vectors), "dim": 4}

    loads = []
    real_load = embeddings_module.load_word_vectors
    monkeypatch.setattr(
        embeddings_module,
        "load_word_vectors",
        lambda *a, **k: loads.append(a) or real_load(*a, **k),
    )
    first = prelabeled_module(csv, tmp_path / "cache", embedding=embedding)
    assert len(loads) == 1  # the first setup really read the file
    assert first.coverage["found"] == 2
    np.testing.assert_array_equal(first.embedding_matrix[first.vocab.stoi["jobs"]], known["jobs"])

    def refuse(*args, **kwargs):
        raise AssertionError("the vectors file was opened on a cache hit")

    monkeypatch.setattr(embeddings_module, "load_word_vectors", refuse)
    monkeypatch.setattr(embeddings_module, "_sniff", refuse)
    second = prelabeled_module(csv, tmp_path / "cache", embedding=embedding)
    np.testing.assert_array_equal(second.embedding_matrix, first.embedding_matrix)
    assert second.coverage == first.coverage

    # A changed file is a different cache key: then it must be read (and the patch is live).
    vectors.write_text(vectors.read_text() + "deal 0 0 0 1\n")
    with pytest.raises(AssertionError, match="cache hit"):
        prelabeled_module(csv, tmp_path / "cache", embedding=embedding)


def write_archive(folder, n_tweets=150, seed=0):
    """A tweets file and 5-minute SPY-like bars for one NYSE week (4-8 March 2019, EST)."""
    rng = np.random.default_rng(seed)
    days = pd.date_range("2019-03-04", "2019-03-08", freq="D")
    stamps = [
        d + pd.Timedelta(hours=14, minutes=30) + pd.Timedelta(minutes=5 * k)
        for d in days
        for k in range(78)
    ]
    stamps = pd.DatetimeIndex(stamps).tz_localize("UTC")
    close = 280 + np.cumsum(rng.normal(0, 0.2, len(stamps)))
    prices = pd.DataFrame(
        {
            "timestamp": stamps.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "open": close,
            "high": close + 0.1,
            "low": close - 0.1,
            "close": close,
            "volume": 1000,
        }
    )
    prices.to_csv(folder / "prices.csv", index=False)
    offsets = np.sort(rng.integers(0, len(days) * 370, n_tweets))  # minutes 14:35..20:45 UTC
    created = [days[o // 370] + pd.Timedelta(hours=14, minutes=35 + o % 370) for o in offsets]
    tweets = pd.DataFrame(
        {
            "id": np.arange(n_tweets) + 10**17,
            "created_at": pd.DatetimeIndex(created)
            .tz_localize("UTC")
            .strftime("%Y-%m-%dT%H:%M:%SZ"),
            "text": random_texts(n_tweets, seed=seed),
            "retweet_count": 5,
            "favorite_count": 7,
            "is_retweet": False,
        }
    )
    tweets.to_csv(folder / "tweets.csv", index=False)
    return folder / "tweets.csv", folder / "prices.csv"


def test_the_labeled_frame_is_cached(tmp_path, monkeypatch):
    tweets, prices = write_archive(tmp_path)
    options = dict(
        source="archive",
        tweets_path=str(tweets),
        prices_path=str(prices),
        cache_dir=str(tmp_path / "cache"),
        embedding=TINY_EMBEDDING,
    )
    first = TweetDataModule(**options)
    first.prepare_data()
    first.setup("fit")
    assert first.report["labeled"] > 100 and first.report["rows_read"] == 150

    def refuse(*args, **kwargs):
        raise AssertionError("the tweets file was read again")

    monkeypatch.setattr(labels_module, "load_tweets", refuse)
    monkeypatch.setattr(labels_module, "load_prices", refuse)
    first.prepare_data()
    second = TweetDataModule(**options)
    second.prepare_data()
    second.setup("fit")
    pd.testing.assert_frame_equal(second.frame, first.frame)
    assert second.report.to_dict() == first.report.to_dict()

    # Another interval is another labeling; so is an edited tweets file.
    with pytest.raises(AssertionError, match="read again"):
        TweetDataModule(**{**options, "interval": 10}).prepare_data()
    tweets.write_text(tweets.read_text() + f"{10**18},2019-03-05T16:00:00Z,new tweet,1,1,False\n")
    with pytest.raises(AssertionError, match="read again"):
        TweetDataModule(**options).prepare_data()


def test_setup_relabels_when_the_cache_lost_its_report(tmp_path):
    csv = write_prelabeled(tmp_path / "t.csv", random_texts(100))
    first = prelabeled_module(csv, tmp_path / "cache")
    # A crash between writing the frame and its report leaves a frame without a report.
    first.labeled_cache_path().with_suffix(".report.json").unlink()
    again = TweetDataModule(
        source="prelabeled",
        path=str(csv),
        cache_dir=str(tmp_path / "cache"),
        embedding=TINY_EMBEDDING,
    )
    again.setup("fit")  # without prepare_data, as a direct caller might
    assert again.report["labeled"] == 100 and len(again.split.train) == 70


# ---- the batch sampler ---------------------------------------------------------------------------
LENGTHS = np.random.default_rng(0).integers(1, 51, 1037)


def padded_cells(sampler: BatchIndexSampler, lengths: np.ndarray) -> int:
    return sum(len(b) * int(lengths[b].max()) for b in sampler)


@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("bucket", [True, False])
def test_sampler_yields_every_index_once_per_epoch(shuffle, bucket):
    sampler = BatchIndexSampler(LENGTHS, 32, shuffle, bucket, seed=7)
    for epoch in (0, 1, 5):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert len(batches) == len(sampler) == 33
        assert sorted(len(b) for b in batches)[1:] == [32] * 32  # one short batch at most
        np.testing.assert_array_equal(np.sort(np.concatenate(batches)), np.arange(len(LENGTHS)))


@pytest.mark.parametrize("bucket", [True, False])
def test_sampler_order_changes_with_the_epoch_and_only_with_the_epoch(bucket):
    sampler = BatchIndexSampler(LENGTHS, 32, True, bucket, seed=7)
    sampler.set_epoch(0)
    epoch0 = list(sampler)
    assert list(sampler) == epoch0  # same epoch, same order
    sampler.set_epoch(1)
    epoch1 = list(sampler)
    assert epoch1 != epoch0
    assert list(sampler) == epoch1
    # A fresh sampler (a resumed run) at epoch 1 replays epoch 1, not epoch 0.
    resumed = BatchIndexSampler(LENGTHS, 32, True, bucket, seed=7)
    resumed.set_epoch(1)
    assert list(resumed) == epoch1
    # Another seed, another order.
    other = BatchIndexSampler(LENGTHS, 32, True, bucket, seed=8)
    other.set_epoch(1)
    assert list(other) != epoch1


def test_sampler_without_shuffle_ignores_the_epoch():
    sampler = BatchIndexSampler(LENGTHS, 32, False, False)
    first = list(sampler)
    sampler.set_epoch(3)
    assert list(sampler) == first
    assert np.concatenate(first).tolist() == list(range(len(LENGTHS)))


def test_bucketing_saves_padding():
    bucketed = BatchIndexSampler(LENGTHS, 32, True, True, seed=1)
    plain = BatchIndexSampler(LENGTHS, 32, True, False, seed=1)
    assert padded_cells(bucketed, LENGTHS) < 0.7 * padded_cells(plain, LENGTHS)
    # Lower bound: the tokens themselves.
    assert padded_cells(bucketed, LENGTHS) >= LENGTHS.sum()


@pytest.mark.parametrize("n", [1037, 1024, 40])
@pytest.mark.parametrize("shuffle", [True, False])
def test_sampler_under_two_ranks(n, shuffle):
    lengths = LENGTHS[:n]
    ranks = [BatchIndexSampler(lengths, 32, shuffle, True, seed=3, rank=r, world=2) for r in (0, 1)]
    for sampler in ranks:
        sampler.set_epoch(2)
    batches = [list(s) for s in ranks]
    assert (
        len(batches[0]) == len(batches[1]) == len(ranks[0]) == len(ranks[1]) == (-(-n // 32)) // 2
    )
    seen = [set(np.concatenate(b).tolist()) for b in batches]
    assert not seen[0] & seen[1]
    # Every batch but the dropped odd one is used.
    assert len(seen[0] | seen[1]) >= n - 32


def test_lightning_calls_set_epoch_on_the_train_sampler(tmp_path):
    csv = write_prelabeled(tmp_path / "t.csv", random_texts(300, seed=4))
    dm = TweetDataModule(
        source="prelabeled",
        path=str(csv),
        cache_dir=str(tmp_path / "cache"),
        embedding=TINY_EMBEDDING,
        batch_size=16,
        seed=11,
    )
    dm.prepare_data()
    dm.setup("fit")
    matrix = dm.embedding_matrix
    model = TweetLSTMModule(
        vocab_size=matrix.shape[0],
        embedding_dim=matrix.shape[1],
        hidden_dim=8,
        embedding_matrix=matrix,
    )

    class RecordBatches(pl.Callback):
        def __init__(self):
            self.seen: dict[int, list[list[int]]] = {}

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            self.seen.setdefault(trainer.current_epoch, []).append(batch["index"].tolist())

    recorder = RecordBatches()
    trainer = pl.Trainer(
        max_epochs=2,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        callbacks=[recorder],
    )
    trainer.fit(model, datamodule=dm)

    assert sorted(recorder.seen) == [0, 1]
    train_rows = dm.datasets["train"].index.numpy()
    for epoch, batches in recorder.seen.items():
        flat = np.concatenate(batches)
        np.testing.assert_array_equal(np.sort(flat), np.sort(train_rows))
        # Exactly the order the sampler gives for that epoch (mapped to frame rows).
        expected = BatchIndexSampler(dm.datasets["train"].lengths.numpy(), 16, True, True, seed=11)
        expected.set_epoch(epoch)
        assert batches == [train_rows[b].tolist() for b in expected]
    assert recorder.seen[0] != recorder.seen[1]


# ---- the shuffled-label control ----------------------------------------------------------------
def test_shuffle_train_labels_permutes_train_labels_only(tmp_path):
    csv = write_prelabeled(tmp_path / "t.csv", random_texts(200, seed=6))
    truth = prelabeled_module(csv, tmp_path / "cache")
    control = prelabeled_module(csv, tmp_path / "cache", shuffle_train_labels=True)

    for name in ("val", "test"):
        assert torch.equal(control.datasets[name].labels, truth.datasets[name].labels)
        assert torch.equal(
            control.datasets[name].labels,
            torch.as_tensor(
                truth.frame["label"].to_numpy()[
                    truth.split.test if name == "test" else truth.split.val
                ]
            ),
        )
    shuffled, original = control.datasets["train"].labels, truth.datasets["train"].labels
    assert torch.equal(shuffled.sort().values, original.sort().values)
    assert (shuffled != original).sum() > 20
    assert control.class_counts == truth.class_counts
    # The labeled frame itself is untouched.
    pd.testing.assert_frame_equal(control.frame, truth.frame)


# ---- bad input -----------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", ["up", "1.5", "", "-1", "3"])
def test_a_bad_label_names_the_row(tmp_path, bad):
    labels = ["1", "0", bad, "1", "0"] * 20
    csv = write_prelabeled(tmp_path / "t.csv", random_texts(100), labels=labels)
    with pytest.raises(DataError, match=r"t\.csv: row 3: label=") as error:
        prelabeled_module(csv, tmp_path / "cache")
    assert f"label={bad!r}" in str(error.value)  # as the file writes it, not np.int64(3)


def test_flat_labels_need_ties_class(tmp_path):
    csv = write_prelabeled(tmp_path / "t.csv", random_texts(100), labels=[0, 1, 2, 1] * 25)
    with pytest.raises(DataError, match="class 2"):
        prelabeled_module(csv, tmp_path / "cache")
    dm = prelabeled_module(csv, tmp_path / "cache", ties="class")
    assert dm.num_classes == 3 and sum(dm.class_counts) == 70


def test_an_empty_train_split_is_an_error(tmp_path):
    # One minute apart with hour-long label windows: every train window crosses into val.
    csv = write_prelabeled(tmp_path / "t.csv", random_texts(12), gap_minutes=1)
    with pytest.raises(DataError, match="train split is empty"):
        prelabeled_module(csv, tmp_path / "cache", interval=60)


def test_a_train_split_without_tokens_is_an_error(tmp_path):
    texts = ["... --"] * 70 + random_texts(30)  # punctuation other than ! and ? is dropped
    csv = write_prelabeled(tmp_path / "t.csv", texts)
    with pytest.raises(DataError, match="no tokens"):
        prelabeled_module(csv, tmp_path / "cache")


# ---- the real files ------------------------------------------------------------------------------
def test_real_tweets_with_spy_5min(shared_data, cache_dir):
    dm = TweetDataModule(
        source="archive",
        tweets_path=str(shared_data / "tweets" / "trump_tweets.csv.gz"),
        prices_path=str(shared_data / "prices" / "spy_5min.csv.gz"),
        interval=5,
        cache_dir=str(cache_dir),
        embedding=TINY_EMBEDDING,
    )
    dm.prepare_data()
    dm.setup("fit")
    # About 2,700 labeled tweets (2018-2020): ~1,900 train, ~400 val and test, ~5,900 tokens.
    assert len(dm.split.train) > 1500 and len(dm.vocab) > 3000
    assert min(len(dm.split.val), len(dm.split.test)) > 300
    assert (
        dm.report["labeled"]
        == len(dm.frame)
        == (len(dm.split.train) + len(dm.split.val) + len(dm.split.test) + dm.split.purged)
    )
    times = dm.frame["created_at"]
    assert times.iloc[dm.split.train].max() < times.iloc[dm.split.val].min()
    assert times.iloc[dm.split.val].max() < times.iloc[dm.split.test].min()
    assert times.iloc[dm.split.train].min() >= pd.Timestamp("2018-01-01", tz="UTC")
    assert 0.4 < dm.datasets["train"].labels.float().mean() < 0.6
    batch = next(iter(dm.train_dataloader()))
    assert batch["ids"].shape[0] <= 64 and batch["ids"].shape[1] <= 50

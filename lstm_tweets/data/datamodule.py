"""The LightningDataModule: labeled samples -> split -> vocab (train only) -> padded tensors.

`prepare_data` labels the tweets once per data config and caches the frame (training never re-parses
CSVs). `setup` splits by time, applies the target (`data.target`: direction, or an activity target
whose per-slot thresholds are fitted on the train split: `targets.py`), fits the vocabulary and the
count statistics on train only, and builds the embedding matrix (cached per vocabulary). The
vocabulary, tokenizer options, count statistics, target and its thresholds travel in the
checkpoint through `state_dict`, so a checkpoint alone can score new text and say what it scores.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from lstm_tweets.data.embeddings import embedding_matrix
from lstm_tweets.data.errors import DataError
from lstm_tweets.data.io import atomic_path, read_table, require_columns
from lstm_tweets.data.labels import label_tweets
from lstm_tweets.data.prices import load_prices
from lstm_tweets.data.report import DataReport, write_json_atomic
from lstm_tweets.data.split import Split, split_samples
from lstm_tweets.data.synthetic import VERSION as SYNTHETIC_VERSION
from lstm_tweets.data.synthetic import ensure_synthetic_sample
from lstm_tweets.data.targets import (
    CLASS_NAMES,
    TARGET_COLUMNS,
    activity_labels,
    check_target,
    fit_activity_thresholds,
)
from lstm_tweets.data.text import TokenizerOptions, Vocab, build_vocab, encode, tokenize
from lstm_tweets.data.tweets import load_tweets, parse_timestamps

logger = logging.getLogger(__name__)

SOURCES = ("synthetic", "archive", "prelabeled")
COUNT_COLUMNS = ("retweet_count", "favorite_count")
# 2: window_start rules, end_time purging; 3: log returns, abs_return_bps, volume_ratio
LABELED_CACHE_VERSION = 3


class TweetDataModule(pl.LightningDataModule):
    def __init__(
        self,
        source: str = "synthetic",
        tweets_path: str | None = None,
        prices_path: str | None = None,
        path: str | None = None,
        prices_timezone: str = "America/New_York",
        timestamp_column: str | None = None,
        bar_minutes: float | None = None,
        interval: int = 5,
        window_start: str = "after_tweet",
        target: str = "direction",
        ties: str = "drop",
        dead_band_bps: float = 0.0,
        include_retweets: bool = False,
        split: str = "chronological",
        split_fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
        folds: int = 4,
        fold: int = 0,
        fold_period: str | None = None,
        max_length: int = 50,
        vocab_size: int = 10_000,
        min_freq: int = 1,
        lowercase: bool = True,
        replace_urls: bool = True,
        replace_mentions: bool = True,
        batch_size: int = 64,
        bucket_by_length: bool = True,
        pad_to_max_length: bool = False,
        num_workers: int = 0,
        shuffle_train_labels: bool = False,
        synthetic_seed: int = 0,
        seed: int = 0,
        cache_dir: str = "outputs/cache",
        embedding: dict | None = None,
    ):
        super().__init__()
        if source not in SOURCES:
            raise DataError(f"data.source={source!r}; expected one of {SOURCES}")
        self.source = source
        self.tweets_path, self.prices_path, self.path = tweets_path, prices_path, path
        self.prices_timezone, self.timestamp_column, self.bar_minutes = (
            prices_timezone,
            timestamp_column,
            bar_minutes,
        )
        self.interval, self.ties, self.dead_band_bps = int(interval), ties, float(dead_band_bps)
        self.window_start = window_start
        self.target = check_target(target)
        self.thresholds: dict | None = None  # an activity target's train-fitted thresholds
        self.include_retweets = include_retweets
        self.split_method, self.split_fractions = split, tuple(split_fractions)
        self.folds, self.fold, self.fold_period = folds, fold, fold_period
        self.max_length, self.vocab_size, self.min_freq = (
            int(max_length),
            int(vocab_size),
            int(min_freq),
        )
        self.tokenizer = TokenizerOptions(
            lowercase=lowercase, replace_urls=replace_urls, replace_mentions=replace_mentions
        )
        self.batch_size, self.bucket_by_length, self.pad_to_max_length = (
            int(batch_size),
            bucket_by_length,
            pad_to_max_length,
        )
        self.num_workers = num_workers
        self.shuffle_train_labels = shuffle_train_labels
        self.synthetic_seed, self.seed = synthetic_seed, seed
        self.cache_dir = Path(cache_dir)
        self.embedding = dict(embedding or {"kind": "random", "dim": 50})

        self.report = DataReport()
        self.frame: pd.DataFrame | None = None
        self.split: Split | None = None
        self.vocab: Vocab | None = None
        self.count_mean = np.zeros(len(COUNT_COLUMNS))
        self.count_std = np.ones(len(COUNT_COLUMNS))
        self.embedding_matrix: np.ndarray | None = None
        self.coverage: dict = {}
        # Ties (and the dead band) concern the direction only: for an activity target a tweet
        # without a price change is a small move, kept (ties="down" keeps every tweet).
        self.num_classes = 3 if ties == "class" and self.target == "direction" else 2
        self.datasets: dict[str, EncodedTweets] = {}

    # ---- files -> labeled frame (cached) ---------------------------------------------------
    def labeled_cache_path(self) -> Path:
        key = {
            "version": LABELED_CACHE_VERSION,
            "source": self.source,
            "interval": self.interval,
            "window_start": self.window_start,
            "ties": self.label_ties[0],
            "dead_band_bps": self.label_ties[1],
            "include_retweets": self.include_retweets,
            "timezone": self.prices_timezone,
            "timestamp_column": self.timestamp_column,
            "bar_minutes": self.bar_minutes,
            "synthetic": [SYNTHETIC_VERSION, self.synthetic_seed],
        }
        for name in ("tweets_path", "prices_path", "path"):
            value = getattr(self, name)
            if value is not None:
                file = Path(value).expanduser().resolve()
                stat = file.stat() if file.exists() else None
                key[name] = [
                    str(file),
                    stat.st_size if stat else None,
                    stat.st_mtime_ns if stat else None,
                ]
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
        return self.cache_dir / "labeled" / f"{self.source}-{digest}.parquet"

    @property
    def label_ties(self) -> tuple[str, float]:
        """(ties, dead_band_bps) for the labeler: the config's for the direction target; for an
        activity target every tweet is kept, a zero return included."""
        return (self.ties, self.dead_band_bps) if self.target == "direction" else ("down", 0.0)

    def prepare_data(self) -> None:
        cache = self.labeled_cache_path()
        if cache.exists() and cache.with_suffix(".report.json").exists():
            return
        report = DataReport()
        frame = self.label_from_files(report)
        with atomic_path(cache) as tmp:  # several workers may build it at once
            frame.to_parquet(tmp, index=False)
        # The report is written last: its presence marks a complete cache entry.
        report.save(cache.with_suffix(".report.json"))

    def label_from_files(self, report: DataReport) -> pd.DataFrame:
        if self.source == "prelabeled":
            return load_prelabeled(self.path, self.interval, report)
        if self.source == "synthetic":
            tweets_path, prices_path = ensure_synthetic_sample(
                self.cache_dir, seed=self.synthetic_seed
            )
        else:
            if not self.tweets_path or not self.prices_path:
                raise DataError("data=archive needs data.tweets_path and data.prices_path")
            tweets_path, prices_path = self.tweets_path, self.prices_path
            for key, value in (
                ("data.tweets_path", tweets_path),
                ("data.prices_path", prices_path),
            ):
                if not Path(value).expanduser().exists():
                    raise DataError(
                        f"{key}={value}: file not found (relative paths start at {Path.cwd()}). "
                        f"The real data lives in ../shared/data (see its README); point elsewhere "
                        f"with {key}=/path/to/file"
                    )
        tweets = load_tweets(tweets_path, report)
        prices = load_prices(
            prices_path, self.timestamp_column, self.prices_timezone, self.bar_minutes
        )
        return label_tweets(
            tweets,
            prices,
            self.interval,
            *self.label_ties,
            self.include_retweets,
            report,
            window_start=self.window_start,
        )

    # ---- labeled frame -> split, vocab, tensors ----------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        if self.frame is not None:
            return
        cache = self.labeled_cache_path()
        if not (cache.exists() and cache.with_suffix(".report.json").exists()):
            self.prepare_data()
        self.frame = pd.read_parquet(cache)
        self.report = DataReport.from_dict(
            json.loads(cache.with_suffix(".report.json").read_text())
        )
        if len(self.frame) == 0:
            raise DataError(f"no labeled samples (data report: {self.report.to_dict()})")
        if self.num_classes == 2 and (self.frame["label"] > 1).any():
            raise DataError("labels include class 2 (flat) but data.ties is not 'class'")
        self.report.details["target"] = self.target
        if self.target == "volume":
            self.drop_without_volume_ratio()

        self.split = split_samples(
            self.frame,
            self.split_method,
            self.split_fractions,
            self.seed,
            self.folds,
            self.fold,
            self.fold_period,
        )
        self.report.add("purged_at_split_boundaries", self.split.purged)
        for name in ("train", "val", "test"):
            self.report.add(f"n_{name}", len(getattr(self.split, name)))
        if self.target != "direction":
            self.apply_activity_target()

        tokens = [tokenize(text, **self.tokenizer.to_dict()) for text in self.frame["text"]]
        train_tokens = [tokens[i] for i in self.split.train]
        if not any(train_tokens):
            raise DataError("the train split has no tokens: every training tweet is empty")
        self.vocab = build_vocab(train_tokens, self.vocab_size, self.min_freq)
        ids, lengths = encode(tokens, self.vocab, self.max_length)

        counts = np.log1p(self.frame[list(COUNT_COLUMNS)].to_numpy("float64"))
        self.count_mean = counts[self.split.train].mean(axis=0)
        self.count_std = counts[self.split.train].std(axis=0)
        self.count_std[self.count_std == 0] = 1.0  # a constant column (e.g. no counts) stays 0
        counts = (counts - self.count_mean) / self.count_std

        labels = self.frame["label"].to_numpy("int64").copy()
        if self.shuffle_train_labels:
            # The control: labels permuted among train samples only. Val and test keep the truth,
            # so a model that still beats the majority baseline has found a leak, not a signal.
            train = self.split.train
            labels[train] = labels[np.random.default_rng(self.seed).permutation(train)]
        self.labels = labels

        lookup_itos = self.cased_forms(train_tokens)
        self.embedding_matrix, self.coverage = embedding_matrix(
            self.embedding.get("kind", "word2vec"),
            lookup_itos,
            dim=int(self.embedding.get("dim", 100)),
            seed=self.seed,
            cache_dir=self.cache_dir,
            path=self.embedding.get("path"),
            limit=self.embedding.get("limit"),
            train_tokens=train_tokens,
            token_counts=self.vocab.counts,
            window=int(self.embedding.get("window", 5)),
            min_count=int(self.embedding.get("min_count", 1)),
            epochs=int(self.embedding.get("epochs", 10)),
        )
        for name in ("train", "val", "test"):
            index = getattr(self.split, name)
            self.datasets[name] = EncodedTweets(
                ids[index],
                lengths[index],
                counts[index],
                labels[index],
                index,
                self.pad_to_max_length,
            )

    def drop_without_volume_ratio(self) -> None:
        """data.target=volume: tweets without a volume_ratio are dropped, counted by reason."""
        if "volume_ratio" not in self.frame:
            raise DataError(
                "data.target=volume needs volume_ratio (labels from a prices file with a volume "
                "column); data=prelabeled has none"
            )
        missing = self.frame["volume_ratio"].isna().to_numpy()
        reasons = self.frame["volume_reason"].to_numpy()[missing]
        for reason, n in zip(*np.unique(reasons, return_counts=True), strict=True):
            self.report.add(f"dropped_{reason}", int(n))
        self.frame = self.frame.loc[~missing].reset_index(drop=True)
        if len(self.frame) == 0:
            raise DataError(f"no tweet has a volume_ratio (data report: {self.report.to_dict()})")

    def apply_activity_target(self) -> None:
        """The label becomes 1 = above the train median of the tweet's half-hour slot; the
        direction label is kept beside it as `direction_label`."""
        column = TARGET_COLUMNS[self.target]
        self.thresholds = fit_activity_thresholds(self.frame, self.split.train, column)
        labels = activity_labels(self.frame, self.thresholds, column)
        self.frame["direction_label"] = self.frame["label"]
        self.frame["label"] = labels
        self.report.add("target_low", int((labels == 0).sum()))
        self.report.add("target_high", int((labels == 1).sum()))
        self.report.details["target_thresholds"] = self.thresholds

    @property
    def class_names(self) -> list[str]:
        return CLASS_NAMES[self.target][: self.num_classes]

    def cased_forms(self, train_tokens: list[list[str]]) -> list[str]:
        """Each vocab entry as it was most often written in train, so that case-sensitive vectors
        (GoogleNews) are looked up by their original case first."""
        if not self.tokenizer.lowercase or self.embedding.get("kind") != "pretrained":
            return list(self.vocab.itos)
        options = {**self.tokenizer.to_dict(), "lowercase": False}
        seen: dict[str, dict[str, int]] = {}
        for i in self.split.train:
            for token in tokenize(self.frame["text"].iat[i], **options):
                forms = seen.setdefault(token.lower(), {})
                forms[token] = forms.get(token, 0) + 1
        return [
            max(seen[t].items(), key=lambda kv: (kv[1], kv[0]))[0] if t in seen else t
            for t in self.vocab.itos
        ]

    # ---- tensors -> batches -----------------------------------------------------------------
    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def _loader(self, name: str, shuffle: bool) -> DataLoader:
        dataset = self.datasets[name]
        rank, world = 0, 1
        if self.trainer is not None:
            rank, world = self.trainer.global_rank, self.trainer.world_size
        overfit = self.trainer is not None and self.trainer.overfit_batches > 0
        sampler = BatchIndexSampler(
            dataset.lengths.numpy(),
            self.batch_size,
            shuffle and not overfit,
            self.bucket_by_length,
            self.seed,
            rank,
            world,
        )
        if shuffle and self.trainer is not None:
            # A resumed fit draws its first batch before Lightning calls set_epoch, so start at the
            # epoch the fit loop runs next (the value Lightning passes to set_epoch): otherwise the
            # first resumed epoch would replay epoch 0's order.
            sampler.set_epoch(self.trainer.fit_loop.epoch_progress.current.processed)
        # The sampler yields whole batches and the dataset slices each at once (`__getitems__`).
        # As a batch_sampler it is left alone by Lightning (overfit_batches swaps any `sampler`).
        return DataLoader(
            dataset,
            batch_sampler=sampler,
            collate_fn=whole_batch,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    # ---- facts the model and the reports need ---------------------------------------------------
    @property
    def class_counts(self) -> list[int]:
        train_labels = self.labels[self.split.train]
        return [int((train_labels == c).sum()) for c in range(self.num_classes)]

    @property
    def majority_class(self) -> int:
        return int(np.argmax(self.class_counts))

    def split_summary(self) -> dict:
        return self.split.summary(self.frame)

    def encode_texts(self, texts: list[str], retweet_counts=None, favorite_counts=None):
        """Tensors for new tweets, with the vocabulary and statistics fitted at training time."""
        tokens = [tokenize(text, **self.tokenizer.to_dict()) for text in texts]
        ids, lengths = encode(tokens, self.vocab, self.max_length)
        n = len(texts)
        raw = np.column_stack(
            [
                np.zeros(n) if c is None else np.asarray(c, dtype=float)
                for c in (retweet_counts, favorite_counts)
            ]
        )
        counts = (np.log1p(raw) - self.count_mean) / self.count_std
        return (
            torch.from_numpy(ids),
            torch.from_numpy(lengths),
            torch.from_numpy(counts.astype(np.float32)),
        )

    def state_dict(self) -> dict:
        return {
            "vocab": self.vocab.to_dict() if self.vocab else None,
            "tokenizer": self.tokenizer.to_dict(),
            "max_length": self.max_length,
            "count_mean": self.count_mean.tolist(),
            "count_std": self.count_std.tolist(),
            "num_classes": self.num_classes,
            "interval": self.interval,
            "window_start": self.window_start,
            "ties": self.ties,
            "target": self.target,
            "thresholds": self.thresholds,
        }

    def load_state_dict(self, state: dict) -> None:
        self.vocab = Vocab.from_dict(state["vocab"]) if state.get("vocab") else None
        self.tokenizer = TokenizerOptions.from_dict(state["tokenizer"])
        self.max_length = int(state["max_length"])
        self.count_mean = np.asarray(state["count_mean"], dtype=float)
        self.count_std = np.asarray(state["count_std"], dtype=float)
        self.num_classes = int(state["num_classes"])
        self.interval, self.ties = int(state["interval"]), state["ties"]
        self.window_start = state.get("window_start", "after_tweet")
        self.target = state.get("target", "direction")  # checkpoints from before targets
        self.thresholds = state.get("thresholds")

    def save_reports(self, folder: str | Path) -> None:
        folder = Path(folder)
        self.report.save(folder / "data_report.json")
        write_json_atomic(
            folder / "split_summary.json",
            {**self.split_summary(), "embedding_coverage": self.coverage},
        )


class EncodedTweets(Dataset):
    """Encoded samples held as tensors; indexing with a list of positions returns one batch."""

    def __init__(self, ids, lengths, counts, labels, index, pad_to_max_length: bool = False):
        self.ids = torch.from_numpy(np.ascontiguousarray(ids))
        self.lengths = torch.from_numpy(np.ascontiguousarray(lengths))
        self.counts = torch.from_numpy(np.ascontiguousarray(counts, dtype=np.float32))
        self.labels = torch.from_numpy(np.ascontiguousarray(labels))
        self.index = torch.from_numpy(np.ascontiguousarray(index))  # rows of the labeled frame
        self.pad_to_max_length = pad_to_max_length

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, positions) -> dict[str, torch.Tensor]:
        positions = torch.as_tensor(positions)
        lengths = self.lengths[positions]
        # Trimming to the longest sequence in the batch saves the LSTM reading padding.
        width = self.ids.shape[1] if self.pad_to_max_length else int(lengths.max())
        return {
            "ids": self.ids[positions, :width],
            "lengths": lengths,
            "counts": self.counts[positions],
            "label": self.labels[positions],
            "index": self.index[positions],
        }

    __getitems__ = __getitem__  # under a batch_sampler, the DataLoader fetches a batch with this


def whole_batch(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """collate_fn for batches that `EncodedTweets.__getitems__` already assembled."""
    return batch


class BatchIndexSampler(Sampler):
    """Yields lists of positions, one per batch.

    With `bucket`, batches hold sequences of similar length (sorted within chunks of 50 batches),
    which saves padding. Shuffling is seeded by `seed + epoch` (Lightning calls `set_epoch`), so a
    resumed run sees the same batches as an uninterrupted one. Under DDP each rank takes every
    `world`-th batch, and all ranks get the same number of batches.
    """

    def __init__(
        self,
        lengths: np.ndarray,
        batch_size: int,
        shuffle: bool,
        bucket: bool,
        seed: int = 0,
        rank: int = 0,
        world: int = 1,
    ):
        self.lengths, self.batch_size, self.shuffle, self.bucket = (
            lengths,
            batch_size,
            shuffle,
            bucket,
        )
        self.seed, self.rank, self.world, self.epoch = seed, rank, world, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    @property
    def sampler(self) -> BatchIndexSampler:
        # Lightning calls set_epoch on `dataloader.batch_sampler.sampler`, not on the batch sampler.
        return self

    def batches(self) -> list[np.ndarray]:
        n = len(self.lengths)
        rng = np.random.default_rng(self.seed + self.epoch)
        order = rng.permutation(n) if self.shuffle else np.arange(n)
        if self.bucket:
            chunk = self.batch_size * 50
            order = np.concatenate(
                [
                    c[np.argsort(self.lengths[c], kind="stable")]
                    for c in np.array_split(order, max(1, -(-n // chunk)))
                ]
            )
        batches = [order[i : i + self.batch_size] for i in range(0, n, self.batch_size)]
        if self.shuffle and self.bucket:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        if self.world > 1:
            per_rank = len(batches) // self.world
            batches = batches[self.rank :: self.world][:per_rank]
        return batches

    def __iter__(self):
        return iter(b.tolist() for b in self.batches())

    def __len__(self) -> int:
        n_batches = -(-len(self.lengths) // self.batch_size)
        return n_batches // self.world if self.world > 1 else n_batches


def load_prelabeled(path: str | None, interval: int, report: DataReport) -> pd.DataFrame:
    """A CSV that already holds `text,label` (optional counts and created_at), used as it is."""
    if not path:
        raise DataError("data=prelabeled needs data.path (a CSV with text,label columns)")
    raw = read_table(path, keep_default_na=False)
    require_columns(raw, ["text", "label"], path)
    report.add("rows_read", len(raw))
    labels = pd.to_numeric(raw["label"], errors="coerce")
    bad = labels.isna() | ~labels.isin([0, 1, 2])
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(
            f"{path}: row {row + 1}: label={raw['label'].astype(str).iloc[row]!r}; expected 0 (down), 1 (up) or 2 (flat)"
        )
    frame = pd.DataFrame(
        {
            "id": raw["id"].astype(str) if "id" in raw else raw.index.astype(str),
            "text": raw["text"].astype(str),
            "label": labels.astype("int64"),
        }
    )
    for column in COUNT_COLUMNS:
        frame[column] = (
            pd.to_numeric(raw[column], errors="coerce").fillna(0).to_numpy()
            if column in raw
            else 0.0
        )
    if "created_at" in raw:
        frame["created_at"] = parse_timestamps(raw["created_at"], path)
    else:
        # No timestamps (like the reference study's per-interval files): row order stands in for
        # time, which only a random split should rely on.
        frame["created_at"] = pd.Timestamp("1970-01-01", tz="UTC") + pd.to_timedelta(
            np.arange(len(frame)), unit="s"
        )
    frame["interval"] = interval
    frame = frame.sort_values("created_at", kind="stable").reset_index(drop=True)
    report.add("labeled", len(frame))
    report.add("label_down", int((frame["label"] == 0).sum()))
    report.add("label_up", int((frame["label"] == 1).sum()))
    return frame

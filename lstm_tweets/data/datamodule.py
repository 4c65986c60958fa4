"""The LightningDataModule, wiring the data stages in one direction:

1. files -> labeled frame (`prepare_data`; `sources.LabeledSource`: the synthetic sample, a tweets
   file and a prices file through `labels.label_files`, or a prelabeled CSV), cached by content
   so that training never re-parses CSVs;
2. labeled frame -> split by time (`split.SplitOptions`, purged at the boundaries);
3. split -> the target (`data.target`: the direction, or an activity target whose per-slot
   thresholds are fitted on the train split: `targets.py`) and the labels (with the shuffled-label
   control, which permutes train labels only);
4. -> features fitted on train only (`features.Features`: tokenizer, vocabulary, count scaler)
   -> padded ids, lengths and scaled counts (`batching.EncodedTweets`);
5. -> the embedding matrix (`embeddings.py`, cached per vocabulary);
6. -> batches (`batching.loader`: length buckets, resumable, one shard per DDP rank).

`encode=False` (the baselines) stops after the count scaler of step 4: no vocabulary, no tensors,
no embedding (no word2vec training). The fitted features and what the label means
(`targets.LabelMeaning`: the target and its thresholds, interval, window rule, ties) travel in the
checkpoint through `state_dict`, so a checkpoint alone can score new text and say what it scores.

The data config is flat (`data.interval`, `data.max_length`, ...); each key goes to the stage that
declares it (`LabeledSource`, `SplitOptions`, `Features`, `BatchOptions`), and a key no stage
declares is an error.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytorch_lightning as pl
from torch.utils.data import DataLoader

from lstm_tweets.data.batching import BatchOptions, EncodedTweets, loader
from lstm_tweets.data.embeddings import EmbeddingOptions, embedding_matrix
from lstm_tweets.data.errors import DataError
from lstm_tweets.data.features import Features, frame_counts
from lstm_tweets.data.report import DataReport, write_json_atomic
from lstm_tweets.data.sources import LabeledSource
from lstm_tweets.data.split import Split, SplitOptions
from lstm_tweets.data.targets import (
    TARGET_COLUMNS,
    LabelMeaning,
    activity_labels,
    check_target,
    fit_activity_thresholds,
)
from lstm_tweets.data.text import Vocab, tokenize

logger = logging.getLogger(__name__)


def _option_names(stage) -> tuple[str, ...]:
    if dataclasses.is_dataclass(stage):
        return tuple(f.name for f in dataclasses.fields(stage))
    return tuple(p for p in inspect.signature(stage).parameters if p != "self")


# Which stage takes which key of the flat data config.
STAGE_OPTIONS = {
    "files": LabeledSource.FILE_OPTIONS,
    "split": _option_names(SplitOptions),
    "features": _option_names(Features),
    "batching": _option_names(BatchOptions),
}


class TweetDataModule(pl.LightningDataModule):
    def __init__(
        self,
        source: str = "synthetic",
        interval: int = 5,
        window_start: str = "after_tweet",
        target: str = "direction",
        ties: str = "drop",
        dead_band_bps: float = 0.0,
        shuffle_train_labels: bool = False,
        seed: int = 0,
        cache_dir: str = "outputs/cache",
        embedding: dict | None = None,
        encode: bool = True,
        **options,
    ):
        """`options`: the keys of one stage each (STAGE_OPTIONS): the source's files, the split,
        the features (max_length, vocab_size, tokenizer options) and the batching."""
        super().__init__()
        staged = {
            stage: {k: options.pop(k) for k in names if k in options}
            for stage, names in STAGE_OPTIONS.items()
        }
        if options:
            known = sorted({k for names in STAGE_OPTIONS.values() for k in names})
            raise DataError(
                f"data.{sorted(options)[0]} is not a data setting; expected one of "
                f"{', '.join(known)}"
            )
        self.source = source
        self.interval, self.window_start = int(interval), window_start
        self.target = check_target(target)
        self.ties, self.dead_band_bps = ties, float(dead_band_bps)
        self.num_classes = LabelMeaning.classes(self.target, ties)
        self.thresholds: dict | None = None  # an activity target's train-fitted thresholds
        self.shuffle_train_labels = shuffle_train_labels
        self.seed = seed
        self.cache_dir = Path(cache_dir)
        self.encode = encode

        label_ties, label_dead_band = self.label_ties
        self.labeled = LabeledSource(
            source,
            **staged["files"],
            interval=self.interval,
            window_start=window_start,
            ties=label_ties,
            dead_band_bps=label_dead_band,
        )
        self.split_options = SplitOptions(**staged["split"])
        self.features = Features(**staged["features"])
        self.batching = BatchOptions(**staged["batching"])
        self.embedding = EmbeddingOptions.from_config(embedding)

        self.report = DataReport()
        self.frame: pd.DataFrame | None = None
        self.split: Split | None = None
        self.labels: np.ndarray | None = None
        self.embedding_matrix: np.ndarray | None = None
        self.coverage: dict = {}
        self.datasets: dict[str, EncodedTweets] = {}

    @property
    def label_ties(self) -> tuple[str, float]:
        """(ties, dead_band_bps) for the labeler: the config's for the direction target; for an
        activity target every tweet is kept, a zero return included."""
        return (self.ties, self.dead_band_bps) if self.target == "direction" else ("down", 0.0)

    # ---- 1. files -> labeled frame (cached) ---------------------------------------------------
    def labeled_cache_path(self) -> Path:
        return self.labeled.cache_path(self.cache_dir)

    def prepare_data(self) -> None:
        self.labeled.prepare(self.cache_dir)

    # ---- 2-5. labeled frame -> split, target, labels, features, tensors, embedding ------------
    def setup(self, stage: str | None = None) -> None:
        if self.frame is not None:
            return
        self.frame, self.report = self.labeled.load(self.cache_dir)
        if len(self.frame) == 0:
            raise DataError(f"no labeled samples (data report: {self.report.to_dict()})")
        if self.num_classes == 2 and (self.frame["label"] > 1).any():
            raise DataError("labels include class 2 (flat) but data.ties is not 'class'")
        self.report.details["target"] = self.target
        if self.target == "volume":
            self.drop_without_volume_ratio()

        self.split = self.split_options.apply(self.frame, self.seed)
        self.report.add("purged_at_split_boundaries", self.split.purged)
        for name in ("train", "val", "test"):
            self.report.add(f"n_{name}", len(getattr(self.split, name)))
        if self.target != "direction":
            self.apply_activity_target()

        labels = self.frame["label"].to_numpy("int64").copy()
        if self.shuffle_train_labels:
            # The control: labels permuted among train samples only. Val and test keep the truth,
            # so a model that still beats the majority baseline has found a leak, not a signal.
            train = self.split.train
            labels[train] = labels[np.random.default_rng(self.seed).permutation(train)]
        self.labels = labels

        raw_counts = frame_counts(self.frame)
        self.features.fit_counts(raw_counts[self.split.train])
        if not self.encode:
            return
        tokens = self.features.tokenize(self.frame["text"])
        train_tokens = [tokens[i] for i in self.split.train]
        self.features.fit_vocab(train_tokens)
        ids, lengths = self.features.encode(tokens)
        counts = self.features.scale_counts(raw_counts)

        self.embedding_matrix, self.coverage = embedding_matrix(
            self.embedding.kind,
            self.cased_forms(),
            dim=self.embedding.dim,
            seed=self.seed,
            cache_dir=self.cache_dir,
            path=self.embedding.path,
            limit=self.embedding.limit,
            train_tokens=train_tokens,
            token_counts=self.vocab.counts,
            window=int(self.embedding.window),
            min_count=int(self.embedding.min_count),
            epochs=int(self.embedding.epochs),
        )
        for name in ("train", "val", "test"):
            index = getattr(self.split, name)
            self.datasets[name] = EncodedTweets(
                ids[index],
                lengths[index],
                counts[index],
                labels[index],
                index,
                self.batching.pad_to_max_length,
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

    def cased_forms(self) -> list[str]:
        """Each vocab entry as it was most often written in train, so that case-sensitive vectors
        (GoogleNews) are looked up by their original case first."""
        if not self.features.tokenizer.lowercase or self.embedding.kind != "pretrained":
            return list(self.vocab.itos)
        options = {**self.features.tokenizer.to_dict(), "lowercase": False}
        seen: dict[str, dict[str, int]] = {}
        for i in self.split.train:
            for token in tokenize(self.frame["text"].iat[i], **options):
                forms = seen.setdefault(token.lower(), {})
                forms[token] = forms.get(token, 0) + 1
        return [
            max(seen[t].items(), key=lambda kv: (kv[1], kv[0]))[0] if t in seen else t
            for t in self.vocab.itos
        ]

    # ---- 6. tensors -> batches ----------------------------------------------------------------
    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def transfer_batch_to_device(self, batch, device, dataloader_idx):
        # On the CPU the batch is already where it goes: skip Lightning's walk over its tensors
        # on every step (a cost of the same order as a small model's step).
        if device.type == "cpu":
            return batch
        return super().transfer_batch_to_device(batch, device, dataloader_idx)

    def _loader(self, name: str, shuffle: bool) -> DataLoader:
        rank, world, epoch, overfit = 0, 1, 0, False
        if self.trainer is not None:
            rank, world = self.trainer.global_rank, self.trainer.world_size
            overfit = self.trainer.overfit_batches > 0
            if shuffle:
                # A resumed fit draws its first batch before Lightning calls set_epoch, so start
                # at the epoch the fit loop runs next (the value Lightning passes to set_epoch):
                # otherwise the first resumed epoch would replay epoch 0's order.
                epoch = self.trainer.fit_loop.epoch_progress.current.processed
        return loader(
            self.datasets[name],
            self.batching,
            shuffle and not overfit,
            self.seed,
            rank,
            world,
            epoch,
        )

    # ---- facts the model and the reports need ---------------------------------------------------
    @property
    def vocab(self) -> Vocab | None:
        return self.features.vocab

    @property
    def batch_size(self) -> int:
        return int(self.batching.batch_size)

    @property
    def meaning(self) -> LabelMeaning:
        return LabelMeaning(
            self.target,
            self.interval,
            self.window_start,
            self.ties,
            self.num_classes,
            self.thresholds,
        )

    @property
    def class_names(self) -> list[str]:
        return self.meaning.class_names

    @property
    def class_counts(self) -> list[int]:
        train_labels = self.labels[self.split.train]
        return [int((train_labels == c).sum()) for c in range(self.num_classes)]

    @property
    def majority_class(self) -> int:
        return int(np.argmax(self.class_counts))

    def split_summary(self) -> dict:
        return self.split.summary(self.frame)

    # ---- the checkpoint: Lightning stores this under the class name (features.CHECKPOINT_KEY) --
    def state_dict(self) -> dict:
        return {**self.features.state_dict(), **self.meaning.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.features.load_state_dict(state)
        meaning = LabelMeaning.from_state(state)
        self.target, self.interval, self.window_start = (
            meaning.target,
            meaning.interval,
            meaning.window_start,
        )
        self.ties, self.num_classes, self.thresholds = (
            meaning.ties,
            meaning.num_classes,
            meaning.thresholds,
        )

    def save_reports(self, folder: str | Path) -> None:
        folder = Path(folder)
        self.report.save(folder / "data_report.json")
        write_json_atomic(
            folder / "split_summary.json",
            {**self.split_summary(), "embedding_coverage": self.coverage},
        )

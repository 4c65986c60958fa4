"""Text and counts -> model inputs: tokenizer + vocabulary + count scaler, fitted on train only.

`Features.fit` sees the train rows only (the vocabulary: the most frequent train tokens; the count
statistics: mean and std of log1p(count) over train); `encode` and `scale_counts` then apply them
to any rows. The fitted state (vocabulary, tokenizer options, max_length, count statistics) is
plain data that travels in the checkpoint, so a checkpoint alone can encode new tweets
(`Features.from_checkpoint`, used by `lstm-tweets-predict`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from lstm_tweets.data.errors import DataError
from lstm_tweets.data.text import TokenizerOptions, Vocab, build_vocab, encode, tokenize

COUNT_COLUMNS = ("retweet_count", "favorite_count")
# Lightning saves a datamodule's `state_dict()` under its class name; the features' state is part
# of that dict (datamodule.TweetDataModule.state_dict), in checkpoints old and new.
CHECKPOINT_KEY = "TweetDataModule"


@dataclass
class CountScaler:
    """log1p of the retweet and favorite counts, standardized with train statistics (the one
    implementation: the LSTM's count features, the TF-IDF baseline's and prediction's)."""

    mean: np.ndarray = field(default_factory=lambda: np.zeros(len(COUNT_COLUMNS)))
    std: np.ndarray = field(default_factory=lambda: np.ones(len(COUNT_COLUMNS)))

    @classmethod
    def fit(cls, train_counts: np.ndarray) -> CountScaler:
        """`train_counts`: raw counts (rows, COUNT_COLUMNS) of the train split only."""
        logs = np.log1p(np.asarray(train_counts, dtype="float64"))
        std = logs.std(axis=0)
        std[std == 0] = 1.0  # a constant column (e.g. no counts) stays 0
        return cls(logs.mean(axis=0), std)

    def transform(self, counts: np.ndarray) -> np.ndarray:
        return (np.log1p(np.asarray(counts, dtype="float64")) - self.mean) / self.std


def frame_counts(frame) -> np.ndarray:
    """The raw counts of a labeled frame, one column per COUNT_COLUMNS."""
    return frame[list(COUNT_COLUMNS)].to_numpy("float64")


class Features:
    """Tokenizer options + vocabulary + count scaler. Build with the options, `fit` on train,
    then `encode` / `scale_counts` / `encode_texts` anything."""

    def __init__(
        self,
        max_length: int = 50,
        vocab_size: int = 10_000,
        min_freq: int = 1,
        lowercase: bool = True,
        replace_urls: bool = True,
        replace_mentions: bool = True,
    ):
        self.max_length, self.vocab_size, self.min_freq = (
            int(max_length),
            int(vocab_size),
            int(min_freq),
        )
        self.tokenizer = TokenizerOptions(
            lowercase=lowercase, replace_urls=replace_urls, replace_mentions=replace_mentions
        )
        self.vocab: Vocab | None = None
        self.counts = CountScaler()

    def tokenize(self, texts) -> list[list[str]]:
        options = self.tokenizer.to_dict()
        return [tokenize(text, **options) for text in texts]

    # ---- fit on train only ----------------------------------------------------------------
    def fit_counts(self, train_counts: np.ndarray) -> None:
        self.counts = CountScaler.fit(train_counts)

    def fit_vocab(self, train_tokens: list[list[str]]) -> None:
        if not any(train_tokens):
            raise DataError("the train split has no tokens: every training tweet is empty")
        self.vocab = build_vocab(train_tokens, self.vocab_size, self.min_freq)

    # ---- apply to any rows ------------------------------------------------------------------
    def encode(self, tokens: list[list[str]]) -> tuple[np.ndarray, np.ndarray]:
        """Padded ids (n, max_length) and true lengths, with the fitted vocabulary."""
        return encode(tokens, self.vocab, self.max_length)

    def scale_counts(self, counts: np.ndarray) -> np.ndarray:
        return self.counts.transform(counts)

    def encode_texts(self, texts: list[str], retweet_counts=None, favorite_counts=None):
        """Tensors (ids, lengths, counts) for new tweets; missing counts are 0."""
        ids, lengths = self.encode(self.tokenize(texts))
        n = len(texts)
        raw = np.column_stack(
            [
                np.zeros(n) if c is None else np.asarray(c, dtype=float)
                for c in (retweet_counts, favorite_counts)
            ]
        )
        return (
            torch.from_numpy(ids),
            torch.from_numpy(lengths),
            torch.from_numpy(self.scale_counts(raw).astype(np.float32)),
        )

    # ---- the checkpoint ----------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Plain types only, so that a checkpoint loads with torch.load(weights_only=True)."""
        return {
            "vocab": self.vocab.to_dict() if self.vocab else None,
            "tokenizer": self.tokenizer.to_dict(),
            "max_length": self.max_length,
            "count_mean": self.counts.mean.tolist(),
            "count_std": self.counts.std.tolist(),
        }

    def load_state_dict(self, state: dict) -> None:
        """From `state_dict()` (extra keys, such as the datamodule's, are ignored)."""
        self.vocab = Vocab.from_dict(state["vocab"]) if state.get("vocab") else None
        self.tokenizer = TokenizerOptions.from_dict(state["tokenizer"])
        self.max_length = int(state["max_length"])
        self.counts = CountScaler(
            np.asarray(state["count_mean"], dtype=float),
            np.asarray(state["count_std"], dtype=float),
        )

    @classmethod
    def from_state(cls, state: dict) -> Features:
        features = cls()
        features.load_state_dict(state)
        return features

    @classmethod
    def from_checkpoint(cls, checkpoint: dict) -> Features:
        """The fitted features of a loaded training checkpoint (`torch.load(...)`)."""
        return cls.from_state(checkpoint[CHECKPOINT_KEY])

"""Encoded tweets -> batches: the Dataset and the length-bucketed, resumable, DDP-aware sampler.

`EncodedTweets` holds one split's tensors and slices a whole batch at once; `BatchIndexSampler`
decides which positions make a batch (similar lengths together, the order a function of seed and
epoch only, every rank its own batches); `loader` puts the two into a DataLoader.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler


@dataclass(frozen=True)
class BatchOptions:
    """data.batch_size, data.bucket_by_length, data.pad_to_max_length, data.num_workers."""

    batch_size: int = 64
    bucket_by_length: bool = True  # similar lengths per batch: less padding
    pad_to_max_length: bool = False  # every batch max_length wide (the reference recipe)
    num_workers: int = 0


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


def loader(
    dataset: EncodedTweets,
    options: BatchOptions,
    shuffle: bool,
    seed: int = 0,
    rank: int = 0,
    world: int = 1,
    epoch: int = 0,
) -> DataLoader:
    """The DataLoader of one split: whole batches from the sampler, starting at `epoch`."""
    sampler = BatchIndexSampler(
        dataset.lengths.numpy(),
        int(options.batch_size),
        shuffle,
        options.bucket_by_length,
        seed,
        rank,
        world,
    )
    sampler.set_epoch(epoch)
    # The sampler yields whole batches and the dataset slices each at once (`__getitems__`).
    # As a batch_sampler it is left alone by Lightning (overfit_batches swaps any `sampler`).
    return DataLoader(
        dataset,
        batch_sampler=sampler,
        collate_fn=whole_batch,
        num_workers=options.num_workers,
        persistent_workers=options.num_workers > 0,
    )

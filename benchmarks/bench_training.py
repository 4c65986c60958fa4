"""Training speed: our Lightning module against a hand-written PyTorch loop of the identical model
and batches (the overhead ratio), and our length-bucketed batching against the reference study's
recipe (every batch padded to 50, batches not sorted by length) at equal epochs.

    python benchmarks/bench_training.py [--pairs 24] [--recipe-epochs 12] [--out outputs/bench/training.json]

The overhead is measured in pairs of epochs, one Lightning and one plain, run back to back over
the same batches (the plain loop runs inside the Lightning fit, between its epochs, the order
alternating: L P P L L P ...). On a shared VM whose speed drifts 10-20 % over minutes, loops timed
minutes apart differ by more than the few per cent measured here; epochs seconds apart do not.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import time
import warnings
from pathlib import Path

import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from lstm_tweets.data.datamodule import TweetDataModule
from lstm_tweets.model import LSTMClassifier, TweetLSTMModule

warnings.filterwarnings("ignore")
logging.disable(logging.WARNING)


def make_datamodule(cache_dir: str, **options) -> TweetDataModule:
    dm = TweetDataModule(cache_dir=cache_dir, embedding={"kind": "word2vec", "dim": 100}, **options)
    dm.prepare_data()
    dm.setup("fit")
    return dm


class PlainLoop:
    """The same network, optimizer and batches, in a loop with no framework around it."""

    def __init__(self, dm: TweetDataModule, seed: int = 0):
        pl.seed_everything(seed, workers=True)
        matrix = dm.embedding_matrix
        self.net = LSTMClassifier(matrix.shape[0], matrix.shape[1], embedding_matrix=matrix)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=3e-4)
        self.loader = dm.train_dataloader()

    def epoch(self, epoch: int) -> float:
        self.loader.batch_sampler.set_epoch(epoch)
        self.net.train()
        start = time.perf_counter()
        correct = 0
        for batch in self.loader:
            logits = self.net(batch["ids"], batch["lengths"])
            loss = F.cross_entropy(logits, batch["label"])
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            # A minimal counterpart to the module's per-step bookkeeping.
            correct += int((logits.argmax(1) == batch["label"]).sum())
        return time.perf_counter() - start


class PairedEpochs(pl.Callback):
    """Times each Lightning epoch and runs a plain epoch over the same batches right beside it:
    after it on even epochs, before it on odd ones, so that neither loop always goes first."""

    def __init__(self, plain: PlainLoop):
        self.plain = plain
        self.pairs: list[tuple[float, float]] = []

    def on_train_epoch_start(self, trainer, module):
        if trainer.current_epoch % 2:
            self.plain_s = self.plain.epoch(trainer.current_epoch)
        self.start = time.perf_counter()

    def on_train_epoch_end(self, trainer, module):
        # Callbacks run before the module's own on_train_epoch_end (its epoch metrics), which
        # the plain loop has no counterpart for.
        lightning_s = time.perf_counter() - self.start
        if not trainer.current_epoch % 2:
            self.plain_s = self.plain.epoch(trainer.current_epoch)
        self.pairs.append((lightning_s, self.plain_s))


def fit(dm: TweetDataModule, epochs: int, callbacks: list, validate: bool, seed: int) -> None:
    """Our module under a bare Lightning Trainer (no logger, checkpoints or progress bar)."""
    pl.seed_everything(seed, workers=True)
    matrix = dm.embedding_matrix
    module = TweetLSTMModule(matrix.shape[0], matrix.shape[1], embedding_matrix=matrix, lr=3e-4)
    trainer = pl.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        devices=1,
        logger=False,
        callbacks=callbacks,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=1.0 if validate else 0,
    )
    trainer.fit(module, datamodule=dm)


def paired_epochs(dm: TweetDataModule, pairs: int, seed: int = 0) -> list[tuple[float, float]]:
    """(Lightning, plain) seconds for each pair of epochs after the first (warm-up) pair."""
    timer = PairedEpochs(PlainLoop(dm, seed))
    fit(dm, pairs + 1, [timer], validate=False, seed=seed)
    return timer.pairs[1:]


class EpochTimer(pl.Callback):
    def __init__(self):
        self.times: list[float] = []

    def on_train_epoch_start(self, trainer, module):
        self.start = time.perf_counter()

    def on_train_epoch_end(self, trainer, module):
        self.times.append(time.perf_counter() - self.start)


def lightning_epochs(dm: TweetDataModule, epochs: int, validate: bool = False, seed: int = 0):
    timer = EpochTimer()
    accuracies = []

    class Record(pl.Callback):
        def on_train_epoch_end(self, trainer, module):
            accuracies.append(float(trainer.callback_metrics["val/acc"]))

    fit(dm, epochs, [timer, Record()] if validate else [timer], validate, seed)
    return timer.times, accuracies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=24, help="timed pairs of epochs")
    parser.add_argument("--recipe-epochs", type=int, default=12)
    parser.add_argument("--cache-dir", default="outputs/cache")
    parser.add_argument("--out", default="outputs/bench/training.json")
    args = parser.parse_args()

    ours = make_datamodule(args.cache_dir)
    pairs = paired_epochs(ours, args.pairs)
    ratios = [lightning / plain for lightning, plain in pairs]
    quartiles = statistics.quantiles(ratios, n=4)

    reference = make_datamodule(args.cache_dir, bucket_by_length=False, pad_to_max_length=True)
    ours_times, ours_acc = lightning_epochs(ours, args.recipe_epochs, validate=True)
    ref_times, ref_acc = lightning_epochs(reference, args.recipe_epochs, validate=True)
    figures = {
        "machine": f"{torch.get_num_threads()} torch threads, CPU",
        "train_samples": len(ours.datasets["train"]),
        "batch_size": ours.batch_size,
        "lightning_epoch_s": statistics.median(lightning for lightning, _ in pairs),
        "plain_pytorch_epoch_s": statistics.median(plain for _, plain in pairs),
        "overhead_ratio": statistics.median(ratios),
        "overhead_ratio_quartiles": [round(quartiles[0], 3), round(quartiles[2], 3)],
        "overhead_ratio_per_pair": [round(r, 3) for r in ratios],
        "recipe_epochs": args.recipe_epochs,
        "ours_epoch_s": statistics.median(ours_times),
        "reference_recipe_epoch_s": statistics.median(ref_times),
        "speedup_vs_reference_recipe": statistics.median(ref_times) / statistics.median(ours_times),
        "ours_best_val_acc": max(ours_acc),
        "reference_recipe_best_val_acc": max(ref_acc),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(figures, indent=2) + "\n")
    width = max(map(len, figures))
    for key, value in figures.items():
        print(
            f"{key:<{width}}  {value:.4g}"
            if isinstance(value, float)
            else f"{key:<{width}}  {value}"
        )


if __name__ == "__main__":
    main()

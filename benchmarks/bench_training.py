"""Training speed: our Lightning module against a hand-written PyTorch loop of the identical model
and batches (the overhead ratio), and our length-bucketed batching against the reference study's
recipe (every batch padded to 50, batches not sorted by length) at equal epochs.

    python benchmarks/bench_training.py [--epochs 4] [--recipe-epochs 12] [--out outputs/bench/training.json]
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


class EpochTimer(pl.Callback):
    def __init__(self):
        self.times: list[float] = []

    def on_train_epoch_start(self, trainer, module):
        self.start = time.perf_counter()

    def on_train_epoch_end(self, trainer, module):
        self.times.append(time.perf_counter() - self.start)


def lightning_epochs(dm: TweetDataModule, epochs: int, validate: bool = False, seed: int = 0):
    pl.seed_everything(seed, workers=True)
    matrix = dm.embedding_matrix
    module = TweetLSTMModule(matrix.shape[0], matrix.shape[1], embedding_matrix=matrix, lr=3e-4)
    timer = EpochTimer()
    trainer = pl.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        devices=1,
        logger=False,
        callbacks=[timer],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=1.0 if validate else 0,
    )
    accuracies = []
    if validate:

        class Record(pl.Callback):
            def on_train_epoch_end(self, trainer, module):
                accuracies.append(float(trainer.callback_metrics["val/acc"]))

        trainer.callbacks.append(Record())
    trainer.fit(module, datamodule=dm)
    return timer.times, accuracies


def plain_epochs(dm: TweetDataModule, epochs: int, seed: int = 0) -> list[float]:
    """The same network, optimizer and batches, in a loop with no framework around it."""
    pl.seed_everything(seed, workers=True)
    matrix = dm.embedding_matrix
    net = LSTMClassifier(matrix.shape[0], matrix.shape[1], embedding_matrix=matrix)
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-4)
    loader = dm.train_dataloader()
    times = []
    for epoch in range(epochs):
        loader.batch_sampler.set_epoch(epoch)
        net.train()
        start = time.perf_counter()
        correct = 0
        for batch in loader:
            logits = net(batch["ids"], batch["lengths"])
            loss = F.cross_entropy(logits, batch["label"])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            correct += int((logits.argmax(1) == batch["label"]).sum())
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--recipe-epochs", type=int, default=12)
    parser.add_argument("--cache-dir", default="outputs/cache")
    parser.add_argument("--out", default="outputs/bench/training.json")
    args = parser.parse_args()

    ours = make_datamodule(args.cache_dir)
    # Rounds alternate the two loops, and which goes first, so that the machine's drift hits both
    # alike; each round's ratio pairs epochs measured minutes apart, and the overhead is their
    # median. The first epoch of each loop warms caches and allocators and is left out.
    lightning, plain, round_ratios = [], [], []
    for round_index in range(args.rounds):
        loops = {
            "plain": lambda: plain_epochs(ours, args.epochs)[1:],
            "lightning": lambda: lightning_epochs(ours, args.epochs)[0][1:],
        }
        order = ["plain", "lightning"] if round_index % 2 == 0 else ["lightning", "plain"]
        times = {name: loops[name]() for name in order}
        plain += times["plain"]
        lightning += times["lightning"]
        round_ratios.append(
            statistics.median(times["lightning"]) / statistics.median(times["plain"])
        )
    overhead = statistics.median(round_ratios)

    reference = make_datamodule(args.cache_dir, bucket_by_length=False, pad_to_max_length=True)
    ours_times, ours_acc = lightning_epochs(ours, args.recipe_epochs, validate=True)
    ref_times, ref_acc = lightning_epochs(reference, args.recipe_epochs, validate=True)
    figures = {
        "machine": f"{torch.get_num_threads()} torch threads, CPU",
        "train_samples": len(ours.datasets["train"]),
        "batch_size": ours.batch_size,
        "lightning_epoch_s": statistics.median(lightning),
        "plain_pytorch_epoch_s": statistics.median(plain),
        "overhead_ratio": overhead,
        "overhead_ratio_per_round": [round(r, 3) for r in round_ratios],
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

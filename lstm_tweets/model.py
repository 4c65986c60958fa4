"""The network: Embedding -> LSTM (packed, state after the last real token) -> dropout ->
[count features] -> Linear, wrapped in a LightningModule with torchmetrics for each stage."""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence
from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import AUROC, Accuracy, F1Score, MatthewsCorrCoef


class LSTMClassifier(nn.Module):
    def __init__(
        self,
        vocab_size: int,
        embedding_dim: int,
        num_classes: int = 2,
        hidden_dim: int = 128,
        num_layers: int = 1,
        dropout: float = 0.5,
        bidirectional: bool = False,
        n_count_features: int = 0,
        embedding_matrix: np.ndarray | None = None,
        trainable_embedding: bool = True,
    ):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=0)
        if embedding_matrix is not None:
            if embedding_matrix.shape != (vocab_size, embedding_dim):
                raise ValueError(
                    f"embedding matrix has shape {embedding_matrix.shape}, expected {(vocab_size, embedding_dim)}"
                )
            self.embedding.weight.data.copy_(torch.as_tensor(embedding_matrix))
        self.embedding.weight.requires_grad_(trainable_embedding)
        self.lstm = nn.LSTM(
            embedding_dim,
            hidden_dim,
            num_layers,
            batch_first=True,
            bidirectional=bidirectional,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.dropout = nn.Dropout(dropout)
        self.n_count_features = n_count_features
        self.head = nn.Linear(
            hidden_dim * (2 if bidirectional else 1) + n_count_features, num_classes
        )

    @classmethod
    def from_hparams(
        cls, hp: Mapping[str, Any], embedding_matrix: np.ndarray | None = None
    ) -> LSTMClassifier:
        """The network that a TweetLSTMModule's hyperparameters describe: its `hparams`, or a
        checkpoint's `hyper_parameters` (predict.py). The one place that maps them onto this
        signature; count features enter only with `concat_counts`."""
        return cls(
            vocab_size=hp["vocab_size"],
            embedding_dim=hp["embedding_dim"],
            num_classes=hp["num_classes"],
            hidden_dim=hp["hidden_dim"],
            num_layers=hp["num_layers"],
            dropout=hp["dropout"],
            bidirectional=hp["bidirectional"],
            n_count_features=hp["n_count_features"] if hp["concat_counts"] else 0,
            embedding_matrix=embedding_matrix,
            trainable_embedding=hp.get("trainable_embedding", True),
        )

    def forward(
        self, ids: torch.Tensor, lengths: torch.Tensor, counts: torch.Tensor | None = None
    ) -> torch.Tensor:
        # pack_padded_sequence wants lengths on the CPU, whatever device the batch is on.
        packed = pack_padded_sequence(
            self.embedding(ids), lengths.cpu(), batch_first=True, enforce_sorted=False
        )
        _, (hidden, _) = self.lstm(packed)
        # hidden holds each direction's state after its last real token; the top layer's come last.
        state = (
            torch.cat([hidden[-2], hidden[-1]], dim=1) if self.lstm.bidirectional else hidden[-1]
        )
        features = self.dropout(state)
        if self.n_count_features:
            features = torch.cat([features, counts], dim=1)
        return self.head(features)


class MajorityShare(Metric):
    """Share of the most common true class among the samples seen: the accuracy of the best
    constant guess on this split. `acc_lift` = acc - this is free of the split's base rate, so
    it compares runs whose labels differ (intervals, label rules) where plain accuracy cannot."""

    full_state_update = False

    def __init__(self, num_classes: int):
        super().__init__()
        self.num_classes = num_classes
        self.add_state("counts", torch.zeros(num_classes), dist_reduce_fx="sum")

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        self.counts += torch.bincount(target, minlength=self.num_classes).to(self.counts)

    def compute(self) -> torch.Tensor:
        return self.counts.max() / self.counts.sum().clamp(min=1)


def with_acc_lift(values: dict, prefix: str) -> dict:
    """Add `<prefix>acc_lift` = accuracy minus the split's majority-class share."""
    share = values.get(f"{prefix}majority_share")
    if share is not None:
        values[f"{prefix}acc_lift"] = values[f"{prefix}acc"] - share
    return values


def stage_metrics(num_classes: int, prefix: str) -> MetricCollection:
    task = (
        {"task": "binary"}
        if num_classes == 2
        else {"task": "multiclass", "num_classes": num_classes}
    )
    f1_average = {} if num_classes == 2 else {"average": "macro"}
    return MetricCollection(
        {
            "acc": Accuracy(**task),
            "f1": F1Score(**task, **f1_average),
            "auroc": AUROC(**task),
            "mcc": MatthewsCorrCoef(**task),
            "majority_share": MajorityShare(num_classes),
        },
        prefix=prefix,
    )


def build_torch_optim(config: dict, **kwargs):
    """An optimizer or scheduler from its config dict; `_partial_` is moot once the kwargs are here."""
    config = {k: v for k, v in config.items() if k != "_partial_"}
    return instantiate(config, **kwargs, _execution_whitelist_=["torch.optim.*"])


class TweetLSTMModule(pl.LightningModule):
    def __init__(
        self,
        vocab_size: int,
        embedding_dim: int,
        num_classes: int = 2,
        hidden_dim: int = 128,
        num_layers: int = 1,
        dropout: float = 0.5,
        bidirectional: bool = False,
        concat_counts: bool = False,
        n_count_features: int = 2,
        trainable_embedding: bool = True,
        lr: float = 3e-4,
        class_counts: list[int] | None = None,
        balance_classes: bool = False,
        optimizer: dict | None = None,
        scheduler: dict | None = None,
        embedding_matrix: np.ndarray | None = None,
        name: str = "lstm",
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["embedding_matrix"], logger=False)
        self.net = LSTMClassifier.from_hparams(self.hparams, embedding_matrix)
        weights = None
        if balance_classes and class_counts:
            counts = torch.tensor(class_counts, dtype=torch.float32).clamp(min=1)
            weights = counts.sum() / (len(counts) * counts)
        self.register_buffer("class_weights", weights)
        self.metrics = nn.ModuleDict(
            {f"{s}_metrics": stage_metrics(num_classes, f"{s}/") for s in ("train", "val", "test")}
        )
        self.test_outputs: list[dict] = []
        self.seen: dict[str, list] = {"train": [], "val": [], "test": []}

    def __setattr__(self, name: str, value: Any) -> None:
        # Lightning records the hook it is in as `_current_fx_name`, about 40 times a training
        # step. nn.Module.__setattr__ first checks each value against the parameters, buffers and
        # submodules (1.5 us, against 0.05 us for a plain attribute), which measured 0.3 ms a step
        # inside a fit, ~1.8 % of the epoch (docs/benchmarks.md). A hook's name is a plain string.
        if name == "_current_fx_name":
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    def forward(self, batch: dict) -> torch.Tensor:
        return self.net(batch["ids"], batch["lengths"], batch.get("counts"))

    def _step(self, batch: dict, stage: str) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self(batch)
        loss = F.cross_entropy(logits, batch["label"], weight=self.class_weights)
        probs = logits.softmax(dim=1)
        scores = probs[:, 1] if self.hparams.num_classes == 2 else probs
        # What every step saw goes to _log_epoch, which updates the metrics once and logs the
        # epoch's loss (batch-size weighted, as Lightning's on_epoch mean): the same values as
        # logging on every step, without Lightning's per-call bookkeeping, which costs more than
        # a small model's step.
        size = len(batch["label"])
        self.seen[stage].append((scores.detach(), batch["label"], loss.detach() * size))
        every = self.trainer.log_every_n_steps if stage == "train" else 0
        if every and (self.global_step + 1) % every == 0:
            # Only the steps Lightning writes to the logger (every log_every_n_steps; 0: none).
            self.log("train/loss_step", loss, on_step=True, on_epoch=False, prog_bar=True)
        return loss, probs

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")[0]

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def test_step(self, batch, batch_idx):
        _, probs = self._step(batch, "test")
        self.test_outputs.append(
            {
                "index": batch["index"].cpu(),
                "label": batch["label"].cpu(),
                "probs": probs.detach().cpu(),
            }
        )

    def predict_step(self, batch, batch_idx):
        return self(batch).softmax(dim=1)

    def _log_epoch(self, stage: str) -> None:
        metrics = self.metrics[f"{stage}_metrics"]
        seen, self.seen[stage] = self.seen[stage], []
        if seen:
            scores, labels, weighted_losses = zip(*seen, strict=True)
            labels = torch.cat(labels)
            metrics.update(torch.cat(scores), labels)
            loss = torch.stack(weighted_losses).sum() / len(labels)
            name = "train/loss_epoch" if stage == "train" else f"{stage}/loss"
            self.log(name, loss, prog_bar=True, sync_dist=True)
        # Float values: MCC computes as an integer tensor when undefined, which Lightning warns about.
        values = {k: v.float() for k, v in metrics.compute().items()}
        values = with_acc_lift(values, f"{stage}/")
        self.log_dict(values, prog_bar=stage == "val", sync_dist=True)
        metrics.reset()

    def on_train_epoch_end(self):
        self._log_epoch("train")

    def on_validation_epoch_end(self):
        self._log_epoch("val")

    def on_test_epoch_start(self):
        self.test_outputs = []

    def on_test_epoch_end(self):
        self._log_epoch("test")

    def configure_optimizers(self):
        # The optimizer and scheduler arrive as plain config dicts (`_target_`, `_partial_`), not as
        # factories: dicts pickle, so the module can travel to DDP-spawned processes.
        params = [p for p in self.parameters() if p.requires_grad]
        if self.hparams.optimizer is None:
            optimizer = torch.optim.Adam(params, lr=self.hparams.lr)
        else:
            optimizer = build_torch_optim(self.hparams.optimizer, params=params)
        if self.hparams.scheduler is None:
            return optimizer
        scheduler = build_torch_optim(self.hparams.scheduler, optimizer=optimizer)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"},
        }

    # Lightning does not checkpoint the random generators; saving them makes a resumed run draw the
    # same dropout masks as an uninterrupted one.
    # Plain types only, so the checkpoint loads with torch.load(weights_only=True).
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        name, keys, pos, has_gauss, cached = np.random.get_state()
        checkpoint["rng_states"] = {
            "torch": torch.get_rng_state(),
            "numpy": [name, keys.tolist(), pos, has_gauss, cached],
            "python": random.getstate(),
        }
        # The metrics of the epoch this file holds: a weights-only best.ckpt has no callback
        # state, and after DDP-spawn the file is where the chosen epoch's score is read back.
        checkpoint["metrics"] = {
            k: float(v) for k, v in self.trainer.callback_metrics.items() if v.numel() == 1
        }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        states = checkpoint.get("rng_states")
        if states:
            torch.set_rng_state(states["torch"])
            name, keys, pos, has_gauss, cached = states["numpy"]
            np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
            random.setstate(states["python"])

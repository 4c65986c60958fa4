"""Lightning callbacks that the training app adds itself (configurable ones live in conf/callbacks)."""

from __future__ import annotations

import logging

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelSummary
from pytorch_lightning.utilities.model_summary import get_human_readable_count

log = logging.getLogger("lstm_tweets.train")


class MaxOverEpochsTestAccuracy(pl.Callback):
    """Scores the test split after every epoch, as the reference study did before it reported the
    best of those scores. Kept apart from the real test, which happens once, from the best-val
    checkpoint."""

    def __init__(self):
        self.accuracies: list[float] = []

    @torch.no_grad()
    def on_validation_epoch_end(self, trainer, module):
        if trainer.sanity_checking:
            return
        correct = total = 0
        was_training = module.training
        module.eval()
        for batch in trainer.datamodule.test_dataloader():
            batch = {k: v.to(module.device) for k, v in batch.items()}
            correct += int((module(batch).argmax(1) == batch["label"]).sum())
            total += len(batch["label"])
        module.train(was_training)
        self.accuracies.append(correct / total)


class ParameterTable(ModelSummary):
    """Lightning's model summary (`verbose=true`) without its FLOPs column, which reads 0 for a
    module whose forward takes a batch dict (Lightning counts FLOPs on `example_input_array`)."""

    @staticmethod
    def summarize(
        summary_data,
        total_parameters,
        trainable_parameters,
        model_size,
        total_training_modes,
        total_flops=0,
        **kwargs,
    ) -> None:
        columns = [(name, values) for name, values in summary_data if name != "FLOPs"]
        widths = [max([len(name), *(len(str(v)) for v in values)]) for name, values in columns]
        rows = [" | ".join(name.ljust(w) for (name, _), w in zip(columns, widths, strict=True))]
        rows.append("-" * len(rows[0]))
        for i in range(len(columns[0][1]) if columns else 0):
            rows.append(
                " | ".join(
                    str(values[i]).ljust(w) for (_, values), w in zip(columns, widths, strict=True)
                )
            )
        rows.append(
            f"{get_human_readable_count(trainable_parameters).strip()} trainable, "
            f"{get_human_readable_count(total_parameters - trainable_parameters).strip()} frozen "
            f"parameters ({model_size:.1f} MB)"
        )
        log.info("model:\n%s", "\n".join(rows))

"""The network: it reads the state after the last real token, and its embedding is built as asked."""

import numpy as np
import pytest
import torch

from lstm_tweets.model import LSTMClassifier, TweetLSTMModule

VOCAB, DIM, HIDDEN = 30, 8, 12


def classifier(**kwargs) -> LSTMClassifier:
    torch.manual_seed(0)
    return LSTMClassifier(VOCAB, DIM, hidden_dim=HIDDEN, dropout=0.0, **kwargs).eval()


def padded(rows: list[list[int]], width: int) -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.zeros(len(rows), width, dtype=torch.int64)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row)
    return ids, torch.tensor([len(r) for r in rows], dtype=torch.int64)


ROWS = [[5, 9, 2, 7], [3, 11], [4, 4, 8, 20, 6, 1, 13]]


@pytest.mark.parametrize(
    "kwargs", [{}, {"bidirectional": True}, {"num_layers": 2, "bidirectional": True}]
)
@torch.no_grad()
def test_padding_does_not_change_the_output(kwargs):
    net = classifier(**kwargs)
    ids, lengths = padded(ROWS, width=15)
    batch = net(ids, lengths)
    for i, row in enumerate(ROWS):
        alone = net(*padded([row], width=len(row)))
        torch.testing.assert_close(batch[i], alone[0], rtol=0, atol=1e-6)
    # The padding is not ignored by accident: reading it as tokens changes the answer.
    as_tokens = net(ids, torch.full_like(lengths, ids.shape[1]))
    assert not torch.allclose(as_tokens, batch, atol=1e-4)


@torch.no_grad()
def test_output_is_the_head_of_the_state_after_the_last_real_token():
    net = classifier()
    ids, lengths = padded(ROWS, width=10)
    out = net(ids, lengths)
    for i, row in enumerate(ROWS):
        states, _ = net.lstm(net.embedding(torch.tensor([row])))
        torch.testing.assert_close(out[i], net.head(states[0, -1]), rtol=0, atol=1e-6)


@torch.no_grad()
def test_bidirectional_head_reads_both_directions():
    net = classifier(bidirectional=True)
    assert net.head.in_features == 2 * HIDDEN
    ids, lengths = padded(ROWS, width=10)
    out = net(ids, lengths)
    assert out.shape == (len(ROWS), 2)
    # The backward direction's final state is the one after reading the first token.
    row = ROWS[0]
    states, _ = net.lstm(net.embedding(torch.tensor([row])))
    state = torch.cat([states[0, -1, :HIDDEN], states[0, 0, HIDDEN:]])
    torch.testing.assert_close(out[0], net.head(state), rtol=0, atol=1e-6)


@torch.no_grad()
def test_count_features_widen_the_head_and_change_the_output():
    plain, with_counts = classifier(), classifier(n_count_features=2)
    assert plain.head.in_features == HIDDEN
    assert with_counts.head.in_features == HIDDEN + 2
    ids, lengths = padded(ROWS, width=10)
    low = with_counts(ids, lengths, torch.zeros(len(ROWS), 2))
    high = with_counts(ids, lengths, torch.full((len(ROWS), 2), 3.0))
    assert not torch.allclose(low, high)


def test_module_concat_counts_switches_the_count_features():
    on = TweetLSTMModule(VOCAB, DIM, hidden_dim=HIDDEN, concat_counts=True, n_count_features=2)
    off = TweetLSTMModule(VOCAB, DIM, hidden_dim=HIDDEN, concat_counts=False, n_count_features=2)
    assert on.net.head.in_features == HIDDEN + 2
    assert off.net.head.in_features == HIDDEN


@torch.no_grad()
def test_lengths_as_int64_tensor_are_accepted():
    net = classifier()
    ids, lengths = padded(ROWS, width=10)
    assert lengths.dtype == torch.int64
    # Lengths on the batch's device (CPU here) are moved to the CPU for packing, as required.
    out = net(ids, lengths.to(ids.device))
    assert out.shape == (len(ROWS), 2)
    assert torch.isfinite(out).all()


def test_embedding_starts_from_the_matrix():
    matrix = np.random.default_rng(0).normal(size=(VOCAB, DIM)).astype(np.float32)
    net = LSTMClassifier(VOCAB, DIM, hidden_dim=HIDDEN, embedding_matrix=matrix)
    np.testing.assert_array_equal(net.embedding.weight.detach().numpy(), matrix)
    with pytest.raises(ValueError, match="shape"):
        LSTMClassifier(VOCAB, DIM + 1, hidden_dim=HIDDEN, embedding_matrix=matrix)


def one_training_step(trainable: bool) -> tuple[torch.Tensor, TweetLSTMModule]:
    matrix = np.random.default_rng(1).normal(size=(VOCAB, DIM)).astype(np.float32)
    module = TweetLSTMModule(
        VOCAB,
        DIM,
        hidden_dim=HIDDEN,
        lr=0.1,
        embedding_matrix=matrix,
        trainable_embedding=trainable,
    )
    before = module.net.embedding.weight.detach().clone()
    optimizer = module.configure_optimizers()
    ids, lengths = padded(ROWS, width=10)
    batch = {"ids": ids, "lengths": lengths, "label": torch.tensor([0, 1, 1])}
    loss = torch.nn.functional.cross_entropy(module(batch), batch["label"])
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return before, module


def test_frozen_embedding_stays_put_while_the_rest_learns():
    before, module = one_training_step(trainable=False)
    assert module.net.embedding.weight.requires_grad is False
    torch.testing.assert_close(module.net.embedding.weight.detach(), before, rtol=0, atol=0)
    trainable = [name for name, p in module.named_parameters() if p.requires_grad]
    assert trainable and not any(name.startswith("net.embedding") for name in trainable)


def test_trainable_embedding_moves():
    before, module = one_training_step(trainable=True)
    assert module.net.embedding.weight.requires_grad is True
    assert not torch.allclose(module.net.embedding.weight.detach(), before)


def test_epoch_metrics_and_loss_equal_a_direct_pass_over_the_split():
    """The module collects each step's scores and losses and computes the epoch's metrics once:
    val/loss must be the mean cross-entropy over every validation sample (batches of unequal size
    weighted by their size) and val/acc the plain accuracy, as a direct pass computes them."""
    import pytorch_lightning as pl
    import torch.nn.functional as F
    from torch.utils.data import DataLoader

    generator = torch.Generator().manual_seed(0)
    samples = []
    for _ in range(70):  # batches of 32, 32 and 6: a plain mean of batch means would differ
        length = int(torch.randint(1, 7, (1,), generator=generator))
        ids = torch.randint(1, VOCAB, (6,), generator=generator)
        ids[length:] = 0
        label = int(ids[0] % 2)
        samples.append({"ids": ids, "lengths": torch.tensor(length), "label": torch.tensor(label)})

    def collate(rows):
        return {key: torch.stack([r[key] for r in rows]) for key in rows[0]}

    loader = DataLoader(samples, batch_size=32, collate_fn=collate)
    torch.manual_seed(0)
    module = TweetLSTMModule(VOCAB, DIM, hidden_dim=HIDDEN, dropout=0.0, lr=1e-2)
    trainer = pl.Trainer(
        max_epochs=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=1,
    )
    trainer.fit(module, train_dataloaders=loader, val_dataloaders=loader)
    module.eval()
    with torch.no_grad():
        batch = collate(samples)
        logits = module(batch)
    expected_loss = F.cross_entropy(logits, batch["label"])
    expected_acc = (logits.argmax(1) == batch["label"]).float().mean()
    metrics = trainer.callback_metrics
    torch.testing.assert_close(metrics["val/loss"], expected_loss, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(metrics["val/acc"], expected_acc)
    share = max(batch["label"].float().mean(), 1 - batch["label"].float().mean())
    torch.testing.assert_close(metrics["val/acc_lift"], expected_acc - share)
    # The training loss is logged per epoch and, on the logging steps, per step.
    assert {"train/loss_epoch", "train/loss_step", "train/acc"} <= set(metrics)

    # log_every_n_steps=0 (Lightning: no step logging) trains without a step loss.
    quiet = pl.Trainer(
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=0,
    )
    quiet.fit(module, train_dataloaders=loader, val_dataloaders=loader)
    assert "train/loss_epoch" in quiet.callback_metrics
    assert "train/loss_step" not in quiet.callback_metrics


@pytest.mark.parametrize("limit_train_batches", [1.0, 2])
def test_a_lightning_epoch_is_the_plain_loops_arithmetic(limit_train_batches):
    """Three epochs of the module under Lightning (gradient clipping, the epoch scheduler) end
    with the weights of a plain PyTorch loop: forward, zero_grad, backward, clip the gradient
    norm, step; the scheduler after each epoch's last batch (the loader's end or
    limit_train_batches). The benchmarks' plain-loop floors rest on this."""
    import copy

    import pytorch_lightning as pl
    import torch.nn.functional as F
    from torch.utils.data import DataLoader

    generator = torch.Generator().manual_seed(3)
    ids = torch.randint(1, VOCAB, (70, 6), generator=generator)
    lengths = torch.randint(1, 7, (70,), generator=generator)
    samples = [
        {"ids": i, "lengths": n, "label": torch.tensor(int(i[0] % 2))}
        for i, n in zip(ids, lengths, strict=True)
    ]

    def collate(rows):
        return {key: torch.stack([r[key] for r in rows]) for key in rows[0]}

    loader = DataLoader(samples, batch_size=32, collate_fn=collate)
    clip = 0.05
    step_lr = {"_target_": "torch.optim.lr_scheduler.StepLR", "step_size": 1, "gamma": 0.5}
    torch.manual_seed(0)
    module = TweetLSTMModule(VOCAB, DIM, hidden_dim=HIDDEN, dropout=0.0, lr=1e-2, scheduler=step_lr)

    def plain_loop(clip_val: float | None) -> torch.nn.Module:
        net = copy.deepcopy(module.net)
        optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
        batches = list(loader)[: 2 if limit_train_batches == 2 else None]
        for _ in range(3):
            for batch in batches:
                loss = F.cross_entropy(net(batch["ids"], batch["lengths"]), batch["label"])
                optimizer.zero_grad()
                loss.backward()
                if clip_val:
                    torch.nn.utils.clip_grad_norm_(net.parameters(), clip_val)
                optimizer.step()
            scheduler.step()
        return net

    expected, unclipped = plain_loop(clip), plain_loop(None)
    trainer = pl.Trainer(
        max_epochs=3,
        gradient_clip_val=clip,
        limit_train_batches=limit_train_batches,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, train_dataloaders=loader)
    batches_per_epoch = 2 if limit_train_batches == 2 else 3
    assert trainer.global_step == 3 * batches_per_epoch
    assert module.optimizers().param_groups[0]["lr"] == pytest.approx(1e-2 * 0.5**3)
    for name, value in expected.state_dict().items():
        torch.testing.assert_close(module.net.state_dict()[name], value, rtol=1e-5, atol=1e-6)
    # The clipping acted: without it the weights end elsewhere.
    assert not torch.allclose(module.net.head.weight, unclipped.head.weight, atol=1e-4)


def test_only_lightnings_hook_name_skips_nn_modules_setattr(monkeypatch):
    """`_current_fx_name`, which Lightning sets about 40 times a training step, is stored as a
    plain attribute; every other assignment still goes through nn.Module, so a submodule or
    parameter assigned after __init__ is registered as usual."""
    module = TweetLSTMModule(VOCAB, DIM, hidden_dim=HIDDEN)
    through_nn_module = []
    nn_module_setattr = torch.nn.Module.__setattr__

    def spy(self, name, value):
        if self is module:
            through_nn_module.append(name)
        nn_module_setattr(self, name, value)

    monkeypatch.setattr(torch.nn.Module, "__setattr__", spy)
    module._current_fx_name = "training_step"
    module.extra = torch.nn.Linear(2, 2)
    module.scale = torch.nn.Parameter(torch.ones(1))
    assert through_nn_module == ["extra", "scale"]
    assert module._current_fx_name == "training_step"
    assert "extra" in dict(module.named_children())
    assert "scale" in dict(module.named_parameters())

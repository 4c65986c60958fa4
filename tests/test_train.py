"""The training app end to end on the synthetic sample: outputs, learning, the shuffled-label
control, resuming, determinism, failures, and the Hydra command line."""

import json
import os
import signal
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from helpers import DESIGN_METRIC_KEYS, read_metrics, run_in_parallel
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from lstm_tweets import stats
from lstm_tweets.model import TweetLSTMModule
from lstm_tweets.train import train

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def tensorboard_events(output_dir: Path) -> EventAccumulator:
    """The run's TensorBoard events: <output_dir>/tensorboard/<cell>/ (one folder, the run)."""
    (folder,) = {p.parent for p in (output_dir / "tensorboard").rglob("events.out.tfevents.*")}
    events = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    events.Reload()
    return events


# ---- a finished run ----------------------------------------------------------------------------
def test_a_finished_run_writes_metrics_in_sane_ranges(tiny_run):
    cfg, output_dir, returned = tiny_run
    metrics = read_metrics(output_dir)
    assert DESIGN_METRIC_KEYS <= metrics.keys()
    assert metrics == json.loads(json.dumps(returned))  # the file holds what train() returned
    for key in (
        "test_accuracy",
        "test_f1",
        "test_auroc",
        "majority_accuracy",
        "p_value_vs_majority",
    ):
        assert 0.0 <= metrics[key] <= 1.0, key
    assert -1.0 <= metrics["test_mcc"] <= 1.0
    assert (
        metrics["test_accuracy_ci_low"]
        <= metrics["test_accuracy"]
        <= metrics["test_accuracy_ci_high"]
    )
    assert metrics["test_accuracy_wilson_low"] <= metrics["test_accuracy"]
    assert metrics["test_accuracy"] <= metrics["test_accuracy_wilson_high"]
    # The lift is over the majority predictor on the same tweets, and its interval holds it.
    lift = metrics["test_accuracy"] - metrics["majority_accuracy"]
    assert metrics["lift_vs_majority"] == pytest.approx(lift)
    assert metrics["lift_vs_majority_ci_low"] <= lift <= metrics["lift_vs_majority_ci_high"]
    assert 1 <= metrics["n_test_days"] < metrics["n_test"]  # several tweets a trading day
    assert (
        f"{metrics['n_test']} tweets ({metrics['n_test_days']} trading days)" in metrics["verdict"]
    )
    assert min(metrics["n_train"], metrics["n_val"], metrics["n_test"]) > 0
    assert metrics["n_train"] > metrics["n_val"]
    assert metrics["best_epoch"] in (0, 1)
    assert metrics["seed"] == cfg.seed == 42
    assert metrics["interval"] == cfg.data.interval == 5
    report = metrics["data_report"]
    assert (
        report["labeled"]
        == metrics["n_train"]
        + metrics["n_val"]
        + metrics["n_test"]
        + report["purged_at_split_boundaries"]
    )
    assert report["label_down"] + report["label_up"] == report["labeled"]
    assert json.loads((output_dir / "data_report.json").read_text()) == report


def test_a_finished_run_writes_checkpoints_predictions_and_summaries(tiny_run):
    _, output_dir, metrics = tiny_run
    assert (output_dir / "checkpoints" / "best.ckpt").is_file()
    assert (output_dir / "checkpoints" / "last.ckpt").is_file()
    predictions = pd.read_csv(output_dir / "predictions_test.csv")
    assert len(predictions) == metrics["n_test"]
    assert {"id", "created_at", "label", "predicted", "prob_0", "prob_1"} <= set(
        predictions.columns
    )
    assert ((predictions["prob_0"] + predictions["prob_1"]) - 1).abs().max() < 1e-5
    accuracy = (predictions["label"] == predictions["predicted"]).mean()
    assert accuracy == pytest.approx(metrics["test_accuracy"], abs=1e-12)
    split = json.loads((output_dir / "split_summary.json").read_text())
    assert "embedding_coverage" in split and split


def test_best_checkpoint_holds_weights_and_its_epochs_metrics_last_holds_full_state(tiny_run):
    _, output_dir, metrics = tiny_run
    best, last = (
        torch.load(output_dir / "checkpoints" / name, map_location="cpu", weights_only=True)
        for name in ("best.ckpt", "last.ckpt")
    )
    # best.ckpt serves the test and predict: no optimizer or callback state, the weights and the
    # metrics of its epoch, whose val/acc is the score the run reports as the chosen epoch's.
    assert "optimizer_states" not in best and "callbacks" not in best
    assert best["epoch"] == metrics["best_epoch"]
    assert best["metrics"]["val/acc"] == metrics["val_acc_best"]
    assert best["state_dict"].keys() == last["state_dict"].keys()
    # last.ckpt is what resuming needs: the optimizer's state travels with it.
    assert last["optimizer_states"] and "callbacks" in last


def test_a_finished_run_logs_to_tensorboard(tiny_run):
    cfg, output_dir, metrics = tiny_run
    # One TensorBoard run, named by the run's cell.
    assert list((output_dir / "tensorboard" / "interval=5,model=lstm,seed=42").glob("events.*"))
    events = tensorboard_events(output_dir)
    tags = events.Tags()
    val_acc = events.Scalars("val/acc")
    assert [e.step for e in val_acc] == sorted(e.step for e in val_acc)
    assert len(val_acc) == cfg.trainer.max_epochs  # one value per epoch
    assert max(e.value for e in val_acc) == pytest.approx(metrics["val_acc_best"], abs=1e-6)
    assert "train/loss_epoch" in tags["scalars"]
    assert events.Scalars("test/acc")[-1].value == pytest.approx(metrics["test_accuracy"], abs=1e-6)
    assert "test/confusion_matrix" in tags["images"]
    assert events.Images("test/confusion_matrix")[-1].encoded_image_string.startswith(b"\x89PNG")
    hparams = events.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(hparams["_hparams_/session_start_info"])
    logged = start.session_start_info.hparams
    assert logged["model.hidden_dim"].number_value == cfg.model.hidden_dim
    assert logged["data.interval"].number_value == cfg.data.interval


# ---- learning and the leak control --------------------------------------------------------------
def test_debug_overfit_memorizes_64_samples(compose_train, tmp_path):
    # debug=overfit: the same 2 batches of 32 every epoch, no dropout, a high learning rate.
    cfg = compose_train(tmp_path, "debug=overfit", "data.batch_size=32", short=False)
    assert cfg.trainer.overfit_batches == 2
    train(cfg)
    train_acc = tensorboard_events(tmp_path).Scalars("train/acc")
    assert len(train_acc) == cfg.trainer.max_epochs
    assert train_acc[0].value < 0.8  # it starts near chance...
    assert train_acc[-1].value >= 0.95  # ...and ends having memorized the 64 samples


def test_shuffled_train_labels_do_not_beat_a_constant_guess(compose_train, tmp_path):
    cfg = compose_train(
        tmp_path,
        "data.shuffle_train_labels=true",
        "data.batch_size=64",
        "model.lr=3e-3",
        "trainer.max_epochs=3",
        "++trainer.limit_train_batches=1.0",
        "++trainer.limit_val_batches=1.0",
        short=False,
    )
    metrics = train(cfg)
    n = metrics["n_test"]
    # The train majority applied to test, and the better of the two constant guesses: a model
    # trained on noise may settle on either class.
    majority_low, majority_high = stats.wilson_interval(round(metrics["majority_accuracy"] * n), n)
    best_constant = max(metrics["majority_accuracy"], 1 - metrics["majority_accuracy"])
    _, constant_high = stats.wilson_interval(round(best_constant * n), n)
    assert metrics["test_accuracy"] <= constant_high
    assert metrics["test_accuracy"] >= majority_low - 0.05  # not worse than chance either
    assert stats.binomial_p_value(round(metrics["test_accuracy"] * n), n, best_constant) > 0.05
    # Ranking the test tweets is no better than chance (the null sd of AUROC here is about 0.02).
    assert abs(metrics["test_auroc"] - 0.5) < 0.06


# ---- resuming and determinism -------------------------------------------------------------------
RESUMABLE = [
    "trainer.max_epochs=4",
    "++trainer.limit_train_batches=8",
    "++trainer.limit_val_batches=1.0",
    "model.lr=1e-2",  # with these, the best validation epoch (3) falls after the resume point
    "model.scheduler.step_size=1",  # the learning rate changes every epoch: its state must resume
]


@pytest.fixture(scope="module")
def uninterrupted(compose_train, tmp_path_factory) -> Path:
    output_dir = tmp_path_factory.mktemp("uninterrupted")
    train(compose_train(output_dir, *RESUMABLE))
    return output_dir


def comparable(output_dir: Path) -> dict:
    metrics = read_metrics(output_dir)
    metrics.pop("wall_time_s")
    return metrics


def test_same_seed_gives_identical_metrics(uninterrupted, compose_train, tmp_path):
    train(compose_train(tmp_path, *RESUMABLE))
    assert comparable(tmp_path) == comparable(uninterrupted)
    assert (tmp_path / "predictions_test.csv").read_bytes() == (
        uninterrupted / "predictions_test.csv"
    ).read_bytes()


def test_resumed_run_matches_an_uninterrupted_one(uninterrupted, compose_train, tmp_path):
    first = train(compose_train(tmp_path, *RESUMABLE, "trainer.max_epochs=2"))
    assert first["epochs_trained"] == 2
    last = tmp_path / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True)["epoch"] == 1  # the last epoch, not the best one
    resumed = train(compose_train(tmp_path, *RESUMABLE, f"ckpt_path={last}"))
    reference = read_metrics(uninterrupted)
    assert resumed["epochs_trained"] == reference["epochs_trained"] == 4
    for key in ("test_accuracy", "test_auroc", "test_loss", "val_acc_best", "best_epoch"):
        assert resumed[key] == reference[key], key
    predictions = pd.read_csv(tmp_path / "predictions_test.csv")
    pd.testing.assert_frame_equal(predictions, pd.read_csv(uninterrupted / "predictions_test.csv"))
    # The resumed epochs themselves, not only the test: same validation losses, same final weights.
    val_loss = [e.value for e in tensorboard_events(uninterrupted).Scalars("val/loss")]
    resumed_val_loss = [e.value for e in tensorboard_events(tmp_path).Scalars("val/loss")]
    assert resumed_val_loss[-2:] == val_loss[-2:]
    weights = torch.load(uninterrupted / "checkpoints" / "last.ckpt", weights_only=True)[
        "state_dict"
    ]
    resumed_weights = torch.load(last, weights_only=True)["state_dict"]
    assert weights.keys() == resumed_weights.keys()
    for name, tensor in weights.items():
        assert torch.equal(tensor, resumed_weights[name]), name


# ---- failures -----------------------------------------------------------------------------------
@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_an_interrupted_run_leaves_no_metrics(error, compose_train, tmp_path, monkeypatch):
    (tmp_path / "metrics.json").write_text('{"stale": "from an earlier run in this folder"}')

    def fail_in_second_epoch(self):
        if self.current_epoch == 1:
            raise error("interrupted mid-fit")

    monkeypatch.setattr(TweetLSTMModule, "on_train_epoch_end", fail_in_second_epoch)
    handler = signal.getsignal(signal.SIGINT)
    try:
        # Lightning turns Ctrl+C into a graceful shutdown and exit(1).
        with pytest.raises(SystemExit if error is KeyboardInterrupt else RuntimeError):
            train(compose_train(tmp_path, "trainer.max_epochs=3"))
    finally:
        signal.signal(signal.SIGINT, handler)  # Lightning ignores further Ctrl+C after one
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()  # it did get into training
    assert not (tmp_path / "metrics.json").exists()


def test_selecting_on_a_test_metric_is_refused(compose_train, tmp_path):
    output_dir = tmp_path / "run"
    with pytest.raises(ValueError, match="never on test"):
        train(compose_train(output_dir, "optimized_metric=test/acc"))
    assert not output_dir.exists()  # refused before anything ran


# ---- the Hydra app on the command line ---------------------------------------------------------
@pytest.fixture(scope="module")
def command_lines(cache_dir, tmp_path_factory) -> dict:
    """Both command lines at once (each spends most of its time importing torch)."""
    run_dir = tmp_path_factory.mktemp("cli") / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LSTM_TWEETS_ROOT": str(run_dir.parent)}
    train_bin = str(BIN / "lstm-tweets-train")
    commands = {
        "fdr": [
            train_bin,
            "debug=fdr",
            f"hydra.run.dir={run_dir}",
            f"paths.cache_dir={cache_dir}",
            "embedding=random",
            "model.hidden_dim=16",
        ],
        "typo": [train_bin, "data.intervall=5", f"hydra.run.dir={run_dir.parent / 'typo'}"],
    }
    results = run_in_parallel(commands, cwd=ROOT, env=env)
    results["run_dir"] = run_dir
    return results


def test_command_line_debug_fdr_runs(command_lines):
    result, run_dir = command_lines["fdr"], command_lines["run_dir"]
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = read_metrics(run_dir)
    assert DESIGN_METRIC_KEYS <= metrics.keys()
    assert (run_dir / ".hydra" / "config.yaml").is_file()
    assert "debug" in (run_dir / ".hydra" / "config.yaml").read_text()


def test_command_line_typo_fails_with_hydra_message(command_lines):
    result = command_lines["typo"]
    assert result.returncode != 0
    assert "intervall" in result.stderr
    assert "Traceback" not in result.stderr  # Hydra's message, not a crash in training
    assert not (command_lines["run_dir"].parent / "typo" / "metrics.json").exists()


def test_a_progress_bar_only_where_the_config_has_one(compose_train, tmp_path):
    """`callbacks.rich_progress_bar=null` means no bar (Lightning would otherwise add its default
    one, whose refresh thread slows the job beside it in a parallel study)."""
    from pytorch_lightning.callbacks import RichProgressBar

    from lstm_tweets.train import make_trainer

    # QUIET_RUN sets rich_progress_bar=null and enable_progress_bar=false; drop the latter.
    cfg = compose_train(tmp_path, "~trainer.enable_progress_bar")
    assert make_trainer(cfg).trainer.progress_bar_callback is None
    cfg = compose_train(
        tmp_path,
        "~trainer.enable_progress_bar",
        "++callbacks.rich_progress_bar={_target_:pytorch_lightning.callbacks.RichProgressBar}",
    )
    assert isinstance(make_trainer(cfg).trainer.progress_bar_callback, RichProgressBar)


def test_deterministic_trainer_keeps_its_algorithms_but_not_the_nan_fill(compose_train, tmp_path):
    """`trainer.deterministic=true` keeps torch's deterministic algorithms; the NaN fill of new
    tensors (a debugging aid that changes no result) is turned off for speed."""
    import torch.utils.deterministic

    from lstm_tweets.train import make_trainer

    torch.utils.deterministic.fill_uninitialized_memory = True
    try:
        make_trainer(compose_train(tmp_path, "trainer.deterministic=true"))
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.utils.deterministic.fill_uninitialized_memory is False
    finally:
        torch.use_deterministic_algorithms(False)
        torch.utils.deterministic.fill_uninitialized_memory = True

"""What a person sees: one-line config errors (exit code 2, nothing left behind), a quiet console,
the multirun summary, and TensorBoard's HParams and scalars as TensorBoard's own reader finds
them in real event files."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import pytest
from helpers import run_in_parallel
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from lstm_tweets import cells
from lstm_tweets.config_check import CHOICES, ConfigError, check_config
from lstm_tweets.data.errors import DataError

ROOT = Path(__file__).resolve().parents[1]
TRAIN = str(Path(sys.executable).parent / "lstm-tweets-train")

# The twelve bad configs of the issue: overrides -> what the one line must say.
BAD_CONFIGS = {
    "interval_negative": (["data.interval=-5"], ["data.interval=-5", "whole number >= 1"]),
    "interval_text": (["data.interval=abc"], ["data.interval='abc'", "whole number >= 1"]),
    "vocab_size_zero": (["data.vocab_size=0"], ["data.vocab_size=0", ">= 2", "<pad>"]),
    "max_length_zero": (["data.max_length=0"], ["data.max_length=0", ">= 1"]),
    "hidden_dim_zero": (["model.hidden_dim=0"], ["model.hidden_dim=0", ">= 1"]),
    "archive_tweets_missing": (
        ["data=archive", "data.tweets_path=/nonexistent.csv"],
        ["data.tweets_path=/nonexistent.csv: file not found", "data.prices_path is not set"],
    ),
    "archive_without_paths": (
        ["data=archive"],
        ["data.tweets_path is not set", "data.prices_path is not set", "data=archive needs"],
    ),
    "vectors_missing": (
        ["embedding=pretrained", "embedding.path=/nonexistent.bin"],
        ["embedding.path=/nonexistent.bin: file not found"],
    ),
    "vectors_wrong_dim": (
        ["embedding=pretrained", "embedding.path={vectors}", "embedding.dim=50"],
        ["embedding.dim=50", "20-dimensional", "set embedding.dim=20"],
    ),
    "checkpoint_missing": (
        ["ckpt_path=/nonexistent.ckpt"],
        ["ckpt_path=/nonexistent.ckpt: checkpoint not found"],
    ),
    "max_epochs_negative": (["trainer.max_epochs=-3"], ["trainer.max_epochs=-3", "or -1"]),
    "dropout_above_one": (["model.dropout=1.5"], ["model.dropout=1.5", "from 0 to 1"]),
}
# Tiny jobs for the multiruns below (two epochs, so that the epoch chart has two points).
TINY = [
    "trainer.max_epochs=2",
    "++trainer.limit_train_batches=3",
    "++trainer.limit_val_batches=2",
    "++trainer.log_every_n_steps=1",
    "++trainer.enable_progress_bar=false",
    "callbacks.rich_progress_bar=null",
    "embedding=random",
    "embedding.dim=8",
    "model.hidden_dim=8",
    "data.batch_size=32",
]
NOISE = ["💡", "litlogger", "litmodels", "GPU available", "TPU available", "FLOPs", "vocab has"]


@pytest.fixture(scope="module")
def vectors_20d(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("vectors") / "vectors20.txt"
    words = ["deal", "jobs", "great", "the", "tariffs"]
    path.write_text("".join(f"{w} " + " ".join(["0.1"] * 20) + "\n" for w in words))
    return path


@pytest.fixture(scope="module")
def console(tmp_path_factory, cache_dir) -> dict:
    """The command lines of this file, all at once (each pays its interpreter start alone): one
    bad config end to end, a two-job multirun that trains, and a two-job multirun of bad configs."""
    root = tmp_path_factory.mktemp("console")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LSTM_TWEETS_ROOT": str(root / "root")}
    env.pop("HYDRA_FULL_ERROR", None)
    log_dir = root / "logs"
    common = [f"paths.log_dir={log_dir}", f"paths.cache_dir={cache_dir}", *TINY]
    commands = {
        "bad_config": [TRAIN, "model.dropout=1.5", f"hydra.run.dir={root / 'bad'}"],
        "multirun": [TRAIN, "-m", "experiment=comparison", "data.interval=5,10", "seed=1", *common],
        "failing_multirun": [TRAIN, "-m", "study=failing", "model.dropout=1.5,2.0", *common],
    }
    results = run_in_parallel(commands, cwd=ROOT, env=env)
    results["root"], results["log_dir"] = root, log_dir
    return results


def hydra_main(argv: list[str], monkeypatch) -> int | None:
    """`lstm-tweets-train <argv>` in this process (a fresh interpreter would spend longer starting
    than these runs take); the exit code, None if it returned."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    from lstm_tweets import train as app

    monkeypatch.setattr(sys, "argv", ["lstm-tweets-train", *argv])
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    GlobalHydra.instance().clear()
    try:
        app.main()
    except SystemExit as exited:
        return exited.code
    finally:
        GlobalHydra.instance().clear()
        HydraConfig.instance().cfg = None
        root.handlers[:] = handlers
        root.setLevel(level)
    return None


# ---- the twelve bad configs ---------------------------------------------------------------------
@pytest.mark.parametrize("name", list(BAD_CONFIGS))
def test_a_bad_config_gives_one_line_and_exit_code_2(
    name, vectors_20d, tmp_path, monkeypatch, capfd
):
    overrides, expected = BAD_CONFIGS[name]
    run_dir = tmp_path / "run"
    argv = [*(o.format(vectors=vectors_20d) for o in overrides), f"hydra.run.dir={run_dir}"]
    assert hydra_main(argv, monkeypatch) == 2
    out, err = capfd.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and "Traceback" not in err
    for part in expected:
        assert part in lines[0], lines[0]
    assert sorted(p.name for p in run_dir.iterdir()) == [".hydra", "train.log"]
    assert lines[0].removeprefix("error: ") in (run_dir / "train.log").read_text()


def test_a_bad_config_on_the_command_line(console):
    """The console script itself: exit code 2, one line on stderr, nothing on stdout, no files."""
    result = console["bad_config"]
    assert result.returncode == 2, result.stderr[-3000:]
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "error: model.dropout=1.5: expected a number from 0 to 1 (excluding 1)"
    ]
    assert sorted(p.name for p in (console["root"] / "bad").iterdir()) == [".hydra", "train.log"]


def test_the_config_check_accepts_every_default(compose_train, tmp_path):
    check_config(compose_train(tmp_path))  # no error
    check_config(compose_train(tmp_path, "hparams_search=optuna", "optimized_metric=val/acc"))


def test_the_config_check_names_every_problem_on_one_line(compose_train, tmp_path):
    cfg = compose_train(tmp_path, "data.batch_size=0", "model.lr=-1", "data.ties=maybe")
    with pytest.raises(ConfigError) as raised:
        check_config(cfg)
    message = str(raised.value)
    assert "\n" not in message
    assert "data.batch_size=0" in message and "model.lr=-1" in message
    assert "data.ties='maybe': expected one of drop, down, class" in message
    assert isinstance(raised.value, DataError)  # bad input, as the other CLIs report it


def test_the_config_check_refuses_test_metrics(compose_train, tmp_path):
    with pytest.raises(ConfigError, match="never on test"):
        check_config(compose_train(tmp_path, "optimized_metric=[val/acc_lift,test/acc]"))


def test_allowed_values_are_the_codes_own():
    from lstm_tweets.baselines import BASELINES
    from lstm_tweets.data.embeddings import KINDS
    from lstm_tweets.data.labels import TIES, WINDOW_STARTS
    from lstm_tweets.data.sources import SOURCES
    from lstm_tweets.data.split import SPLITS

    assert set(CHOICES["data.source"]) == set(SOURCES)
    assert set(CHOICES["data.window_start"]) == set(WINDOW_STARTS)
    assert set(CHOICES["data.ties"]) == set(TIES)
    assert set(CHOICES["data.split"]) == set(SPLITS)
    assert set(CHOICES["embedding.kind"]) == set(KINDS)
    assert set(CHOICES["model.baseline"]) == set(BASELINES)


# ---- errors in the Hydra app, in this process ----------------------------------------------------
def run_main(monkeypatch, tmp_path, error: BaseException):
    """`lstm-tweets-train` in this process with `train` replaced by one that raises `error`."""
    from lstm_tweets import train as app

    def failing(cfg):
        raise error

    monkeypatch.setattr(app, "train", failing)
    return hydra_main([f"hydra.run.dir={tmp_path / 'run'}"], monkeypatch)


def test_bad_data_found_late_is_one_line_too(monkeypatch, tmp_path, capfd):
    code = run_main(monkeypatch, tmp_path, DataError("tweets.csv: row 7: created_at='soon'"))
    err = capfd.readouterr().err
    assert code == 2
    assert err.splitlines() == ["error: tweets.csv: row 7: created_at='soon'"]


def test_an_internal_error_keeps_its_traceback(monkeypatch, tmp_path, capfd):
    code = run_main(monkeypatch, tmp_path, RuntimeError("an internal bug"))
    err = capfd.readouterr().err
    assert code == 1
    assert "an internal bug" in err and "Traceback" in err


# ---- the multirun summary --------------------------------------------------------------------------
def only_sweep(log_dir: Path, study: str) -> Path:
    (sweep,) = (log_dir / "multiruns" / study).iterdir()
    return sweep


def test_a_multirun_ends_with_its_summary(console):
    result = console["multirun"]
    assert result.returncode == 0, result.stderr[-3000:]
    sweep = only_sweep(console["log_dir"], "comparison")
    summary = result.stdout[result.stdout.index("Multirun done") :].splitlines()
    assert summary[0] == "Multirun done: 2 jobs, 2 finished, 0 failed"
    assert summary[1] == f"Sweep folder: {sweep}"
    assert summary[2].split() == ["job", "cell", "test", "acc", "lift", "val/acc_lift", "wall"]
    for row, cell in zip(summary[3:5], ["interval=5,seed=1", "interval=10,seed=1"], strict=True):
        job, name, accuracy, lift, val, wall, unit = row.split()
        assert (name, unit) == (cell, "s")
        assert 0 <= float(accuracy) <= 1 and lift.startswith(("+", "-"))
    assert summary[5].startswith("Report: lstm-tweets-report comparison --all")
    assert "make report" in summary[5]
    assert summary[6] == f"TensorBoard: tensorboard --logdir {sweep}"


def test_a_multirun_that_failed_on_bad_input_says_why(console):
    result = console["failing_multirun"]
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1].startswith("error: model.dropout=")
    summary = result.stdout[result.stdout.index("Multirun done") :].splitlines()
    assert summary[0] == "Multirun done: 2 jobs, 0 finished, 2 failed"
    rows = [line for line in summary if "FAILED" in line]
    assert len(rows) == 2
    assert "dropout=1.5" in rows[0] and "FAILED: model.dropout=1.5: expected a number" in rows[0]
    assert "dropout=2.0" in rows[1] or "dropout=2" in rows[1]


def test_a_multirun_is_quiet(console):
    result = console["multirun"]
    output = result.stdout + result.stderr
    for noise in NOISE:
        assert noise not in output, noise
    device_lines = [line for line in output.splitlines() if "Training lstm (" in line]
    assert len(device_lines) == 2 and all("cpu x1" in line for line in device_lines)


# ---- TensorBoard, read with TensorBoard's own event reader -------------------------------------------
def event_dir(job: Path) -> Path:
    (folder,) = {p.parent for p in (job / "tensorboard").rglob("events.out.tfevents.*")}
    return folder


def read_events(folder: Path) -> EventAccumulator:
    events = EventAccumulator(str(folder), size_guidance={"scalars": 0, "tensors": 0})
    events.Reload()
    return events


def hparams_of(events: EventAccumulator):
    content = events.PluginTagToContent("hparams")
    data = plugin_data_pb2.HParamsPluginData
    start = data.FromString(content["_hparams_/session_start_info"]).session_start_info
    experiment = data.FromString(content["_hparams_/experiment"]).experiment
    return start, experiment


def test_a_multirun_names_its_tensorboard_runs_by_cell(console):
    sweep = only_sweep(console["log_dir"], "comparison")
    names = sorted(event_dir(job).name for job in sweep.iterdir() if job.name.isdigit())
    assert names == ["interval=10,seed=1", "interval=5,seed=1"]
    assert {event_dir(job).parent.name for job in sweep.iterdir() if job.name.isdigit()} == {
        "tensorboard"
    }


def test_a_multirun_logs_its_own_knobs_and_named_test_metrics(console):
    sweep = only_sweep(console["log_dir"], "comparison")
    for job in (sweep / "0", sweep / "1"):
        start, experiment = hparams_of(read_events(event_dir(job)))
        keys = list(start.hparams)
        assert len(keys) <= 30 and len(set(keys)) == len(keys)
        assert {"data.interval", "seed", "model", "model.hidden_dim", "model.lr"} <= set(keys)
        assert not [k for k in keys if "_target_" in k or "path" in k or k.startswith("hydra")]
        assert "model.optimizer.lr" not in keys and not [
            k for k in keys if k.startswith("data.embedding")
        ]
        assert start.hparams["model.hidden_dim"].number_value == 8
        # The swept keys are the columns that differ, which the HParams dashboard shows first.
        assert {h.name for h in experiment.hparam_infos if h.differs} == {"data.interval", "seed"}
        assert start.group_name.startswith(event_dir(job).name)
        metrics = [m.name.tag for m in experiment.metric_infos]
        assert {"test/acc", "test/acc_lift", "test/lift_vs_majority", "val/acc_best"} <= set(
            metrics
        )
        assert all(m.startswith(("test/", "val/")) for m in metrics)


def test_every_hparams_metric_has_its_scalar(console):
    sweep = only_sweep(console["log_dir"], "comparison")
    events = read_events(event_dir(sweep / "0"))
    _, experiment = hparams_of(events)
    scalars = set(events.Tags()["scalars"])
    for metric in experiment.metric_infos:
        assert metric.name.tag in scalars, metric.name.tag
    metrics = __import__("json").loads((sweep / "0" / "metrics.json").read_text())
    assert events.Scalars("test/acc")[-1].value == pytest.approx(metrics["test_accuracy"], abs=1e-6)
    assert events.Scalars("test/lift_vs_majority")[-1].value == pytest.approx(
        metrics["lift_vs_majority"], abs=1e-6
    )


def test_scalars_sit_in_train_val_test_groups_with_a_true_epoch_chart(console):
    sweep = only_sweep(console["log_dir"], "comparison")
    events = read_events(event_dir(sweep / "0"))
    tags = events.Tags()["scalars"]
    assert {t.split("/")[0] for t in tags} == {"train", "val", "test"}
    # Epoch against step: a staircase from 0 to the last epoch, one point per logged step, none
    # dropped (the one test after training logs no epoch).
    epochs = events.Scalars("train/epoch")
    steps, values = [e.step for e in epochs], [e.value for e in epochs]
    assert steps == sorted(set(steps)) and values == sorted(values)
    assert (values[0], values[-1]) == (0, 1)
    val_steps = [e.step for e in events.Scalars("val/acc")]
    assert len(val_steps) == 2 and set(val_steps) <= set(steps)
    assert {e.step for t in tags if t.startswith("test/") for e in events.Scalars(t)} == {0}


# ---- cells and quiet logging, in this process ---------------------------------------------------------
def test_a_single_run_is_named_by_interval_model_and_seed(compose_train, tmp_path):
    cfg = compose_train(tmp_path)
    name, group, keys = cells.run_identity(cfg)
    assert name == group == "interval=5,model=lstm,seed=42"
    assert keys == ["data.interval", "model", "seed"]
    values = cells.hparams(cfg, first=keys)
    assert list(values)[:3] == keys and values["embedding"] == "random"


def test_cell_names_are_short_and_safe():
    assert cells.short_names(["data.interval", "model", "model.lr", "model.optimizer.lr"]) == {
        "data.interval": "interval",
        "model": "model",
        "model.lr": "model.lr",
        "model.optimizer.lr": "model.optimizer.lr",
    }
    assert cells.cell_name({"path": "/a b/c.txt", "lr": "0.001"}) == "path=_a_b_c.txt,lr=0.001"


def test_verbose_brings_lightning_back_and_quiet_drops_it():
    import pytorch_lightning  # noqa: F401  (it sets its own level when imported)

    from lstm_tweets.train import set_verbosity

    try:
        set_verbosity(False)
        assert not logging.getLogger("pytorch_lightning").isEnabledFor(logging.INFO)
        assert not logging.getLogger("lstm_tweets.data.text").isEnabledFor(logging.INFO)
        assert logging.getLogger("lstm_tweets.train").isEnabledFor(logging.INFO)
        set_verbosity(True)
        assert logging.getLogger("pytorch_lightning.utilities.rank_zero").isEnabledFor(logging.INFO)
        assert logging.getLogger("lstm_tweets.data.text").isEnabledFor(logging.INFO)
        assert not logging.getLogger("pytorch_lightning").isEnabledFor(logging.DEBUG)
    finally:
        set_verbosity(False)


def test_the_verbose_model_table_has_no_flops_column(caplog):
    from lstm_tweets.callbacks import ParameterTable

    data = [
        (" ", ["0"]),
        ("Name", ["net"]),
        ("Type", ["LSTMClassifier"]),
        ("Params", ["370 K"]),
        ("FLOPs", ["0"]),
    ]
    with caplog.at_level(logging.INFO, logger="lstm_tweets.train"):
        ParameterTable.summarize(data, 370_000, 370_000, 1.48, {"train": 24, "eval": 0}, 0)
    assert "LSTMClassifier" in caplog.text and "370 K" in caplog.text
    assert "FLOPs" not in caplog.text and "Flops" not in caplog.text

"""Scoring new tweets from a checkpoint alone: the command line in a fresh process, and the same
scores as the trained LightningModule gives in this one."""

import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import run_in_parallel

from lstm_tweets.model import TweetLSTMModule
from lstm_tweets.predict import load_predictor, main, predict_proba
from lstm_tweets.train import build

PREDICT = str(Path(sys.executable).parent / "lstm-tweets-predict")
TEXTS = ["Tariffs on China, a total disaster!", "Record jobs and a booming economy"]
CSV_ROWS = pd.DataFrame(
    {
        "text": ["Great deal with Japan, tremendous growth", "Witch hunt!", ""],
        "retweet_count": [25_000, 3, 0],
        "favorite_count": [90_000, 10, 0],
    }
)


def module_scores(cfg, checkpoint: Path, texts, retweets=None, favorites=None) -> torch.Tensor:
    """P(up) from the LightningModule itself, with the vocabulary rebuilt from the training data."""
    datamodule = build(cfg.data, _convert_="all")
    datamodule.setup("fit")
    module = TweetLSTMModule.load_from_checkpoint(
        checkpoint, map_location="cpu", weights_only=False
    ).eval()
    ids, lengths, counts = datamodule.features.encode_texts(texts, retweets, favorites)
    with torch.no_grad():
        return module({"ids": ids, "lengths": lengths, "counts": counts}).softmax(dim=1)[:, 1]


@pytest.fixture(scope="module")
def command_lines(tiny_run, tmp_path_factory) -> dict:
    """Two fresh processes at once (each spends most of its time importing torch): --text and a
    plain-text --file, then a CSV --file with counts and --output."""
    _, output_dir, _ = tiny_run
    folder = tmp_path_factory.mktemp("predict")
    (folder / "tweets.txt").write_text("Witch hunt!\nGreat deal with Japan\n")
    CSV_ROWS.to_csv(folder / "tweets.csv", index=False)
    checkpoint = str(output_dir / "checkpoints" / "best.ckpt")
    commands = {
        "text": [
            PREDICT,
            "--checkpoint",
            checkpoint,
            *(a for t in [*TEXTS, ""] for a in ("--text", t)),
            "--file",
            str(folder / "tweets.txt"),
        ],
        "csv": [
            PREDICT,
            "--checkpoint",
            checkpoint,
            "--file",
            str(folder / "tweets.csv"),
            "--output",
            str(folder / "scores.csv"),
        ],
    }
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    results = run_in_parallel(commands, env=env)
    results["scores_csv"] = folder / "scores.csv"
    return results


def printed_scores(stdout: str) -> list[float]:
    rows = [line for line in stdout.splitlines() if line.strip()]
    assert rows[0].split() == ["text", "p_up"]
    return [float(line.split()[-1]) for line in rows[1:]]


def test_command_line_scores_texts_and_a_text_file(command_lines, tiny_run):
    cfg, output_dir, _ = tiny_run
    result = command_lines["text"]
    assert result.returncode == 0, result.stderr[-3000:]
    scores = printed_scores(result.stdout)
    texts = [*TEXTS, "", "Witch hunt!", "Great deal with Japan"]
    assert len(scores) == len(texts)  # one per --text, then one per line of the file
    assert all(0.0 <= s <= 1.0 for s in scores)
    expected = module_scores(cfg, output_dir / "checkpoints" / "best.ckpt", texts)
    torch.testing.assert_close(
        torch.tensor(scores), expected, rtol=0, atol=6e-5
    )  # printed to 4 places


def test_command_line_scores_a_csv_with_counts_into_a_file(command_lines, tiny_run):
    cfg, output_dir, _ = tiny_run
    result = command_lines["csv"]
    assert result.returncode == 0, result.stderr[-3000:]
    assert "p_up" not in result.stdout  # written to --output instead
    scores = pd.read_csv(command_lines["scores_csv"], keep_default_na=False)
    assert list(scores.columns) == ["text", "p_up"]
    assert scores["text"].tolist() == CSV_ROWS["text"].tolist()
    expected = module_scores(
        cfg,
        output_dir / "checkpoints" / "best.ckpt",
        CSV_ROWS["text"].tolist(),
        CSV_ROWS["retweet_count"].to_numpy(),
        CSV_ROWS["favorite_count"].to_numpy(),
    )
    torch.testing.assert_close(
        torch.tensor(scores["p_up"].to_numpy()), expected.double(), rtol=0, atol=6e-5
    )
    # The run used count features: the CSV's counts reached the model.
    without_counts = module_scores(
        cfg, output_dir / "checkpoints" / "best.ckpt", CSV_ROWS["text"].tolist()
    )
    assert not torch.allclose(expected[:1], without_counts[:1], atol=1e-4)


@pytest.mark.parametrize("name", ["best.ckpt", "last.ckpt"])
def test_in_process_predictor_matches_the_module(name, tiny_run):
    cfg, output_dir, _ = tiny_run
    checkpoint = output_dir / "checkpoints" / name
    net, features, _ = load_predictor(checkpoint)
    texts = CSV_ROWS["text"].tolist()
    retweets, favorites = (
        CSV_ROWS["retweet_count"].to_numpy(),
        CSV_ROWS["favorite_count"].to_numpy(),
    )
    probs = predict_proba(net, features, texts, retweets, favorites)
    assert probs.shape == (len(texts), 2)
    torch.testing.assert_close(probs.sum(dim=1), torch.ones(len(texts)))
    expected = module_scores(cfg, checkpoint, texts, retweets, favorites)
    torch.testing.assert_close(probs[:, 1], expected, rtol=0, atol=1e-6)


def test_empty_text_is_scored_as_one_unknown_token(tiny_run):
    _, output_dir, _ = tiny_run
    net, features, _ = load_predictor(output_dir / "checkpoints" / "best.ckpt")
    ids, lengths, _ = features.encode_texts(["", "qqqzzx"])
    assert lengths.tolist() == [1, 1] and ids[:, 0].tolist() == [1, 1]  # <unk> is id 1
    empty, unknown, known = predict_proba(net, features, ["", "qqqzzx", "tariffs disaster"])
    torch.testing.assert_close(empty, unknown, rtol=0, atol=1e-6)
    assert not torch.allclose(empty, known)


def write_plain_dict(path: Path) -> None:
    torch.save({"state_dict": {"weight": torch.zeros(2)}, "epoch": 3}, path)


def write_text(path: Path) -> None:
    path.write_text("not a checkpoint\n")


def write_other_lightning_checkpoint(path: Path) -> None:
    # Looks like a Lightning checkpoint, but of another model: no datamodule state.
    torch.save({"state_dict": {}, "hyper_parameters": {"lr": 0.1}, "epoch": 0}, path)


@pytest.mark.parametrize("write", [write_plain_dict, write_text, write_other_lightning_checkpoint])
def test_a_foreign_checkpoint_exits_2_with_a_clear_message(write, tmp_path, capsys):
    checkpoint = tmp_path / "foreign.ckpt"
    write(checkpoint)
    assert main(["--checkpoint", str(checkpoint), "--text", "hello"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(checkpoint) in err
    assert "Traceback" not in err


def test_missing_checkpoint_and_nothing_to_score_exit_2(tiny_run, tmp_path, capsys):
    _, output_dir, _ = tiny_run
    assert main(["--checkpoint", str(tmp_path / "nope.ckpt"), "--text", "x"]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
    assert main(["--checkpoint", str(output_dir / "checkpoints" / "best.ckpt")]) == 2
    assert "nothing to score" in capsys.readouterr().err


# ---- checkpoints in the layout written before the data stages were split ----------------------
# The datamodule's state as checkpoints have stored it under "TweetDataModule" (these exact keys;
# checkpoints from before the activity targets lack window_start, target and thresholds).
OLD_STATE = {
    "vocab": {
        "itos": ["<pad>", "<unk>", "deal", "tariffs", "jobs", "<url>"],
        "counts": [0, 3, 9, 7, 5, 2],
    },
    "tokenizer": {"lowercase": True, "replace_urls": True, "replace_mentions": True},
    "max_length": 5,
    "count_mean": [2.0, 3.0],
    "count_std": [0.5, 2.0],
    "num_classes": 2,
    "interval": 15,
    "window_start": "after_tweet",
    "ties": "drop",
    "target": "direction",
    "thresholds": None,
}
OLD_HPARAMS = {
    "vocab_size": 6,
    "embedding_dim": 4,
    "num_classes": 2,
    "hidden_dim": 3,
    "num_layers": 1,
    "dropout": 0.5,
    "bidirectional": False,
    "concat_counts": True,
    "n_count_features": 2,
    "trainable_embedding": True,
    "lr": 0.0003,
    "class_counts": [5, 7],
    "balance_classes": False,
    "optimizer": None,
    "scheduler": None,
    "name": "lstm",
}


@pytest.mark.parametrize("era", ["with targets", "before targets"])
def test_a_checkpoint_in_the_old_layout_still_scores(era, tmp_path, capsys):
    from lstm_tweets.data.datamodule import TweetDataModule
    from lstm_tweets.data.features import CHECKPOINT_KEY
    from lstm_tweets.model import LSTMClassifier

    assert TweetDataModule.__qualname__ == CHECKPOINT_KEY  # where Lightning stores its state
    state = dict(OLD_STATE)
    if era == "before targets":
        for key in ("window_start", "target", "thresholds"):
            del state[key]
    torch.manual_seed(0)
    net = LSTMClassifier(6, 4, 2, 3, 1, 0.5, False, 2).eval()
    path = tmp_path / "old.ckpt"
    torch.save(
        {
            "epoch": 3,
            "global_step": 40,
            "pytorch-lightning_version": "2.5.0",
            "state_dict": {f"net.{k}": v for k, v in net.state_dict().items()},
            "loops": {},
            "callbacks": {},
            "optimizer_states": [],
            "lr_schedulers": [],
            "hparams_name": "kwargs",
            "hyper_parameters": OLD_HPARAMS,
            CHECKPOINT_KEY: state,
        },
        path,
    )
    loaded, features, meaning = load_predictor(path)
    assert (meaning.target, meaning.interval, meaning.window_start) == (
        "direction",
        15,
        "after_tweet",
    )
    assert meaning.thresholds is None and meaning.num_classes == 2
    ids, lengths, counts = features.encode_texts(
        ["Deal jobs http://x.co zzz more words"], [99], [0]
    )
    assert ids.tolist() == [[2, 4, 5, 1, 1]] and lengths.tolist() == [5]
    expected_counts = (np.log1p([99.0, 0.0]) - [2.0, 3.0]) / [0.5, 2.0]
    np.testing.assert_allclose(counts[0].numpy(), expected_counts, rtol=1e-6)
    with torch.no_grad():
        expected = net(ids, lengths, counts).softmax(dim=1)
    probs = predict_proba(loaded, features, ["Deal jobs http://x.co zzz more words"], [99], [0])
    torch.testing.assert_close(probs, expected)
    # The datamodule restores it too (Lightning does so on resume) and writes it back unchanged.
    datamodule = TweetDataModule()
    datamodule.load_state_dict(state)
    assert datamodule.state_dict() == {**OLD_STATE, **state}
    assert main(["--checkpoint", str(path), "--text", "deal"]) == 0
    assert "p_up" in capsys.readouterr().out

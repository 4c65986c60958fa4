"""Score new tweets with a trained checkpoint: P(up) per tweet, or for a model trained on an
activity target (data.target=abs_move | volume) P(large move) or P(high volume).

    lstm-tweets-predict --checkpoint outputs/runs/<time>/checkpoints/best.ckpt --text "Tariffs!" --text "..."
    lstm-tweets-predict --checkpoint best.ckpt --file tweets.txt|tweets.csv [--output scores.csv]

The checkpoint carries the vocabulary, tokenizer options, count statistics, the target and its
train-fitted thresholds; no training data is needed. The output column names the target: `p_up`,
`p_large_move` (the absolute move over the interval above the train median of its half-hour slot)
or `p_high_volume` (volume_ratio likewise). It is loaded with `weights_only=True`, so a checkpoint file cannot run code.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd
import torch

from lstm_tweets.data.errors import DataError
from lstm_tweets.data.features import CHECKPOINT_KEY, Features
from lstm_tweets.data.io import atomic_path, read_table
from lstm_tweets.data.targets import LabelMeaning
from lstm_tweets.model import LSTMClassifier

# The probability column for class 1 of each target.
SCORE_COLUMN = {"direction": "p_up", "abs_move": "p_large_move", "volume": "p_high_volume"}


def load_predictor(
    checkpoint_path: str | Path,
) -> tuple[LSTMClassifier, Features, LabelMeaning]:
    """The network, the fitted features and what its classes mean, from a checkpoint alone."""
    path = Path(checkpoint_path)
    if not path.is_file():
        raise DataError(f"{path}: checkpoint not found")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise DataError(
            f"{path}: not a checkpoint that loads safely ({type(err).__name__}: {str(err).splitlines()[0]})"
        ) from err
    if (
        not isinstance(checkpoint, dict)
        or CHECKPOINT_KEY not in checkpoint
        or "hyper_parameters" not in checkpoint
    ):
        raise DataError(
            f"{path}: not an lstm_tweets checkpoint (no {CHECKPOINT_KEY} state or hyper_parameters); "
            "use checkpoints/best.ckpt from an lstm-tweets-train run"
        )
    hp = checkpoint["hyper_parameters"]
    features = Features.from_checkpoint(checkpoint)
    meaning = LabelMeaning.from_state(checkpoint[CHECKPOINT_KEY])
    net = LSTMClassifier(
        hp["vocab_size"],
        hp["embedding_dim"],
        hp["num_classes"],
        hp["hidden_dim"],
        hp["num_layers"],
        hp["dropout"],
        hp["bidirectional"],
        hp["n_count_features"] if hp["concat_counts"] else 0,
    )
    weights = {
        k.removeprefix("net."): v
        for k, v in checkpoint["state_dict"].items()
        if k.startswith("net.")
    }
    try:
        net.load_state_dict(weights)
    except RuntimeError as err:
        raise DataError(
            f"{path}: weights do not fit the model its hyper_parameters describe: {err}"
        ) from err
    return net.eval(), features, meaning


@torch.no_grad()
def predict_proba(
    net: LSTMClassifier,
    features: Features,
    texts: list[str],
    retweet_counts=None,
    favorite_counts=None,
) -> torch.Tensor:
    ids, lengths, counts = features.encode_texts(texts, retweet_counts, favorite_counts)
    return net(ids, lengths, counts).softmax(dim=1)


def read_texts(path: str) -> tuple[list[str], pd.DataFrame | None]:
    """A CSV/Parquet with a `text` column, or a plain file with one tweet per line."""
    if Path(path).suffix.lower() in (".csv", ".parquet", ".json", ".gz"):
        table = read_table(path, keep_default_na=False)
        if "text" not in table.columns:
            raise DataError(f"{path}: no 'text' column; found {list(table.columns)}")
        return table["text"].astype(str).tolist(), table
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError as err:
        raise DataError(f"{path}: file not found") from err
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not valid UTF-8 text") from err
    return lines, None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lstm-tweets-predict", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--checkpoint", required=True, help="a best.ckpt or last.ckpt of a training run"
    )
    parser.add_argument("--text", action="append", default=[], help="a tweet (repeatable)")
    parser.add_argument("--file", help="one tweet per line, or a CSV with a text column")
    parser.add_argument("--output", help="write a CSV instead of printing")
    args = parser.parse_args(argv)
    try:
        texts, table = list(args.text), None
        if args.file:
            file_texts, table = read_texts(args.file)
            texts += file_texts
        if not texts:
            raise DataError("nothing to score: give --text and/or --file")
        net, features, meaning = load_predictor(args.checkpoint)
        counts = {}
        if table is not None and not args.text:
            counts = {
                c: pd.to_numeric(table[c], errors="coerce").fillna(0).to_numpy()
                for c in ("retweet_count", "favorite_count")
                if c in table
            }
        probs = predict_proba(
            net, features, texts, counts.get("retweet_count"), counts.get("favorite_count")
        )
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    target = meaning.target
    result = pd.DataFrame({"text": texts, SCORE_COLUMN[target]: probs[:, 1].numpy().round(4)})
    if probs.shape[1] == 3:
        result["p_flat"] = probs[:, 2].numpy().round(4)
    if args.output:
        with atomic_path(args.output) as tmp:
            result.to_csv(tmp, index=False)
    else:
        if target != "direction":
            print(meaning.describe())
        with pd.option_context("display.max_colwidth", 80, "display.width", 160):
            print(result.to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())

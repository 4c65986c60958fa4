"""Baselines that run through the same app, splits and metrics.json as the LSTM (`model=<name>`):

- `majority`: the train split's majority class for every tweet: the floor any model must beat;
- `momentum`: no text at all: up if the market rose over the N minutes before the tweet, down if
  it fell (the train majority class where that return is 0 or unknown): does the text add anything
  over the price trend the tweet lands in? For an activity target (`data.target=abs_move` or
  `volume`) it is the activity version: 1 when the absolute move over the N minutes before the
  tweet exceeds the TRAIN median of that absolute move in the tweet's half-hour slot (activity
  clusters: a busy market stays busy), else 0; the train majority class where it is unknown;
- `tfidf_logreg`: TF-IDF of our tokens + logistic regression: a strong linear text model, with C
  chosen on validation accuracy.

Each baseline is a function `(options, task) -> (scores, info)`: `options` is the model config
(`conf/model/<name>.yaml`), `task` the labeled tweets, their split and labels and the features
(`Task`); `scores(index)` gives class probabilities for rows of `task.frame`, and `info` goes into
metrics.json. They need no vocabulary and no embedding: the app builds the datamodule with
`encode=False` for them.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np
import pandas as pd
import torch

from lstm_tweets import objectives
from lstm_tweets.data.errors import DataError
from lstm_tweets.data.features import Features, frame_counts
from lstm_tweets.data.labels import DOWN, UP
from lstm_tweets.data.split import Split
from lstm_tweets.data.text import tokenize
from lstm_tweets.model import stage_metrics, with_acc_lift

log = logging.getLogger("lstm_tweets.baselines")

Scores = Callable[[np.ndarray], np.ndarray]


@dataclass
class Task:
    """What a baseline learns from: the labeled tweets (`frame`: text, counts, created_at and,
    from prices, prior_return_bps), their `split`, the `labels` (train labels as the shuffled-
    label control left them), the `features` (tokenizer options and the train-fitted count
    scaler), the number of classes, the target and the seed."""

    frame: pd.DataFrame
    split: Split
    labels: np.ndarray
    features: Features
    num_classes: int
    target: str = "direction"
    seed: int = 0

    @classmethod
    def of(cls, datamodule) -> Task:
        """The task of a datamodule after `setup`."""
        return cls(
            datamodule.frame,
            datamodule.split,
            datamodule.labels,
            datamodule.features,
            datamodule.num_classes,
            datamodule.target,
            int(datamodule.seed),
        )

    @property
    def majority_class(self) -> int:
        """The train split's most common class (after the shuffled-label control)."""
        train = self.labels[self.split.train]
        return int(np.argmax([(train == c).sum() for c in range(self.num_classes)]))


def run_baseline(
    options, task: Task, optimized_metric: str | list[str] = "val/acc_lift", test: bool = True
) -> tuple[dict | None, dict]:
    """Fit the baseline `options.baseline` on train (choosing any knob on validation), then
    score test once (unless `test` is false). Returns `(test_out, fit_info)` as
    `train.fit_and_test` does."""
    name = options.baseline
    if name not in BASELINES:
        raise ValueError(f"model.baseline={name!r}; expected one of {sorted(BASELINES)}")
    fit_started = time.perf_counter()
    scores, info = BASELINES[name](options, task)
    fit_wall_s = round(time.perf_counter() - fit_started, 3)
    split, labels, k = task.split, task.labels, task.num_classes

    val_metrics = evaluate(scores(split.val), labels[split.val], k, "val/")
    wanted = objectives.names(optimized_metric)
    if objectives.FIT_WALL_TIME in wanted:
        info = {**info, "fit_wall_s": fit_wall_s}
    values = [fit_wall_s if m == objectives.FIT_WALL_TIME else val_metrics.get(m) for m in wanted]
    optimized_metric, optimized_value = objectives.pack(optimized_metric, values)
    fit_info = {
        "baseline": name,
        **info,
        "val_metrics": val_metrics,
        "best_epoch": None,
        "optimized_metric": optimized_metric,
        "optimized_value": optimized_value,
    }
    fit_info.setdefault("selected_by", "nothing to select (no fitted knobs)")
    log.info("%s: validation %s", name, val_metrics)
    if not test:
        return None, fit_info
    probs = scores(split.test)
    test_metrics = evaluate(probs, labels[split.test], k, "test/")
    return {
        "index": split.test,
        "label": labels[split.test],
        "probs": probs,
        "metrics": test_metrics,
    }, fit_info


def evaluate(probs: np.ndarray, labels: np.ndarray, num_classes: int, prefix: str) -> dict:
    """acc, f1, auroc, mcc with the LSTM's own torchmetrics definitions, plus the mean
    cross-entropy; None where a metric is undefined (the loss of hard 0/1 predictions)."""
    metrics = stage_metrics(num_classes, prefix)
    probs_t = torch.as_tensor(probs, dtype=torch.float32)
    scores = probs_t[:, 1] if num_classes == 2 else probs_t
    metrics.update(scores, torch.as_tensor(labels, dtype=torch.int64))
    out = with_acc_lift({key: float(value) for key, value in metrics.compute().items()}, prefix)
    if len(np.unique(labels)) < 2:
        out[f"{prefix}auroc"] = math.nan  # one class only: AUROC is undefined
    p_true = probs[np.arange(len(labels)), labels].astype("float64")
    out[f"{prefix}loss"] = float(-np.mean(np.log(p_true))) if (p_true > 0).all() else math.nan
    return {key: None if math.isnan(value) else value for key, value in out.items()}


def one_hot(classes: np.ndarray, num_classes: int) -> np.ndarray:
    return np.eye(num_classes, dtype=np.float32)[classes]


# ---- the baselines ---------------------------------------------------------------------------
def majority(options, task: Task) -> tuple[Scores, dict]:
    # `task.majority_class` counts `task.labels`, i.e. after the shuffled-label control.
    majority_class = task.majority_class
    return lambda index: one_hot(np.full(len(index), majority_class), task.num_classes), {}


def momentum(options, task: Task) -> tuple[Scores, dict]:
    frame = task.frame
    if "prior_return_bps" not in frame:
        raise DataError(
            "model=momentum needs prices: data=prelabeled has none (it needs the market return "
            "over the N minutes before each tweet; use data=archive with a prices file)"
        )
    prior = frame["prior_return_bps"].to_numpy("float64")
    predicted = np.full(len(prior), task.majority_class, dtype=np.int64)
    split = task.split
    if task.target != "direction":
        return activity_momentum(task, prior, predicted)
    predicted[prior > 0] = UP
    predicted[prior < 0] = DOWN
    # A zero return says nothing, and NaN means the prior window starts before the session opens.
    fell_back = ~(prior > 0) & ~(prior < 0)
    info = {
        "momentum_fallback_class": task.majority_class,
        "momentum_fallback_val": int(fell_back[split.val].sum()),
        "momentum_fallback_test": int(fell_back[split.test].sum()),
        "selected_by": "fixed rule: sign of the return over the interval before the tweet",
    }
    return lambda index: one_hot(predicted[index], task.num_classes), info


def activity_momentum(task: Task, prior: np.ndarray, predicted: np.ndarray):
    """Activity targets: 1 when |prior return| exceeds the train median of |prior return| in the
    tweet's half-hour slot, else 0; the train majority class where the prior return is unknown."""
    from lstm_tweets.data.targets import fit_activity_thresholds, slot_thresholds

    frame, split = task.frame, task.split
    magnitude = frame[["created_at"]].assign(abs_prior_return_bps=np.abs(prior))
    thresholds = fit_activity_thresholds(magnitude, split.train, "abs_prior_return_bps")
    known = ~np.isnan(prior)
    cut = slot_thresholds(thresholds, frame["created_at"].to_numpy())
    predicted[known] = (np.abs(prior[known]) > cut[known]).astype(np.int64)
    info = {
        "momentum_fallback_class": task.majority_class,
        "momentum_fallback_val": int((~known)[split.val].sum()),
        "momentum_fallback_test": int((~known)[split.test].sum()),
        "momentum_thresholds": thresholds,
        "selected_by": "fixed rule: |return| over the interval before the tweet above the train "
        "median of its half-hour slot",
    }
    return lambda index: one_hot(predicted[index], task.num_classes), info


def tfidf_logreg(options, task: Task) -> tuple[Scores, dict]:
    from scipy import sparse
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    frame, split = task.frame, task.split
    texts = frame["text"].to_numpy(dtype=object)
    vectorizer = TfidfVectorizer(
        tokenizer=partial(tokenize, **task.features.tokenizer.to_dict()),
        lowercase=False,  # `tokenize` already applies data.lowercase
        token_pattern=None,
        min_df=options.min_df,
        ngram_range=tuple(options.ngram_range),
        max_features=options.max_features,
    )
    vectorizer.fit(texts[split.train])  # vocabulary and IDF from train only, like our Vocab
    counts = None
    if options.concat_counts:
        # The LSTM's count features: log1p, standardized with train statistics.
        counts = task.features.scale_counts(frame_counts(frame))

    def features(index: np.ndarray):
        x = vectorizer.transform(texts[index])
        return (
            sparse.hstack([x, sparse.csr_matrix(counts[index])]).tocsr()
            if counts is not None
            else x
        )

    labels = task.labels  # train labels as the leak control left them
    x_train, y_train = features(split.train), labels[split.train]
    if len(np.unique(y_train)) < 2:
        raise DataError(
            f"model=tfidf_logreg: the train split holds one class only ({np.unique(y_train)})"
        )
    x_val, y_val = features(split.val), labels[split.val]

    def fit(c: float):
        model = LogisticRegression(
            C=c,
            max_iter=2000,
            class_weight="balanced" if options.get("balance_classes") else None,
            random_state=int(task.seed),
        )
        return model.fit(x_train, y_train)

    def probabilities(model, x) -> np.ndarray:
        # Columns for every class, also one that train lacked (e.g. no flat tweets).
        probs = np.zeros((x.shape[0], task.num_classes), dtype=np.float32)
        probs[:, model.classes_] = model.predict_proba(x)
        return probs

    fitted, val_accuracy = {}, {}
    for c in options.C_grid:
        fitted[c] = fit(float(c))
        val_accuracy[c] = float(np.mean(probabilities(fitted[c], x_val).argmax(axis=1) == y_val))
    best = max(options.C_grid, key=lambda c: val_accuracy[c])  # ties: the first (smallest) C
    info = {
        "tfidf_C": float(best),
        "tfidf_val_accuracy_by_C": {str(c): a for c, a in val_accuracy.items()},
        "tfidf_n_features": int(x_train.shape[1]),
        "selected_by": f"C={best} of C_grid={list(options.C_grid)} by validation accuracy",
    }
    return lambda index: probabilities(fitted[best], features(index)), info


BASELINES: dict[str, Callable[[object, Task], tuple[Scores, dict]]] = {
    "majority": majority,
    "momentum": momentum,
    "tfidf_logreg": tfidf_logreg,
}

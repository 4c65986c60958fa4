"""Statistics for honest reporting: day-block bootstrap intervals and day-level paired tests
(tweets of one trading day are not independent), Wilson intervals for reference, exact binomial
and McNemar tests, Holm correction, permutation p-values and the spread of a metric over seeds.

Everything returns plain Python floats/ints so the results can go straight into `metrics.json`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from functools import partial

import numpy as np
import pandas as pd
from scipy import stats


def _check_counts(k: int, n: int) -> None:
    if n < 0 or not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a proportion of k successes out of n (no continuity correction).

    Returns (nan, nan) for n == 0: there is nothing to estimate.
    """
    _check_counts(k, n)
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if n == 0:
        return (math.nan, math.nan)
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    p = k / n
    denom = 1 + z * z / n
    center = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    # At k == 0 or k == n the bound is exactly 0 or 1; the formula leaves rounding noise there.
    low = 0.0 if k == 0 else max(0.0, center - half)
    high = 1.0 if k == n else min(1.0, center + half)
    return (low, high)


def binomial_p_value(k: int, n: int, p0: float) -> float:
    """One-sided exact binomial test of H1: success rate > p0, i.e. P(X >= k | X ~ Bin(n, p0)).

    Returns nan for n == 0 (no test possible).
    """
    _check_counts(k, n)
    if not 0 <= p0 <= 1:
        raise ValueError(f"p0 must be in [0, 1], got {p0}")
    if n == 0:
        return math.nan
    # sf(k - 1) = P(X > k - 1) = P(X >= k)
    return float(min(1.0, stats.binom.sf(k - 1, n, p0)))


def _as_bool_vector(x, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.dtype != bool:
        # Accept 0/1 integers too (e.g. `preds == labels` cast to int), nothing else.
        if arr.size and not np.isin(arr, (0, 1)).all():
            raise ValueError(f"{name} must be boolean (or 0/1), got values other than 0 and 1")
        arr = arr.astype(bool)
    return arr


def mcnemar_test(correct_a, correct_b) -> dict:
    """Exact (binomial) two-sided McNemar test comparing two classifiers on the same samples.

    `correct_a[i]` / `correct_b[i]` say whether model A / B got sample i right. Only the
    discordant pairs matter: b = A right and B wrong, c = A wrong and B right; under H0 b is
    Bin(b + c, 1/2). `statistic` is min(b, c), as in the usual exact form. p = 1 when b + c == 0.
    """
    a = _as_bool_vector(correct_a, "correct_a")
    b_arr = _as_bool_vector(correct_b, "correct_b")
    if a.shape != b_arr.shape:
        raise ValueError(f"inputs differ in length: {a.size} vs {b_arr.size}")
    b = int(np.count_nonzero(a & ~b_arr))
    c = int(np.count_nonzero(~a & b_arr))
    p_value = 1.0 if b + c == 0 else float(stats.binomtest(b, b + c, 0.5).pvalue)
    return {"b": b, "c": c, "statistic": float(min(b, c)), "p_value": min(1.0, p_value)}


def holm_correction(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the order given.

    The i-th smallest p (0-based) is multiplied by (m - i); a running maximum keeps the adjusted
    values monotone in the raw ones, and they are capped at 1.
    """
    p = np.asarray(p_values, dtype=float)
    if p.ndim != 1:
        raise ValueError("p_values must be a flat list")
    if np.isnan(p).any() or (p < 0).any() or (p > 1).any():
        raise ValueError(f"p-values must lie in [0, 1], got {p.tolist()}")
    m = p.size
    order = np.argsort(p, kind="stable")
    adjusted_sorted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    adjusted = np.empty(m)
    adjusted[order] = adjusted_sorted
    return adjusted.tolist()


def seed_spread(values) -> dict:
    """Mean, sample standard deviation (ddof=1; 0.0 for a single seed), min and max of a metric
    over seeds."""
    arr = np.asarray(values, dtype=float).ravel()
    if arr.size == 0:
        raise ValueError("seed_spread needs at least one value")
    return {
        "mean": float(arr.mean()),
        "std": float(arr.std(ddof=1)) if arr.size > 1 else 0.0,
        "min": float(arr.min()),
        "max": float(arr.max()),
        "n_seeds": int(arr.size),
    }


# ---- tweets are clustered by trading day ----------------------------------------------------
# Tweets of one day share the day's market (overlapping windows share one price move), so the
# independent units are trading days, not tweets: intervals resample whole days and paired
# tests flip the sign of whole days. A Wilson interval on tweets is kept beside for reference.

BOOTSTRAP_RESAMPLES = 2000
PERMUTATION_RESAMPLES = 9999
NEW_YORK = "America/New_York"


def trading_days(created_at) -> np.ndarray:
    """Cluster id of each tweet: its America/New_York calendar date, as 0..D-1 in time order."""
    stamps = pd.to_datetime(pd.Series(created_at), utc=True).dt.tz_convert(NEW_YORK)
    return pd.factorize(stamps.dt.date.to_numpy(), sort=True)[0]


def _day_weights(day_draws: np.ndarray, n_days: int) -> np.ndarray:
    """Resampled day indices (..., D) -> how often each day was drawn (..., D)."""
    flat = day_draws.reshape(-1, day_draws.shape[-1])
    counts = np.zeros((flat.shape[0], n_days))
    np.add.at(counts, (np.arange(flat.shape[0])[:, None], flat), 1.0)
    return counts.reshape(*day_draws.shape[:-1], n_days)


def day_block_interval(
    statistic,
    days: np.ndarray,
    confidence: float = 0.95,
    n_resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile interval of `statistic(weights)` under a bootstrap that resamples whole trading
    days with replacement (scipy.stats.bootstrap over the day ids).

    `statistic` takes tweet weights of shape (B, n) (how often each tweet's day was drawn) and
    returns B values; the point estimate is `statistic` at weight 1. Returns (nan, nan) with fewer
    than two days or when the statistic is undefined on the resamples.
    """
    # Any cluster labels: renumbered 0..D-1 so that only days that hold tweets are drawn.
    days = np.unique(np.asarray(days), return_inverse=True)[1].ravel()
    n_days = int(days.max()) + 1 if days.size else 0
    if n_days < 2:
        return (math.nan, math.nan)

    def on_days(day_draws, axis=-1):
        weights = _day_weights(np.moveaxis(day_draws, axis, -1).astype(int), n_days)
        flat = weights.reshape(-1, n_days)[:, days]
        return np.asarray(statistic(flat), dtype=float).reshape(weights.shape[:-1])

    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a degenerate distribution (e.g. lift 0) is fine here
        result = stats.bootstrap(
            (np.arange(n_days),),
            on_days,
            n_resamples=n_resamples,
            confidence_level=confidence,
            method="percentile",
            vectorized=True,
            batch=250,
            rng=np.random.default_rng(seed),
        )
    low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
    return (low, high) if np.isfinite(low) and np.isfinite(high) else (math.nan, math.nan)


def weighted_mean(values: np.ndarray):
    values = np.asarray(values, dtype=float)
    return lambda w: (w @ values) / w.sum(axis=1)


def weighted_auroc(scores: np.ndarray, positive: np.ndarray):
    """AUROC of `scores` for the boolean `positive`, each tweet counted `w` times (ties 1/2)."""
    order = np.argsort(scores, kind="stable")
    scores, positive = np.asarray(scores, dtype=float)[order], np.asarray(positive, bool)[order]
    # Groups of equal scores: a positive beats every negative below its group, ties count half.
    group = np.concatenate([[0], np.cumsum(np.diff(scores) != 0)])

    def statistic(w):
        w = w[:, order]
        neg = np.where(positive, 0.0, w)
        pos = np.where(positive, w, 0.0)
        neg_in_group = np.zeros((w.shape[0], group[-1] + 1))
        np.add.at(neg_in_group, (slice(None), group), neg)
        below = np.cumsum(neg_in_group, axis=1) - neg_in_group  # negatives in lower groups
        credit = below[:, group] + 0.5 * neg_in_group[:, group]
        return (pos * credit).sum(axis=1) / (pos.sum(axis=1) * neg.sum(axis=1))

    return statistic


def day_sign_flip_p(diff: np.ndarray, days: np.ndarray, seed: int = 0) -> float:
    """One-sided paired test of H1: mean(diff) > 0, with trading days as the units: under H0 each
    day's summed difference is as likely negative as positive (scipy's permutation test flips
    the sign of each day's total; exact when there are few days). p = 1 when nothing differs."""
    diff = np.asarray(diff, dtype=float)
    totals = np.bincount(np.asarray(days), weights=diff)
    if not np.any(totals != 0):
        return 1.0
    result = stats.permutation_test(
        (totals,),
        lambda x, axis=-1: np.sum(x, axis=axis),
        permutation_type="samples",
        alternative="greater",
        n_resamples=PERMUTATION_RESAMPLES,
        vectorized=True,
        rng=np.random.default_rng(seed),
    )
    return float(result.pvalue)


def near_constant_share(predicted: np.ndarray) -> float:
    """Share of the most frequent predicted class (1.0: a constant predictor)."""
    predicted = np.asarray(predicted)
    return float(np.bincount(predicted).max() / predicted.size) if predicted.size else math.nan


NEAR_CONSTANT = 0.95  # a model that predicts one class this often is a constant in disguise


def evaluate_predictions(
    labels,
    probs,
    days,
    majority_class,
    baseline_predictions: dict[str, np.ndarray] | None = None,
    seed: int = 0,
    n_resamples: int = BOOTSTRAP_RESAMPLES,
) -> dict:
    """Every headline number of one set of test predictions, honest about the day clusters.

    accuracy with its day-block interval (and the Wilson interval, which treats tweets as
    independent), the lift over the majority-class predictor on the same tweets with its
    block interval and a paired day-level sign-flip p-value, AUROC and log-loss with block
    intervals, and paired p-values against any other baseline's predictions (same tweets, same
    order). The same function scores a single run and a seed ensemble. `majority_class` is the
    train majority class, or one per tweet when test sets of several folds are pooled."""
    labels = np.asarray(labels, dtype=int)
    probs = np.asarray(probs, dtype=float)
    days = np.asarray(days, dtype=int)
    predicted = probs.argmax(axis=1)
    correct = (predicted == labels).astype(float)
    majority_correct = (labels == np.broadcast_to(majority_class, labels.shape)).astype(float)
    n, k = labels.size, int(correct.sum())
    wilson_low, wilson_high = wilson_interval(k, n)
    ci = partial(day_block_interval, days=days, seed=seed, n_resamples=n_resamples)
    lift = correct - majority_correct
    out = {
        "n": n,
        "n_days": int(np.unique(days).size),
        "accuracy": k / n if n else math.nan,
        "ci_low": math.nan,
        "ci_high": math.nan,
        "wilson_low": wilson_low,
        "wilson_high": wilson_high,
        "majority_accuracy": float(majority_correct.mean()) if n else math.nan,
        "lift": float(lift.mean()) if n else math.nan,
        "predicted_share_top_class": near_constant_share(predicted),
    }
    out["ci_low"], out["ci_high"] = ci(weighted_mean(correct))
    out["lift_ci_low"], out["lift_ci_high"] = ci(weighted_mean(lift))
    out["p_vs_majority"] = day_sign_flip_p(lift, days, seed)
    p_true = np.clip(probs[np.arange(n), labels], 1e-12, 1.0)
    out["log_loss"] = float(-np.log(p_true).mean())
    out["log_loss_ci_low"], out["log_loss_ci_high"] = ci(weighted_mean(-np.log(p_true)))
    if probs.shape[1] == 2 and 0 < labels.sum() < n:
        auroc = weighted_auroc(probs[:, 1], labels == 1)
        out["auroc"] = float(auroc(np.ones((1, n)))[0])
        out["auroc_ci_low"], out["auroc_ci_high"] = ci(auroc)
    else:
        out["auroc"] = out["auroc_ci_low"] = out["auroc_ci_high"] = math.nan
    for name, other in (baseline_predictions or {}).items():
        other_correct = (np.asarray(other) == labels).astype(float)
        out[f"p_vs_{name}"] = day_sign_flip_p(correct - other_correct, days, seed)
        out[f"lift_vs_{name}"] = float((correct - other_correct).mean())
    return out


def verdict(summary: dict, name: str = "the model") -> str:
    """One plain sentence a statistician would sign: the lift, its day-block interval, the
    paired p, the bound it sets, and a warning for a near-constant predictor."""
    pts = 100.0
    text = (
        f"{name}: accuracy {summary['accuracy']:.3f} vs majority {summary['majority_accuracy']:.3f} "
        f"on the same {summary['n']} tweets ({summary['n_days']} trading days): lift "
        f"{pts * summary['lift']:+.1f} points (95% day-block CI {pts * summary['lift_ci_low']:+.1f} "
        f"to {pts * summary['lift_ci_high']:+.1f}), paired day-level p {p_text(summary['p_vs_majority'])}"
    )
    if summary["p_vs_majority"] >= 0.05 and np.isfinite(summary["lift_ci_high"]):
        text += f"; the data rule out a lift above {pts * summary['lift_ci_high']:+.1f} points"
    if summary["predicted_share_top_class"] >= NEAR_CONSTANT:
        text += (
            f". Near-constant: one class for {100 * summary['predicted_share_top_class']:.0f}% of "
            "tweets, so any accuracy is the base rate's"
        )
    return text + "."


def p_text(p: float) -> str:
    """'= 0.03', or '<= 0.0001' at the floor of a Monte Carlo permutation test."""
    floor = 1.0 / (PERMUTATION_RESAMPLES + 1)
    return f"<= {floor:.2g}" if p <= floor * (1 + 1e-9) else f"= {p:.2g}"


def permutation_p_value(observed: float, null_values) -> float:
    """Share of the label-permutation null at or above the observed value, counting the
    observed run itself (so never 0): (1 + #{null >= observed}) / (1 + K)."""
    if not np.isfinite(observed):
        return math.nan  # nothing observed: no p-value, never a small one
    null = np.asarray(null_values, dtype=float)
    null = null[~np.isnan(null)]
    return float((1 + np.count_nonzero(null >= observed - 1e-12)) / (1 + null.size))

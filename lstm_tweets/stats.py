"""Small statistics for honest reporting: Wilson intervals, exact binomial and McNemar tests,
Holm correction and the spread of a metric over seeds.

Everything returns plain Python floats/ints so the results can go straight into `metrics.json`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
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


def accuracy_summary(correct, majority_accuracy: float) -> dict:
    """Accuracy of a boolean "was this prediction right" vector, with its Wilson 95 % interval and
    the one-sided binomial p-value against the majority-class baseline accuracy."""
    arr = _as_bool_vector(correct, "correct")
    n = int(arr.size)
    k = int(np.count_nonzero(arr))
    ci_low, ci_high = wilson_interval(k, n)
    return {
        "n": n,
        "k": k,
        "accuracy": k / n if n else math.nan,
        "ci_low": ci_low,
        "ci_high": ci_high,
        "p_value_vs_majority": binomial_p_value(k, n, majority_accuracy),
    }


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

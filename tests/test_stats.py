"""The reporting statistics agree with scipy and with hand-computed examples."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import binomtest

from lstm_tweets.stats import (
    accuracy_summary,
    binomial_p_value,
    holm_correction,
    mcnemar_test,
    seed_spread,
    wilson_interval,
)


@st.composite
def k_and_n(draw):
    n = draw(st.integers(min_value=1, max_value=5000))
    return draw(st.integers(min_value=0, max_value=n)), n


@settings(max_examples=200, deadline=None)
@given(k_and_n(), st.sampled_from([0.8, 0.9, 0.95, 0.99]))
def test_wilson_matches_scipy(kn, confidence):
    k, n = kn
    ci = binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
    low, high = wilson_interval(k, n, confidence)
    assert low == pytest.approx(ci.low, abs=1e-9)
    assert high == pytest.approx(ci.high, abs=1e-9)
    assert 0.0 <= low <= k / n <= high <= 1.0


def test_wilson_edges():
    assert all(math.isnan(x) for x in wilson_interval(0, 0))
    assert wilson_interval(0, 10)[0] == 0.0
    assert wilson_interval(10, 10)[1] == 1.0
    # A textbook value: 81 of 263, 95 % -> (0.2553, 0.3662).
    low, high = wilson_interval(81, 263)
    assert (low, high) == pytest.approx((0.2553, 0.3662), abs=1e-4)
    with pytest.raises(ValueError):
        wilson_interval(5, 3)
    with pytest.raises(ValueError):
        wilson_interval(1, 3, confidence=1.0)


@settings(max_examples=200, deadline=None)
@given(k_and_n(), st.floats(min_value=0.01, max_value=0.99))
def test_binomial_p_value_matches_scipy(kn, p0):
    k, n = kn
    expected = binomtest(k, n, p0, alternative="greater").pvalue
    assert binomial_p_value(k, n, p0) == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_binomial_p_value_edges():
    assert binomial_p_value(0, 10, 0.5) == pytest.approx(1.0)
    assert binomial_p_value(10, 10, 0.5) == pytest.approx(0.5**10)
    assert math.isnan(binomial_p_value(0, 0, 0.5))
    with pytest.raises(ValueError):
        binomial_p_value(3, 10, 1.5)


def test_mcnemar_hand_example():
    # Discordant pairs: b = 2 (A right, B wrong), c = 8 (A wrong, B right); 4 concordant.
    a = np.array([True] * 2 + [False] * 8 + [True, True, False, False])
    b = np.array([False] * 2 + [True] * 8 + [True, True, False, False])
    result = mcnemar_test(a, b)
    assert (result["b"], result["c"], result["statistic"]) == (2, 8, 2.0)
    # Two-sided exact: 2 * P(X <= 2), X ~ Bin(10, 1/2) = 2 * 56 / 1024.
    assert result["p_value"] == pytest.approx(112 / 1024)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.booleans()), min_size=1, max_size=300))
def test_mcnemar_matches_scipy(pairs):
    a, b = np.array(pairs).T
    result = mcnemar_test(a, b)
    assert result["b"] == int((a & ~b).sum())
    assert result["c"] == int((~a & b).sum())
    n = result["b"] + result["c"]
    expected = 1.0 if n == 0 else binomtest(result["b"], n, 0.5).pvalue
    assert result["p_value"] == pytest.approx(expected, rel=1e-9)


def test_mcnemar_no_discordant_pairs_and_bad_input():
    same = [True, False, True]
    assert mcnemar_test(same, same)["p_value"] == 1.0
    assert mcnemar_test([1, 0, 1], [0, 0, 1])["b"] == 1  # 0/1 integers are accepted
    with pytest.raises(ValueError):
        mcnemar_test([True, False], [True])
    with pytest.raises(ValueError):
        mcnemar_test([0.5, 1.0], [True, False])


def test_holm_hand_example():
    # Sorted 0.01, 0.03, 0.04 -> 3*0.01, 2*0.03, max(0.06, 1*0.04); back in input order.
    assert holm_correction([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm_correction([0.5, 0.6]) == pytest.approx([1.0, 1.0])  # capped
    assert holm_correction([0.02]) == pytest.approx([0.02])
    assert holm_correction([]) == []
    with pytest.raises(ValueError):
        holm_correction([0.1, float("nan")])


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=1, max_size=20))
def test_holm_properties(p):
    adjusted = holm_correction(p)
    assert all(a >= raw - 1e-15 and a <= 1.0 for a, raw in zip(adjusted, p, strict=True))
    order = np.argsort(p, kind="stable")
    assert np.all(np.diff(np.asarray(adjusted)[order]) >= -1e-15)  # monotone in the raw p


def test_accuracy_summary():
    correct = np.array([True] * 70 + [False] * 30)
    s = accuracy_summary(correct, majority_accuracy=0.6)
    assert (s["n"], s["k"], s["accuracy"]) == (100, 70, 0.7)
    assert (s["ci_low"], s["ci_high"]) == pytest.approx(wilson_interval(70, 100))
    expected = binomtest(70, 100, 0.6, alternative="greater").pvalue
    assert s["p_value_vs_majority"] == pytest.approx(expected)
    assert math.isnan(accuracy_summary([], 0.5)["accuracy"])


def test_seed_spread():
    s = seed_spread([0.5, 0.6, 0.7])
    assert s["mean"] == pytest.approx(0.6)
    assert s["std"] == pytest.approx(0.1)  # sample std
    assert (s["min"], s["max"], s["n_seeds"]) == (0.5, 0.7, 3)
    assert seed_spread([0.55])["std"] == 0.0
    with pytest.raises(ValueError):
        seed_spread([])

"""The reporting statistics agree with scipy and with hand-computed examples, and the day-clustered
ones behave as clustering demands: wider intervals and weaker tests when a day's tweets move
together, no penalty when they do not."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import binomtest, bootstrap
from sklearn.metrics import roc_auc_score

from lstm_tweets.stats import (
    binomial_p_value,
    day_block_interval,
    day_sign_flip_p,
    evaluate_predictions,
    holm_correction,
    mcnemar_test,
    permutation_p_value,
    seed_spread,
    trading_days,
    verdict,
    weighted_auroc,
    weighted_mean,
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


def test_seed_spread():
    s = seed_spread([0.5, 0.6, 0.7])
    assert s["mean"] == pytest.approx(0.6)
    assert s["std"] == pytest.approx(0.1)  # sample std
    assert (s["min"], s["max"], s["n_seeds"]) == (0.5, 0.7, 3)
    assert seed_spread([0.55])["std"] == 0.0
    with pytest.raises(ValueError):
        seed_spread([])


# ---- tweets cluster by trading day ----------------------------------------------------------
def test_trading_days_are_new_york_dates_in_time_order():
    stamps = [
        "2019-03-12 03:30:00+00:00",  # 23:30 on the 11th in New York (EDT, UTC-4)
        "2019-03-11 14:00:00+00:00",  # the 11th
        "2019-03-12 14:00:00+00:00",  # the 12th
        "2019-03-08 04:30:00+00:00",  # 23:30 on the 7th (EST, UTC-5): the earliest day
    ]
    np.testing.assert_array_equal(trading_days(stamps), [1, 1, 2, 0])


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(min_value=0, max_value=4), st.booleans()), min_size=2, max_size=60
    ).filter(lambda rows: 0 < sum(p for _, p in rows) < len(rows))
)
def test_weighted_auroc_at_unit_weights_matches_sklearn(rows):
    # Scores from a handful of values: most draws have ties within and across the classes.
    scores, positive = (np.array(column) for column in zip(*rows, strict=True))
    scores = scores / 4.0
    auroc = weighted_auroc(scores, positive)
    assert auroc(np.ones((1, scores.size)))[0] == pytest.approx(
        roc_auc_score(positive, scores), abs=1e-12
    )


def test_weighted_auroc_counts_a_weight_as_repeated_tweets():
    rng = np.random.default_rng(1)
    scores = rng.integers(0, 6, size=40) / 5.0
    positive = rng.random(40) < 0.4
    weights = rng.integers(0, 4, size=(3, 40)).astype(float)
    got = weighted_auroc(scores, positive)(weights)
    for row, value in zip(weights.astype(int), got, strict=True):
        repeated = np.repeat(np.arange(40), row)
        assert value == pytest.approx(roc_auc_score(positive[repeated], scores[repeated]))


def test_weighted_mean_is_the_mean_of_the_drawn_tweets():
    values = np.array([1.0, 0.0, 0.0, 1.0])
    weights = np.array([[1, 1, 1, 1], [2, 0, 0, 0], [0, 1, 3, 0]], dtype=float)
    assert weighted_mean(values)(weights) == pytest.approx([0.5, 1.0, 0.0])


def width(interval) -> float:
    return interval[1] - interval[0]


def test_day_block_interval_with_one_tweet_a_day_is_the_iid_bootstrap():
    rng = np.random.default_rng(3)
    correct = (rng.random(200) < 0.6).astype(float)
    block = day_block_interval(weighted_mean(correct), np.arange(200), seed=0)
    # Days are tweets here, so resampling days is scipy's ordinary percentile bootstrap; with the
    # same generator and batches it even draws the same resamples.
    iid = bootstrap(
        (correct,),
        np.mean,
        method="percentile",
        n_resamples=2000,
        batch=250,
        rng=np.random.default_rng(0),
    ).confidence_interval
    assert block == pytest.approx((iid.low, iid.high), abs=1e-12)
    wilson = wilson_interval(int(correct.sum()), correct.size)
    assert 0.8 < width(block) / width(wilson) < 1.2  # measured 0.93-1.07 over 20 seeds
    assert block[0] <= correct.mean() <= block[1]


def clustered_and_iid(seed: int, n_days: int = 60, per_day: int = 10):
    """Correctness of 10 tweets on each of 60 days: whole days right or wrong, or independent."""
    rng = np.random.default_rng(seed)
    days = np.repeat(np.arange(n_days), per_day)
    whole_days = np.repeat(rng.random(n_days) < 0.6, per_day).astype(float)
    independent = (rng.random(n_days * per_day) < 0.6).astype(float)
    return days, whole_days, independent


def test_day_block_interval_widens_only_when_a_days_tweets_move_together():
    days, whole_days, independent = clustered_and_iid(seed=0)
    ratios = {}
    for name, correct in (("whole_days", whole_days), ("independent", independent)):
        block = day_block_interval(weighted_mean(correct), days, seed=0)
        assert block[0] <= correct.mean() <= block[1]
        ratios[name] = width(block) / width(wilson_interval(int(correct.sum()), correct.size))
    # 60 independent units, not 600: about sqrt(10) = 3.2 times wider (2.9-3.4 over 20 seeds).
    assert ratios["whole_days"] > 2.0
    # Independent tweets pay no clustering penalty (0.84-1.13 over 20 seeds; 0.91 at this one).
    assert ratios["independent"] < 1.25


def test_day_block_interval_needs_two_days():
    assert all(math.isnan(x) for x in day_block_interval(weighted_mean([1.0, 0.0]), [0, 0]))


def test_day_sign_flip_p_identical_predictions_give_one():
    days = np.repeat(np.arange(10), 5)
    assert day_sign_flip_p(np.zeros(days.size), days) == 1.0


def test_day_sign_flip_p_better_on_every_day_is_significant():
    # 12 days: scipy enumerates all 2**12 sign patterns, and only the observed one (every day
    # positive) reaches the observed sum.
    days = np.repeat(np.arange(12), 8)
    diff = np.zeros(days.size)
    diff[::4] = 1.0  # two tweets better on each day, the rest equal
    assert day_sign_flip_p(diff, days) == pytest.approx(1 / 2**12)
    # 40 days: random sign flips, p near its floor of 1 / (9999 + 1).
    days = np.repeat(np.arange(40), 8)
    diff = np.where(np.arange(days.size) % 8 == 0, 1.0, 0.0)
    assert day_sign_flip_p(diff, days) < 0.001
    assert day_sign_flip_p(-diff, days) == pytest.approx(1.0)  # one-sided: worse is not better


def test_one_good_day_is_not_significant_though_tweet_level_mcnemar_says_so():
    # 30 days of 25 tweets; model A beats B on all 25 tweets of day 7 and agrees with it elsewhere.
    rng = np.random.default_rng(0)
    days = np.repeat(np.arange(30), 25)
    correct_b = rng.random(days.size) < 0.5
    correct_a = correct_b.copy()
    correct_a[days == 7] = True
    correct_b[days == 7] = False
    tweet_level = mcnemar_test(correct_a, correct_b)
    assert (tweet_level["b"], tweet_level["c"]) == (25, 0)
    assert tweet_level["p_value"] < 1e-6  # 25 independent wins would be overwhelming...
    p = day_sign_flip_p(correct_a.astype(float) - correct_b, days)
    assert p > 0.05  # ...but it is one day, as likely good as bad: p is about 1/2
    assert p == pytest.approx(0.5, abs=0.03)


# ---- one set of test predictions, every headline number ---------------------------------------
def test_evaluate_predictions_of_a_label_blind_near_constant_predictor():
    # The train majority was "down" (0), but the test period went up 64 % of the time. A predictor
    # that ignores the text and says "up" 96 % of the time beats the majority class by a mile.
    rng = np.random.default_rng(0)
    n_days, per_day = 40, 10
    days = np.repeat(np.arange(n_days), per_day)
    labels = (rng.random(days.size) < 0.7).astype(int)
    says_up = rng.random(days.size) < 0.97
    p_up = np.where(says_up, 0.55 + 0.1 * rng.random(days.size), 0.4)
    probs = np.column_stack([1 - p_up, p_up])
    summary = evaluate_predictions(labels, probs, days, majority_class=0, seed=0)

    predicted = probs.argmax(axis=1)
    assert summary["n"] == days.size and summary["n_days"] == n_days
    assert summary["accuracy"] == pytest.approx(np.mean(predicted == labels))
    assert summary["majority_accuracy"] == pytest.approx(np.mean(labels == 0))
    assert summary["lift"] == pytest.approx(summary["accuracy"] - summary["majority_accuracy"])
    assert np.mean(labels == 1) > 0.6  # the base rate flipped against the train majority
    assert summary["lift"] > 0.2 and summary["lift_ci_low"] > 0.1  # 0.29 and 0.19 here
    assert summary["p_vs_majority"] < 0.001
    assert summary["ci_low"] <= summary["accuracy"] <= summary["ci_high"]
    assert summary["wilson_low"] <= summary["accuracy"] <= summary["wilson_high"]
    # ...but it ranks nothing: AUROC's interval holds 1/2, and it is near-constant.
    assert summary["auroc_ci_low"] < 0.5 < summary["auroc_ci_high"]  # 0.47 to 0.60 here
    assert summary["predicted_share_top_class"] == pytest.approx(np.mean(predicted == 1))
    assert summary["predicted_share_top_class"] >= 0.95
    text = verdict(summary, "blind")
    assert text.startswith("blind: accuracy") and "Near-constant" in text
    assert "rule out" not in text  # significant: no upper bound sentence


def test_evaluate_predictions_against_a_baseline_and_without_lift():
    rng = np.random.default_rng(1)
    days = np.repeat(np.arange(20), 10)
    labels = rng.integers(0, 2, size=days.size)
    probs = np.tile([0.51, 0.49], (days.size, 1))  # a constant "0": the majority class itself
    summary = evaluate_predictions(
        labels, probs, days, majority_class=0, baseline_predictions={"oracle": labels}
    )
    assert summary["lift"] == 0.0 and summary["p_vs_majority"] == 1.0
    assert summary["lift_ci_low"] == summary["lift_ci_high"] == 0.0
    assert summary["lift_vs_oracle"] == pytest.approx(-np.mean(labels == 1))
    assert summary["p_vs_oracle"] == pytest.approx(1.0)
    assert summary["auroc"] == pytest.approx(0.5)  # all scores tied
    assert summary["log_loss"] == pytest.approx(-np.mean(np.log(np.where(labels == 0, 0.51, 0.49))))
    text = verdict(summary)
    assert "rule out a lift above +0.0 points" in text and "Near-constant" in text


def test_permutation_p_value_hand_examples():
    # (1 + #{null >= observed}) / (1 + K)
    assert permutation_p_value(0.6, [0.5, 0.6, 0.7, 0.4]) == pytest.approx(3 / 5)
    assert permutation_p_value(0.9, [0.5, 0.6, 0.7, 0.4]) == pytest.approx(1 / 5)  # never 0
    assert permutation_p_value(0.1, [0.5, 0.6, 0.7, 0.4]) == pytest.approx(1.0)
    assert permutation_p_value(0.6, [0.6 - 1e-15, float("nan")]) == pytest.approx(2 / 2)
    assert permutation_p_value(0.6, []) == 1.0
    # 99 values 0, 1/98, ..., 1: the 45 from 54/98 up reach 0.55.
    assert permutation_p_value(0.55, np.linspace(0, 1, 99)) == pytest.approx((1 + 45) / (1 + 99))


def test_day_block_interval_takes_any_day_labels():
    """Day ids with gaps (or any labels) are the same clusters as 0..D-1."""
    correct = np.array([1, 0, 1, 1, 0, 1, 1, 1], dtype=float)
    gapped = np.array([0, 0, 3, 3, 7, 7, 9, 9])
    dense = np.array([0, 0, 1, 1, 2, 2, 3, 3])
    assert day_block_interval(weighted_mean(correct), gapped) == day_block_interval(
        weighted_mean(correct), dense
    )
    assert np.isnan(day_block_interval(weighted_mean(correct[:2]), np.array([5, 5]))).all()


def test_permutation_p_value_of_nothing_observed_is_no_p_value():
    assert np.isnan(permutation_p_value(float("nan"), [0.5] * 99))
    # An infinite null draw is at or above anything: it counts.
    assert permutation_p_value(0.9, [float("inf")] * 50 + [0.1] * 49) == pytest.approx(51 / 100)

"""The baselines (model=majority|momentum|tfidf_logreg) run through the same app, splits and
metrics.json as the LSTM; the real-data configs compose and label."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import DESIGN_METRIC_KEYS, read_metrics
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser

from lstm_tweets import stats
from lstm_tweets.data.errors import DataError
from lstm_tweets.train import build, train

ROOT = Path(__file__).resolve().parents[1]
BASELINES = ["majority", "momentum", "tfidf_logreg"]


@pytest.fixture(scope="module")
def synthetic_runs(compose_train, tmp_path_factory) -> dict[str, dict]:
    """Each baseline once on the synthetic sample, plus tfidf_logreg on shuffled train labels."""
    runs = {}
    for name, extra in [(b, []) for b in BASELINES] + [
        ("shuffled", ["data.shuffle_train_labels=true"])
    ]:
        output_dir = tmp_path_factory.mktemp(name)
        model = "tfidf_logreg" if name == "shuffled" else name
        train(compose_train(output_dir, f"model={model}", *extra))
        runs[name] = read_metrics(output_dir) | {"output_dir": str(output_dir)}
    return runs


@pytest.mark.parametrize("name", BASELINES)
def test_each_baseline_writes_a_full_metrics_json(synthetic_runs, name):
    metrics = synthetic_runs[name]
    assert DESIGN_METRIC_KEYS <= metrics.keys()
    assert metrics["model"] == metrics["baseline"] == name
    assert metrics["best_epoch"] is None and metrics["selected_by"]
    assert metrics["optimized_metric"] == "val/acc_lift"
    assert metrics["optimized_value"] == pytest.approx(metrics["val_metrics"]["val/acc_lift"])
    val_acc, share = metrics["val_metrics"]["val/acc"], metrics["val_metrics"]["val/majority_share"]
    assert metrics["optimized_value"] == pytest.approx(val_acc - share)
    assert -1 < metrics["optimized_value"] < 1
    assert (
        metrics["test_accuracy_ci_low"]
        <= metrics["test_accuracy"]
        <= metrics["test_accuracy_ci_high"]
    )
    predictions = pd.read_csv(Path(metrics["output_dir"]) / "predictions_test.csv")
    assert len(predictions) == metrics["n_test"]
    assert np.mean(predictions["predicted"] == predictions["label"]) == pytest.approx(
        metrics["test_accuracy"]
    )
    if name == "majority":
        assert metrics["test_accuracy"] == metrics["majority_accuracy"]
        assert (predictions["predicted"] == metrics["majority_class"]).all()
        assert metrics["test_loss"] is None  # hard 0/1 predictions: cross-entropy is infinite
    if name == "tfidf_logreg":
        assert metrics["tfidf_C"] in (0.1, 1.0, 10.0)
        by_c = metrics["tfidf_val_accuracy_by_C"]
        assert max(by_c.values()) == pytest.approx(val_acc)
        assert 0 < metrics["test_loss"] < 1.0


def test_tfidf_logreg_finds_the_planted_signal(synthetic_runs):
    tfidf, majority = synthetic_runs["tfidf_logreg"], synthetic_runs["majority"]
    assert tfidf["majority_accuracy"] == majority["majority_accuracy"]  # same split, same floor
    assert tfidf["test_accuracy"] > majority["majority_accuracy"] + 0.03
    assert tfidf["p_value_vs_majority"] < 0.01


def test_tfidf_on_shuffled_labels_does_no_better_than_chance(synthetic_runs):
    shuffled = synthetic_runs["shuffled"]
    n = shuffled["n_test"]
    predictions = pd.read_csv(Path(shuffled["output_dir"]) / "predictions_test.csv")
    # Predictions independent of the labels score sum_c P(predicted c) * P(label c) on average:
    # between the train majority's accuracy (0.46 here: that class is the test minority) and the
    # better constant guess (0.54). A model that found a leak would land above that interval.
    chance = sum(
        np.mean(predictions["predicted"] == c) * np.mean(predictions["label"] == c) for c in (0, 1)
    )
    low, high = stats.wilson_interval(round(chance * n), n)
    assert low <= shuffled["test_accuracy"] <= high
    best_constant = max(shuffled["majority_accuracy"], 1 - shuffled["majority_accuracy"])
    assert stats.binomial_p_value(round(shuffled["test_accuracy"] * n), n, best_constant) > 0.05
    assert abs(shuffled["test_auroc"] - 0.5) < 0.06


# ---- momentum, by hand --------------------------------------------------------------------------
INTERVAL = 2  # minutes


def tiny_market(folder: Path) -> tuple[Path, Path]:
    """Two NYSE sessions of 1-minute bars on a 5-cent grid (many flat stretches, so some prior
    returns are exactly 0), and tweets every few minutes; the second day's first tweets come
    before open + INTERVAL, so their prior window leaves the session."""
    rng = np.random.default_rng(7)
    bars = []
    for day in ("2019-03-05", "2019-03-06"):
        starts = pd.date_range(f"{day} 09:30", f"{day} 15:59", freq="1min", tz="America/New_York")
        steps = rng.choice([-1, 0, 1], size=len(starts), p=[0.35, 0.3, 0.35])
        close = np.round(100 + 0.05 * np.cumsum(steps), 2)
        opens = np.concatenate([[close[0]], close[:-1]])
        bars.append(
            pd.DataFrame(
                {
                    "timestamp": starts.tz_convert("UTC"),
                    "open": opens,
                    "close": close,
                    "high": np.maximum(opens, close),
                    "low": np.minimum(opens, close),
                    "volume": 100,
                }
            )
        )
    day_a = pd.date_range("2019-03-05 09:40:30", periods=60, freq="6min", tz="America/New_York")
    day_b = pd.DatetimeIndex(
        ["2019-03-06 09:30:40", "2019-03-06 09:31:05", "2019-03-06 09:31:50"], tz="America/New_York"
    ).append(pd.date_range("2019-03-06 09:33:30", periods=27, freq="4min", tz="America/New_York"))
    times = day_a.append(day_b).tz_convert("UTC")
    words = np.array(["deal", "tariffs", "jobs", "great", "china", "market", "fake", "news"])
    tweets = pd.DataFrame(
        {
            "id": np.arange(1000, 1000 + len(times)),
            "created_at": times,
            "text": [" ".join(rng.choice(words, size=4)) for _ in times],
            "retweet_count": 10,
            "favorite_count": 20,
            "is_retweet": False,
        }
    )
    tweets.to_csv(folder / "tweets.csv", index=False)
    pd.concat(bars).to_csv(folder / "prices.csv", index=False)
    return folder / "tweets.csv", folder / "prices.csv"


def hand_prior_return(created_at: pd.Timestamp, bars: pd.DataFrame) -> float:
    """close(last bar completed by t) / close(last bar completed by t - N) - 1; NaN when no bar
    of t's session has completed by t - N."""
    completes = bars["timestamp"] + pd.Timedelta(minutes=1)
    before = created_at - pd.Timedelta(minutes=INTERVAL)
    session_open = created_at.tz_convert("America/New_York").normalize() + pd.Timedelta(
        hours=9, minutes=30
    )
    in_session = bars["timestamp"] >= session_open
    if not (in_session & (completes <= before)).any():
        return np.nan
    start = bars["close"][completes <= created_at].iloc[-1]
    prior = bars["close"][completes <= before].iloc[-1]
    return start / prior - 1


def test_momentum_matches_a_hand_computation(compose_train, tmp_path):
    tweets_path, prices_path = tiny_market(tmp_path)
    cfg = compose_train(
        tmp_path / "run",
        "model=momentum",
        "data=archive",
        f"data.tweets_path={tweets_path}",
        f"data.prices_path={prices_path}",
        f"data.interval={INTERVAL}",
        "data.split_fractions=[0.5,0.1,0.4]",
        "data.vocab_size=50",
    )
    metrics = train(cfg)
    predictions = pd.read_csv(tmp_path / "run" / "predictions_test.csv", parse_dates=["created_at"])
    bars = pd.read_csv(prices_path, parse_dates=["timestamp"])
    prior = np.array([hand_prior_return(t, bars) for t in predictions["created_at"]])
    fallback = metrics["majority_class"]
    expected = np.where(prior > 0, 1, np.where(prior < 0, 0, fallback))
    np.testing.assert_array_equal(predictions["predicted"].to_numpy(), expected)
    fell_back = int((np.isnan(prior) | (prior == 0)).sum())
    assert metrics["momentum_fallback_test"] == fell_back
    assert metrics["momentum_fallback_class"] == fallback
    # The test split holds every kind of case, or this test would prove less than it says.
    assert np.isnan(prior).any() and (prior == 0).any() and (prior > 0).any() and (prior < 0).any()
    assert metrics["test_accuracy"] == pytest.approx(np.mean(expected == predictions["label"]))


def test_momentum_on_prelabeled_data_says_it_needs_prices(compose_train, tmp_path):
    rng = np.random.default_rng(0)
    pd.DataFrame(
        {"text": [f"tweet {i} deal" for i in range(60)], "label": rng.integers(0, 2, size=60)}
    ).to_csv(tmp_path / "labeled.csv", index=False)
    cfg = compose_train(
        tmp_path / "run",
        "model=momentum",
        "data=prelabeled",
        f"data.path={tmp_path / 'labeled.csv'}",
        "data.split=random",
    )
    with pytest.raises(DataError, match=r"model=momentum needs prices: data=prelabeled has none"):
        train(cfg)


# ---- every study composes with every baseline ------------------------------------------------------
STUDIES = [
    f"experiment={p.stem}"
    for p in sorted((ROOT / "lstm_tweets" / "conf" / "experiment").glob("*.yaml"))
]


@pytest.mark.parametrize("study", [*STUDIES, "hparams_search=optuna"])
@pytest.mark.parametrize("model", BASELINES)
def test_every_study_composes_with_each_baseline_at_its_first_sweep_point(study, model, tmp_path):
    """What `lstm-tweets-train -m <study> model=<baseline>` launches first: the study's sweep
    parameters (e.g. the ablation's model.concat_counts, Optuna's model.hidden_dim) must exist in
    the baseline's config too."""
    base = [f"paths.output_dir={tmp_path}", study, f"model={model}"]
    with initialize_config_dir(config_dir=str(ROOT / "lstm_tweets" / "conf")):
        cfg = compose("train", overrides=base, return_hydra_config=True)
        params = cfg.hydra.sweeper.get("params") or {}
        parser = OverridesParser.create()
        first = [
            f"{key}={next(parser.parse_override(f'{key}={value}').sweep_string_iterator())}"
            for key, value in params.items()
            if key != "model"
        ]
        cfg = compose("train", overrides=[*base, *first])
    assert cfg.model.baseline == model and "_target_" not in cfg.model


# ---- the real data ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("option", "at_least"), [("trump_spy5", 2000), ("trump_spy1", 500)])
def test_real_data_configs_label_the_shared_files(
    shared_data, option, at_least, compose_train, tmp_path
):
    cfg = compose_train(tmp_path, f"data={option}", f"paths.root_dir={ROOT}")
    assert (
        Path(cfg.data.tweets_path).resolve()
        == (shared_data / "tweets" / "trump_tweets.csv.gz").resolve()
    )
    datamodule = build(cfg.data, _convert_="all")
    datamodule.prepare_data()
    datamodule.setup("fit")
    assert len(datamodule.frame) > at_least
    assert not datamodule.frame["is_retweet"].any()
    assert datamodule.frame["prior_return_bps"].notna().mean() > 0.8
    assert (
        min(len(datamodule.split.train), len(datamodule.split.val), len(datamodule.split.test))
        > 100
    )


def test_missing_real_data_names_the_file(compose_train, tmp_path):
    cfg = compose_train(tmp_path, "data=trump_spy5", f"paths.root_dir={tmp_path / 'nowhere'}")
    datamodule = build(cfg.data, _convert_="all")
    with pytest.raises(
        DataError, match=r"nowhere/\.\./shared/data/tweets/trump_tweets\.csv\.gz.*not found"
    ):
        datamodule.prepare_data()

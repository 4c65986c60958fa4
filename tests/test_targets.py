"""Activity targets (data.target=abs_move | volume): per half-hour-slot thresholds fitted on the
train split only, the planted activity signal of the synthetic sample found through them, the
activity momentum baseline by hand, and a checkpoint that says what its target meant."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import read_metrics

from lstm_tweets.data.datamodule import TweetDataModule
from lstm_tweets.data.errors import DataError
from lstm_tweets.data.synthetic import ACTIVITY, generate_sample
from lstm_tweets.data.targets import (
    N_SLOTS,
    activity_labels,
    fit_activity_thresholds,
    half_hour_slot,
    slot_thresholds,
)
from lstm_tweets.predict import SCORE_COLUMN, load_predictor, main
from lstm_tweets.train import train

ROOT = Path(__file__).resolve().parents[1]
ACTIVITY_WORDS = rf"\b(?:{'|'.join(ACTIVITY)})\b"


def et(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="America/New_York").tz_convert("UTC")


# ---- the thresholds, by hand ---------------------------------------------------------------------
def test_half_hour_slots_of_the_session_in_new_york_time():
    stamps = [
        et("2019-06-03 09:30:00"),
        et("2019-06-03 09:59:59"),
        et("2019-06-03 10:00:00"),
        et("2019-12-03 14:00:00"),  # winter time: 19:00 UTC
        et("2019-06-03 15:59:59"),
        et("2019-06-03 09:29:59"),
        et("2019-06-03 17:00:00"),
    ]
    assert half_hour_slot(stamps).tolist() == [0, 0, 1, 9, 12, -1, 12]


def test_slot_medians_with_an_overall_fallback_and_strict_exceedance():
    frame = pd.DataFrame(
        {
            "created_at": [
                et("2019-06-03 09:35"),
                et("2019-06-04 09:40"),
                et("2019-06-05 09:50"),
                et("2019-06-03 12:10"),
                et("2019-06-04 12:20"),
                et("2019-06-06 15:45"),  # not in train: slot 12 stays empty in train
            ],
            "abs_return_bps": [10.0, 20.0, 30.0, 1.0, 2.0, 50.0],
        }
    )
    thresholds = fit_activity_thresholds(frame, np.arange(5), "abs_return_bps")
    assert thresholds["by_slot"]["0"] == 20.0  # median of 10, 20, 30
    assert thresholds["by_slot"]["5"] == 1.5  # 12:00-12:30: median of 1 and 2
    assert thresholds["overall"] == 10.0  # median of the five train values
    assert thresholds["by_slot"]["12"] == 10.0  # no train tweet in 15:30-16:00: the overall one
    assert thresholds["n_train_by_slot"]["0"] == 3 and thresholds["n_train_by_slot"]["12"] == 0
    assert len(thresholds["by_slot"]) == N_SLOTS
    # Above the slot's median is 1; equal to it is 0.
    assert activity_labels(frame, thresholds, "abs_return_bps").tolist() == [0, 0, 1, 0, 1, 1]


def test_the_threshold_ignores_the_test_period():
    """Train-only: making the test period ten times as volatile moves no threshold (while it does
    move the test labels)."""
    rng = np.random.default_rng(0)
    n = 400
    created = pd.Series(
        pd.date_range("2019-01-02 14:35", periods=n, freq="6h", tz="UTC")
    ).sort_values()
    calm = pd.DataFrame({"created_at": created.to_numpy(), "abs_return_bps": rng.exponential(5, n)})
    train_index, test_index = np.arange(280), np.arange(300, n)
    wild = calm.copy()
    wild.loc[test_index, "abs_return_bps"] *= 10
    fitted = [fit_activity_thresholds(f, train_index, "abs_return_bps") for f in (calm, wild)]
    assert fitted[0] == fitted[1]
    train_only = fit_activity_thresholds(calm.iloc[train_index], np.arange(280), "abs_return_bps")
    assert train_only == fitted[0]
    labels = [activity_labels(f, fitted[0], "abs_return_bps")[test_index] for f in (calm, wild)]
    assert labels[1].mean() > 0.9 > 0.6 > labels[0].mean()


WILD_FROM = pd.Timestamp("2019-10-01", tz="UTC")


def volatile_test_period(tmp_path: Path, factor: float) -> tuple[Path, Path]:
    """A small market whose 1-minute log returns from October on (validation and test periods)
    are `factor` times as large."""
    tweets, bars = generate_sample(
        seed=3, n_tweets=1500, first_day="2019-01-02", last_day="2019-12-31", share_activity=0.0
    )
    returns = np.log(bars["close"]).diff().fillna(0.0).to_numpy().copy()
    day = bars["timestamp"].dt.tz_convert("America/New_York").dt.date
    first_of_day = (day != day.shift()).to_numpy()
    returns[first_of_day] = 0.0
    late = (bars["timestamp"] >= WILD_FROM).to_numpy()
    returns = np.where(late, returns * factor, returns)
    level = bars["close"].to_numpy()[first_of_day][np.cumsum(first_of_day) - 1]
    cum = pd.Series(returns).groupby(np.cumsum(first_of_day)).cumsum().to_numpy()
    close = level * np.exp(cum)
    bars = bars.assign(close=close, open=close, high=close, low=close)
    folder = tmp_path / f"x{factor:g}"
    folder.mkdir()
    tweets.to_csv(folder / "tweets.csv", index=False)
    bars.to_parquet(folder / "prices.parquet", index=False)
    return folder / "tweets.csv", folder / "prices.parquet"


def test_a_more_volatile_test_period_does_not_move_the_datamodules_threshold(tmp_path):
    modules = {}
    for factor in (1.0, 10.0):
        tweets_path, prices_path = volatile_test_period(tmp_path, factor)
        dm = TweetDataModule(
            source="archive",
            tweets_path=str(tweets_path),
            prices_path=str(prices_path),
            target="abs_move",
            cache_dir=str(tmp_path / "cache"),
            embedding={"kind": "random", "dim": 8},
        )
        dm.setup()
        modules[factor] = dm
    calm, wild = modules[1.0], modules[10.0]
    created = wild.frame["created_at"]
    assert created.iloc[wild.split.train].max() < WILD_FROM < created.iloc[wild.split.test].min()
    assert wild.thresholds == calm.thresholds
    assert wild.report.to_dict()["target_thresholds"] == wild.thresholds
    assert wild.state_dict()["thresholds"] == wild.thresholds
    # Its test labels do see the wilder market; the direction stays beside them.
    test = wild.split.test
    assert wild.labels[test].mean() > 0.85 and calm.labels[test].mean() < 0.7
    assert set(wild.frame["direction_label"]) == {0, 1}


def test_the_volume_target_drops_tweets_without_a_volume_ratio(cache_dir):
    dm = TweetDataModule(cache_dir=str(cache_dir), target="volume", embedding={"kind": "random"})
    dm.setup()
    report = dm.report.to_dict()
    # The sample's first 10 sessions have no 20-session history (fewer than 10 sessions before).
    assert report["no_volume_history"] == report["dropped_no_volume_history"] > 0
    assert dm.frame["volume_ratio"].notna().all()
    assert report["target_low"] + report["target_high"] == len(dm.frame)
    assert report["target_thresholds"]["column"] == "volume_ratio"


def test_activity_targets_need_prices(tmp_path):
    pd.DataFrame({"text": [f"t {i}" for i in range(40)], "label": [0, 1] * 20}).to_csv(
        tmp_path / "labeled.csv", index=False
    )
    for target in ("abs_move", "volume"):
        dm = TweetDataModule(
            source="prelabeled",
            path=str(tmp_path / "labeled.csv"),
            split="random",
            target=target,
            cache_dir=str(tmp_path / "cache"),
        )
        with pytest.raises(DataError, match="prelabeled has none"):
            dm.setup()
    with pytest.raises(DataError, match=r"data\.target='sideways'"):
        TweetDataModule(target="sideways")


# ---- the planted activity signal, found through the abs_move target --------------------------
@pytest.fixture(scope="module")
def abs_move_runs(compose_train, tmp_path_factory) -> dict:
    """TF-IDF, momentum and a short LSTM with data.target=abs_move on the synthetic sample, with
    a long test period (the absolute move of one window is a noisy label: more test tweets)."""
    runs = {}
    for model in ("tfidf_logreg", "momentum", "lstm"):
        output_dir = tmp_path_factory.mktemp(f"abs_move_{model}")
        cfg = compose_train(
            output_dir,
            f"model={model}",
            "data.target=abs_move",
            "data.split_fractions=[0.5,0.1,0.4]",
        )
        train(cfg)
        runs[model] = (cfg, output_dir, read_metrics(output_dir))
    return runs


def test_tfidf_finds_the_planted_activity_signal_through_abs_move(abs_move_runs):
    cfg, output_dir, metrics = abs_move_runs["tfidf_logreg"]
    assert metrics["target"] == "abs_move" and metrics["window_start"] == "after_tweet"
    thresholds = metrics["data_report"]["target_thresholds"]
    assert thresholds["column"] == "abs_return_bps" and len(thresholds["by_slot"]) == N_SLOTS
    assert metrics["p_value_vs_majority"] < 0.01
    assert metrics["lift_vs_majority_ci_low"] > 0
    # It is the activity keywords that it reads: test tweets carrying one get a higher P(large).
    predictions = pd.read_csv(output_dir / "predictions_test.csv", dtype={"id": str})
    dm = TweetDataModule(cache_dir=cfg.paths.cache_dir, target="abs_move")
    dm.prepare_data()
    texts = pd.read_parquet(dm.labeled_cache_path())[["id", "text"]].astype({"id": str})
    joined = predictions.merge(texts, on="id")
    assert len(joined) == len(predictions)
    active = joined["text"].str.lower().str.contains(ACTIVITY_WORDS)
    assert 0.08 < active.mean() < 0.25
    # (Its probabilities are shrunk toward 1/2 by the chosen regularization: a small gap.)
    assert joined["prob_1"][active].mean() > joined["prob_1"][~active].mean() + 0.02
    assert joined["label"][active].mean() > joined["label"][~active].mean() + 0.2


def test_activity_momentum_matches_its_rule(abs_move_runs, compose_train, tmp_path):
    cfg, output_dir, metrics = abs_move_runs["momentum"]
    assert metrics["target"] == "abs_move"
    thresholds = metrics["momentum_thresholds"]
    dm = TweetDataModule(cache_dir=cfg.paths.cache_dir, target="abs_move")
    dm.prepare_data()
    frame = pd.read_parquet(dm.labeled_cache_path()).astype({"id": str})
    predictions = pd.read_csv(output_dir / "predictions_test.csv", dtype={"id": str})
    rows = frame.set_index("id").loc[predictions["id"]]
    prior = rows["prior_return_bps"].to_numpy()
    cut = slot_thresholds(thresholds, rows["created_at"].to_numpy())
    expected = np.where(
        np.isnan(prior), metrics["majority_class"], (np.abs(prior) > cut).astype(int)
    )
    np.testing.assert_array_equal(predictions["predicted"].to_numpy(), expected)
    assert metrics["momentum_fallback_test"] == int(np.isnan(prior).sum())
    # Its thresholds are train medians of |prior return| per slot: the train rows reproduce them.
    train_rows = frame.iloc[: metrics["n_train"]]
    slot3 = train_rows[half_hour_slot(train_rows["created_at"].to_numpy()) == 3]
    assert thresholds["by_slot"]["3"] == pytest.approx(
        np.nanmedian(np.abs(slot3["prior_return_bps"]))
    )


def test_an_abs_move_checkpoint_scores_p_large_move(abs_move_runs, capsys):
    _, output_dir, metrics = abs_move_runs["lstm"]
    assert metrics["target"] == "abs_move" and metrics["model"] == "lstm"
    checkpoint = output_dir / "checkpoints" / "best.ckpt"
    _, _, meaning = load_predictor(checkpoint)
    assert meaning.target == "abs_move"
    assert meaning.thresholds == metrics["data_report"]["target_thresholds"]
    assert main(["--checkpoint", str(checkpoint), "--text", "Powell and the Fed, rates!"]) == 0
    printed = capsys.readouterr().out
    assert "target abs_move" in printed
    assert SCORE_COLUMN["abs_move"] in printed and "p_up" not in printed


# ---- the real data -----------------------------------------------------------------------------
def test_real_abs_move_run_names_its_target(shared_data, compose_train, tmp_path):
    """`lstm-tweets-train data=trump_spy5 data.target=abs_move` (a short run)."""
    cfg = compose_train(
        tmp_path, "data=trump_spy5", "data.target=abs_move", f"paths.root_dir={ROOT}"
    )
    metrics = train(cfg)
    assert read_metrics(tmp_path)["target"] == metrics["target"] == "abs_move"
    report = metrics["data_report"]
    assert report["target_low"] + report["target_high"] == report["labeled"]
    by_slot = report["target_thresholds"]["by_slot"]
    # The open is busier than midday.
    assert by_slot["0"] > by_slot["6"] > 0

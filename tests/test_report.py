"""The study report, fed by REAL tiny Hydra multiruns (made once for this module), not by
hand-written metrics.json files."""

from __future__ import annotations

import json
import logging
import shutil
import sys

import pandas as pd
import pytest
import yaml

from lstm_tweets import report, stats, studies

# Two short epochs of a few batches: enough for curves, a best epoch and paired predictions.
TINY = [
    "trainer.max_epochs=2",
    "++trainer.limit_train_batches=2",
    "++trainer.limit_val_batches=2",
    "++trainer.enable_model_summary=false",
    "callbacks.rich_progress_bar=null",
    "embedding.dim=8",
    "++embedding.epochs=1",
    "model.hidden_dim=8",
    "data.batch_size=64",
]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def hydra_multirun(log_dir, cache_dir, *overrides: str) -> None:
    """`lstm-tweets-train -m ...` in this process: a fresh interpreter would spend longer importing
    torch than these jobs take to run."""
    import torch
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    from lstm_tweets.train import main

    root = logging.getLogger()
    handlers, level, threads = root.handlers[:], root.level, torch.get_num_threads()
    argv = [
        "lstm-tweets-train",
        "-m",
        *overrides,
        *TINY,
        f"paths.log_dir={log_dir}",
        f"paths.cache_dir={cache_dir}",
    ]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "argv", argv)
        patch.setenv(
            "HYDRA_FULL_ERROR", "1"
        )  # a failing job raises its own error, not SystemExit(1)
        # Tiny LSTMs on a shared machine: extra threads only spin against each other.
        torch.set_num_threads(1)
        GlobalHydra.instance().clear()
        try:
            main()
        finally:
            GlobalHydra.instance().clear()
            HydraConfig.instance().cfg = None
            torch.set_num_threads(threads)
            root.handlers[:] = handlers  # Hydra's job logging replaced them
            root.setLevel(level)


def only_sweep(log_dir, study: str):
    (sweep,) = (log_dir / "multiruns" / study).iterdir()
    return sweep


@pytest.fixture(scope="module")
def comparison_sweep(tmp_path_factory, cache_dir):
    """2 intervals x 2 seeds."""
    log_dir = tmp_path_factory.mktemp("comparison_runs")
    hydra_multirun(
        log_dir,
        cache_dir,
        "experiment=comparison",
        "data.interval=5,10",
        "seed=1,2",
        "embedding=random",
    )
    return only_sweep(log_dir, "comparison")


@pytest.fixture(scope="module")
def ablation_sweep(tmp_path_factory, cache_dir):
    """The 2x2 ablation (word2vec/random x counts on/off), one seed."""
    log_dir = tmp_path_factory.mktemp("ablation_runs")
    hydra_multirun(log_dir, cache_dir, "experiment=ablation", "seed=1")
    return only_sweep(log_dir, "ablation")


def copy_sweep(sweep, root):
    """A copy of the sweep under root/multiruns/<study>/<time>, to break without touching the original."""
    target = root / "multiruns" / sweep.parent.name / sweep.name
    shutil.copytree(sweep, target)
    return target


def job_seed_and_interval(job_dir) -> tuple[int, int]:
    config = yaml.safe_load((job_dir / ".hydra" / "config.yaml").read_text())
    return config["seed"], config["data"]["interval"]


@pytest.fixture(scope="module")
def comparison_report(comparison_sweep, tmp_path_factory):
    """The comparison with job 3's metrics.json removed (a crashed run), reported through the CLI."""
    root = tmp_path_factory.mktemp("comparison_report")
    sweep = copy_sweep(comparison_sweep, root)
    (sweep / "3" / "metrics.json").unlink()
    out = root / "reports"
    assert (
        report.main(["comparison", "--multiruns", str(root / "multiruns"), "--out", str(out)]) == 0
    )
    return sweep, out / "comparison"


def test_in_process_multirun_writes_one_metrics_json_per_job(comparison_sweep):
    assert len(list(comparison_sweep.glob("*/metrics.json"))) == 4
    assert (comparison_sweep / "multirun.yaml").is_file()


def test_design_is_read_from_multirun_yaml(comparison_sweep):
    design = studies.read_design(comparison_sweep)
    # The command line's sweep replaced the experiment's 5..50 list, as Hydra's sweeper does.
    assert design.axes == {"data.interval": ["5", "10"]}
    assert design.seeds == ["1", "2"]
    assert design.command.startswith(
        "lstm-tweets-train -m experiment=comparison data.interval=5,10 seed=1,2 "
    )


def seed_predictions(sweep, interval):
    """Each finished seed's predictions_test.csv at one interval, and its metrics.json."""
    out = []
    for path in sorted(sweep.glob("*/metrics.json")):
        metrics = json.loads(path.read_text())
        if metrics["interval"] == interval:
            frame = pd.read_csv(path.parent / "predictions_test.csv", dtype={"id": str})
            out.append((metrics, frame.set_index("id")))
    return out


def test_cell_is_the_seed_ensemble_on_the_true_test_set(comparison_report):
    """Seeds share one test set: the cell is scored once, on n_test tweets (never the seeds'
    counts summed), as the mean probability over seeds, with the day-block interval."""
    sweep, out = comparison_report
    summary = pd.read_csv(out / "summary.csv")
    markdown = (out / "report.md").read_text()
    assert list(summary["data.interval"]) == [5, 10]
    for interval in (5, 10):
        seeds = seed_predictions(sweep, interval)
        row = summary.set_index("data.interval").loc[interval]
        first = seeds[0][1]
        mean = sum(frame.loc[first.index, ["prob_0", "prob_1"]].to_numpy() for _, frame in seeds)
        mean = mean / len(seeds)
        by_hand = stats.evaluate_predictions(
            first["label"].to_numpy(),
            mean,
            stats.trading_days(first["created_at"].to_numpy()),
            seeds[0][0]["majority_class"],
        )
        assert row.seeds_found == len(seeds) and row.seeds_expected == 2
        assert row.n_test == seeds[0][0]["n_test"] == len(first)  # the true n, not n x seeds
        assert row.n_seeds == len(seeds)
        assert row.n_days == seeds[0][0]["n_test_days"]
        for key in ("accuracy", "ci_low", "ci_high", "lift", "lift_ci_low", "lift_ci_high"):
            assert row[key] == pytest.approx(by_hand[key]), key
        assert row.p_vs_majority == pytest.approx(by_hand["p_vs_majority"])
        spread = stats.seed_spread([m["test_accuracy"] for m, _ in seeds])
        assert row.seed_mean == pytest.approx(spread["mean"])
        assert row.seed_std == pytest.approx(spread["std"])
        # The interval of a seed average on one test set is as wide as one run's, not
        # sqrt(seeds) narrower as the counts pooled over seeds would make it.
        width = row.ci_high - row.ci_low
        assert width >= 0.8 * min(
            m["test_accuracy_ci_high"] - m["test_accuracy_ci_low"] for m, _ in seeds
        )
        k_pooled = sum(round(m["test_accuracy"] * m["n_test"]) for m, _ in seeds)
        n_pooled = sum(m["n_test"] for m, _ in seeds)
        pooled_low, pooled_high = stats.wilson_interval(k_pooled, n_pooled)
        if len(seeds) > 1:
            assert width > pooled_high - pooled_low
        assert (
            f"| {interval} | lstm | {len(seeds)}/2 | {len(first)} ({row.n_days}) | "
            f"{by_hand['accuracy']:.3f} [{by_hand['ci_low']:.3f}, {by_hand['ci_high']:.3f}]"
            in markdown
        )
        assert (
            ", ".join(
                f"{m['seed']}:{m['best_epoch']}"
                for m, _ in sorted(seeds, key=lambda s: s[0]["seed"])
            )
            in markdown
        )
    # One family, named, Holm-adjusted.
    assert summary.p_vs_majority_holm.tolist() == pytest.approx(
        stats.holm_correction(summary.p_vs_majority.tolist())
    )
    assert "Test family for Holm" in markdown and "; 2 tests with results here" in markdown
    required = {
        "model",
        "interval",
        "n_test",
        "n_days",
        "n_seeds",
        "accuracy",
        "ci_low",
        "ci_high",
        "seed_mean",
        "seed_std",
        "majority_accuracy",
        "lift",
        "lift_ci_low",
        "lift_ci_high",
        "p_vs_majority",
        "p_vs_majority_holm",
        "p_vs_momentum",
    }
    assert required <= set(summary.columns)


def test_missing_run_is_listed(comparison_report):
    sweep, out = comparison_report
    seed, interval = job_seed_and_interval(sweep / "3")
    missing = (out / "report.md").read_text().split("## Missing")[1]
    assert f"`data.interval={interval}`, seed {seed}: job `3` has no metrics.json" in missing


def test_figures_are_png_files(comparison_report):
    _, out = comparison_report
    for name in ("accuracy_vs_interval.png", "curves.png"):
        data = (out / name).read_bytes()
        assert len(data) > 1000 and data.startswith(PNG_MAGIC)
        assert f"]({name})" in (out / "report.md").read_text()
    assert not (out / "ablation.png").exists()


def test_expected_job_that_never_ran_is_missing_not_an_error(comparison_sweep, tmp_path):
    sweep = copy_sweep(comparison_sweep, tmp_path)
    seed, interval = job_seed_and_interval(sweep / "2")
    shutil.rmtree(sweep / "2")
    (sweep / "3" / "metrics.json").unlink()
    assert report.main(["--sweep-dir", str(sweep), "--out", str(tmp_path / "reports")]) == 0
    markdown = (tmp_path / "reports" / "comparison" / "report.md").read_text()
    assert f"`data.interval={interval}`, seed {seed}: no job in the sweep" in markdown
    assert f"`data.interval={interval}`: the whole cell is missing" in markdown
    assert f"| {interval} | — | 0/2 | — |" in markdown


def test_latest_sweep_by_default_and_all_pools(tmp_path):
    for name in (
        "2026-01-01_00-00-00",
        "2026-02-01_00-00-00-worker1",
        "2026-02-01_00-00-00-worker2",
    ):
        (tmp_path / "study" / name).mkdir(parents=True)
        (tmp_path / "study" / name / "multirun.yaml").write_text("{}")
    (tmp_path / "study" / "2026-03-01_00-00-00").mkdir()  # no multirun.yaml: not a sweep
    latest = studies.sweep_dirs(tmp_path, "study")
    assert [d.name for d in latest] == [
        "2026-02-01_00-00-00-worker1",
        "2026-02-01_00-00-00-worker2",
    ]
    assert len(studies.sweep_dirs(tmp_path, "study", pool_all=True)) == 3


def test_ablation_mcnemar_against_the_full_model_with_holm(ablation_sweep, tmp_path):
    assert report.main(["--sweep-dir", str(ablation_sweep), "--out", str(tmp_path)]) == 0
    out = tmp_path / "ablation"
    summary = pd.read_csv(out / "summary.csv")
    assert len(summary) == 4
    full = (summary.embedding == "word2vec") & summary["model.concat_counts"]
    assert list(summary.loc[full, "mcnemar_vs"]) == ["(reference)"]
    variants = summary[~full]
    assert variants.mcnemar_p.notna().all() and len(variants) == 3
    assert (variants.mcnemar_p_holm >= variants.mcnemar_p - 1e-12).all()
    assert variants.mcnemar_p_holm.tolist() == pytest.approx(
        stats.holm_correction(variants.mcnemar_p.tolist())
    )

    # b and c by hand for one variant: pair the two runs' test predictions by tweet id.
    def predictions(embedding, counts):
        for job in ablation_sweep.glob("*/.hydra/config.yaml"):
            config = yaml.safe_load(job.read_text())
            if (
                config["embedding"]["kind"] == embedding
                and config["model"]["concat_counts"] == counts
            ):
                return pd.read_csv(job.parents[1] / "predictions_test.csv", dtype={"id": str})

    both = predictions("word2vec", True).merge(predictions("random", False), on="id")
    full_right, variant_right = both.label_x == both.predicted_x, both.label_y == both.predicted_y
    row = summary[(summary.embedding == "random") & ~summary["model.concat_counts"]].iloc[0]
    assert (row.mcnemar_b, row.mcnemar_c) == (
        (full_right & ~variant_right).sum(),
        (~full_right & variant_right).sum(),
    )

    markdown = (out / "report.md").read_text()
    assert "McNemar vs full: b / c" in markdown and "p (Holm)" in markdown
    assert "FINAL counts" in markdown  # the look-ahead note
    assert "None: every expected run finished." in markdown
    for name in ("ablation.png", "curves.png"):
        assert (out / name).read_bytes().startswith(PNG_MAGIC)
    assert not (out / "accuracy_vs_interval.png").exists()


def test_max_over_epochs_sits_beside_the_best_validation_number(comparison_sweep, tmp_path):
    """seed_study_repro's runs also log the reference's max-over-epochs test accuracy."""
    sweep = copy_sweep(comparison_sweep, tmp_path)
    for path in sweep.glob("*/metrics.json"):
        metrics = json.loads(path.read_text())
        path.write_text(
            json.dumps(
                {**metrics, "test_accuracy_max_over_epochs": metrics["test_accuracy"] + 0.01}
            )
        )
    report.main(["--sweep-dir", str(sweep), "--out", str(tmp_path / "reports")])
    summary = pd.read_csv(tmp_path / "reports" / "comparison" / "summary.csv")
    assert (summary.acc_max_over_epochs_mean - summary.seed_mean).tolist() == pytest.approx(
        [0.01, 0.01]
    )
    assert "max over epochs" in (tmp_path / "reports" / "comparison" / "report.md").read_text()


def test_optuna_sweep_is_summarized_from_its_results_file(tmp_path):
    sweep = tmp_path / "multiruns" / "sweep" / "2026-01-01_00-00-00-worker1"
    sweep.mkdir(parents=True)
    results = {
        "name": "optuna",
        "study_name": "lstm_tweets_sweep",
        "n_complete": 3,
        "n_failed": 0,
        "best_params": {"data.interval": 10},
        "best_value": 0.55,
        "best_trial": 2,
    }
    (sweep / "optimization_results.yaml").write_text(yaml.safe_dump(results))
    assert (
        report.main(
            ["--multiruns", str(tmp_path / "multiruns"), "--out", str(tmp_path / "reports")]
        )
        == 0
    )
    markdown = (tmp_path / "reports" / "sweep" / "report.md").read_text()
    assert "lstm_tweets_sweep" in markdown and "0.55" in markdown


def test_a_study_that_was_never_run_is_an_error(tmp_path):
    assert (
        report.main(["nothing", "--multiruns", str(tmp_path), "--out", str(tmp_path / "reports")])
        == 1
    )


def test_pooling_a_fixed_model_run_with_a_model_sweep_expects_each_sweeps_own_runs():
    from lstm_tweets.studies import Design, merge_designs

    lstm = Design({"data.interval": ["5", "10"]}, ["1", "2"], "lstm sweep", fixed={"model": "lstm"})
    baselines = Design(
        {"model": ["majority", "momentum"], "data.interval": ["5", "10"]}, ["1"], "baselines"
    )
    merged = merge_designs([lstm, baselines])
    assert list(merged.axes) == ["data.interval", "model"]
    assert merged.axes["model"] == ["lstm", "majority", "momentum"]
    assert (
        len(merged.pairs()) == 2 * 2 + 2 * 2
    )  # lstm: 2 intervals x 2 seeds; baselines: 4 cells x 1 seed
    assert merged.seeds_for(("5", "lstm")) == ["1", "2"]
    assert merged.seeds_for(("5", "majority")) == ["1"]
    with pytest.raises(ValueError, match="neither sweeps nor fixes"):
        merge_designs([Design({"data.interval": ["5"]}, ["1"], "a"), baselines])


def test_walk_forward_folds_pool_their_tweets_per_model():
    """Each fold's test tweets join one out-of-sample set, each scored against its own fold's
    train majority class."""
    from lstm_tweets.report import pooled_over_folds
    from lstm_tweets.studies import Design

    def fold(start: str, n: int, right: int, labels_up: int, majority: int) -> pd.DataFrame:
        created = pd.date_range(start, periods=n, freq="1D", tz="UTC") + pd.Timedelta(hours=15)
        label = [1] * labels_up + [0] * (n - labels_up)
        predicted = [y if i < right else 1 - y for i, y in enumerate(label)]
        frame = pd.DataFrame(
            {
                "id": [f"{start}-{i}" for i in range(n)],
                "created_at": created.astype(str),
                "label": label,
                "prob_0": [1.0 - p for p in predicted],
                "prob_1": [float(p) for p in predicted],
                "predicted": predicted,
                "majority": majority,
            }
        )
        return frame.set_index(frame["id"].to_numpy())

    design = Design({"data.fold": ["0", "1"], "model": ["lstm"]}, ["1"], "wf")
    ensembles = {
        ("0", "lstm"): fold("2019-01-01", 40, right=30, labels_up=10, majority=0),
        ("1", "lstm"): fold("2019-06-01", 20, right=5, labels_up=15, majority=1),
    }
    pooled = pooled_over_folds(design, ensembles, "data.fold").set_index("model")
    assert pooled.loc["lstm", "n"] == 60 and pooled.loc["lstm", "folds"] == 2
    assert pooled.loc["lstm", "n_days"] == 60  # one tweet a day here
    assert pooled.loc["lstm", "accuracy"] == pytest.approx(35 / 60)
    # Fold 0's majority (down) is right on its 30 down tweets, fold 1's (up) on its 15 up tweets.
    assert pooled.loc["lstm", "majority"] == pytest.approx((30 + 15) / 60)
    assert pooled.loc["lstm", "ci_low"] <= 35 / 60 <= pooled.loc["lstm", "ci_high"]
    assert (
        pooled_over_folds(Design({"model": ["lstm"]}, ["1"], "x"), ensembles, "data.fold") is None
    )


def test_a_model_fixed_differently_in_pooled_sweeps_becomes_an_axis():
    """`model=tfidf_logreg` in one sweep and `model=lstm` in another: their runs are different
    cells of the pool, never one."""
    from lstm_tweets.studies import Design, merge_designs

    tfidf = Design({"data.interval": ["5"]}, ["1"], "a", fixed={"model": "tfidf_logreg"})
    lstm = Design({"data.interval": ["5"]}, ["1", "2"], "b", fixed={"model": "lstm"})
    merged = merge_designs([tfidf, lstm])
    assert merged.axes == {"data.interval": ["5"], "model": ["tfidf_logreg", "lstm"]}
    assert merged.seeds_for(("5", "lstm")) == ["1", "2"]
    assert merged.seeds_for(("5", "tfidf_logreg")) == ["1"]

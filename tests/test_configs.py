"""Every option of every config group composes from the real `conf/` and builds its objects, the
way `train` builds them; a typo fails when the config is composed, not deep in training."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import pytorch_lightning as pl
import torch
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from lstm_tweets.data.datamodule import TweetDataModule
from lstm_tweets.data.errors import DataError
from lstm_tweets.data.synthetic import generate_sample
from lstm_tweets.train import build

CONF_DIR = Path(__file__).resolve().parents[1] / "lstm_tweets" / "conf"
GROUPS = sorted(p.name for p in CONF_DIR.iterdir() if p.is_dir())
OPTIONS = [(g, f.stem) for g in GROUPS for f in sorted((CONF_DIR / g).glob("*.yaml"))]
POSITIVE_WORDS = ["tremendous", "booming", "record", "deal", "jobs"]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    """Small files for the options that need paths: an archive-style tweets + prices pair (four
    weeks of the synthetic generator), a prelabeled CSV and a word2vec text vectors file."""
    folder = tmp_path_factory.mktemp("inputs")
    tweets, bars = generate_sample(
        seed=3, n_tweets=400, first_day="2019-03-04", last_day="2019-03-29", n_duplicates=2
    )
    tweets.to_csv(folder / "tweets.csv", index=False)
    bars.to_csv(folder / "prices.csv", index=False)
    rng = np.random.default_rng(0)
    words = ["deal", "tariffs", "jobs", "disaster", "great", "the", "fake-news"]
    pd.DataFrame(
        {
            "text": [" ".join(rng.choice(words, size=rng.integers(1, 8))) for _ in range(120)],
            "label": rng.integers(0, 2, size=120),
            "retweet_count": rng.integers(0, 5000, size=120),
        }
    ).to_csv(folder / "prelabeled.csv", index=False)
    vectors = [f"{w} " + " ".join(f"{x:.4f}" for x in rng.normal(size=8)) for w in POSITIVE_WORDS]
    (folder / "vectors.txt").write_text(f"{len(vectors)} 8\n" + "\n".join(vectors) + "\n")
    return {
        "tweets": folder / "tweets.csv",
        "prices": folder / "prices.csv",
        "prelabeled": folder / "prelabeled.csv",
        "vectors": folder / "vectors.txt",
    }


def required_overrides(group: str, option: str, inputs: dict[str, Path]) -> list[str]:
    """The `???` values an option leaves to the user."""
    return {
        ("data", "archive"): [
            f"data.tweets_path={inputs['tweets']}",
            f"data.prices_path={inputs['prices']}",
        ],
        ("data", "prelabeled"): [f"data.path={inputs['prelabeled']}", "data.split=random"],
        ("embedding", "pretrained"): [f"embedding.path={inputs['vectors']}", "embedding.dim=8"],
    }.get((group, option), [])


def build_everything(cfg) -> dict:
    """What `train.fit_and_test` builds, without data: datamodule, model, callbacks, logger, trainer."""
    datamodule = build(cfg.data, _convert_="all")
    assert isinstance(datamodule, TweetDataModule)
    built = {"data": datamodule}
    if cfg.model.get("baseline"):
        # Baselines are functions that train.run_baseline looks up by name, not objects.
        from lstm_tweets.baselines import BASELINES

        assert cfg.model.baseline in BASELINES
    else:
        dim = int(cfg.embedding.dim)
        built["model"] = build(
            cfg.model,
            _convert_="all",
            vocab_size=20,
            embedding_dim=dim,
            num_classes=datamodule.num_classes,
            embedding_matrix=np.zeros((20, dim), dtype=np.float32),
            class_counts=[5, 7],
            trainable_embedding=bool(cfg.embedding.get("trainable", True)),
        )
        assert isinstance(built["model"], pl.LightningModule)
    callbacks = [build(c) for c in (cfg.get("callbacks") or {}).values() if c]
    assert all(isinstance(c, pl.Callback) for c in callbacks)
    logger = build(cfg.logger) if cfg.get("logger") else False
    trainer_cfg = cfg.trainer
    if trainer_cfg.get("accelerator") == "gpu" and not torch.cuda.is_available():
        # No GPU here: build the same trainer on the CPU, which still checks every other key.
        trainer_cfg = OmegaConf.merge(trainer_cfg, {"accelerator": "cpu"})
    built["trainer"] = build(trainer_cfg, callbacks=callbacks, logger=logger)
    assert isinstance(built["trainer"], pl.Trainer)
    return built


def test_every_group_has_options():
    groups = {g for g, _ in OPTIONS}
    assert {"data", "embedding", "model", "callbacks", "logger", "trainer", "debug"} <= groups


@pytest.mark.parametrize(("group", "option"), OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_every_option_composes_and_builds(group, option, compose_train, inputs, tmp_path):
    cfg = compose_train(tmp_path, f"{group}={option}", *required_overrides(group, option, inputs))
    # Every interpolation resolves (output_dir is given, as Hydra gives it in a real run).
    OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    built = build_everything(cfg)
    if group == "debug":
        assert cfg.task_name == "debug"
    if (group, option) == ("debug", "fdr"):
        assert built["trainer"].fast_dev_run
    if (group, option) == ("debug", "overfit"):
        assert built["trainer"].overfit_batches > 0
    if (group, option) == ("hparams_search", "real_sweep"):  # the real data, not the sample
        assert cfg.study == "real_sweep" and cfg.data.prices_path.endswith("spy_5min.csv.gz")
    if (group, option) == ("callbacks", "early_stopping"):
        assert any(isinstance(c, pl.callbacks.EarlyStopping) for c in built["trainer"].callbacks)


@pytest.mark.parametrize("option", ["synthetic", "archive", "prelabeled"])
def test_every_data_option_yields_batches(option, compose_train, inputs, tmp_path):
    cfg = compose_train(tmp_path, f"data={option}", *required_overrides("data", option, inputs))
    datamodule = build(cfg.data, _convert_="all")
    datamodule.prepare_data()
    datamodule.setup("fit")
    assert datamodule.source == option
    assert (
        min(len(datamodule.split.train), len(datamodule.split.val), len(datamodule.split.test)) > 0
    )
    batch = next(iter(datamodule.train_dataloader()))
    n = len(batch["label"])
    assert 0 < n <= cfg.data.batch_size
    assert batch["ids"].shape[0] == n and batch["ids"].shape[1] == int(batch["lengths"].max())
    assert batch["counts"].shape == (n, 2)
    assert set(batch["label"].tolist()) <= {0, 1}
    assert datamodule.embedding_matrix.shape == (len(datamodule.vocab.itos), cfg.embedding.dim)


@pytest.mark.parametrize("how", ["left ???", "set to null"])
@pytest.mark.parametrize(
    ("option", "cleared", "message"),
    [
        ("archive", ["data.tweets_path=null", "data.prices_path=null"], "data.tweets_path"),
        ("prelabeled", ["data.path=null"], "data.path"),
    ],
)
def test_data_without_its_paths_fails_clearly(
    option, cleared, message, how, compose_train, tmp_path
):
    # The datamodule builds (Hydra leaves `???` out, so the path stays None) and prepare_data
    # names the missing key, instead of a file-not-found deep in a loader.
    cfg = compose_train(tmp_path, f"data={option}", *(cleared if how == "set to null" else []))
    datamodule = build(cfg.data, _convert_="all")
    with pytest.raises(DataError, match=message):
        datamodule.prepare_data()


@pytest.mark.parametrize("option", ["random", "word2vec", "pretrained"])
def test_every_embedding_option_builds_its_matrix(option, compose_train, inputs, tmp_path):
    extra = {"word2vec": ["embedding.dim=8", "embedding.epochs=1"]}.get(option, [])
    cfg = compose_train(
        tmp_path, f"embedding={option}", *extra, *required_overrides("embedding", option, inputs)
    )
    datamodule = build(cfg.data, _convert_="all")
    datamodule.setup("fit")
    matrix = datamodule.embedding_matrix
    assert matrix.shape == (len(datamodule.vocab.itos), cfg.embedding.dim)
    assert np.isfinite(matrix).all()
    found = datamodule.coverage["found"]
    if option == "random":
        assert found == 0
    elif option == "pretrained":
        # Every word of the vectors file occurs in the synthetic tweets.
        assert found == len(POSITIVE_WORDS)
        row = datamodule.vocab.stoi["deal"]
        first = (inputs["vectors"]).read_text().splitlines()[POSITIVE_WORDS.index("deal") + 1]
        expected = np.array([float(x) for x in first.split()[1:]], dtype=np.float32)
        np.testing.assert_allclose(matrix[row], expected, rtol=0, atol=1e-4)
    else:
        assert found > 0.9 * (len(datamodule.vocab.itos) - 2)


@pytest.mark.parametrize(
    ("override", "mentions"),
    [
        ("data.intervall=5", "intervall"),
        ("model.hiden_dim=8", "hiden_dim"),
        ("data=synthetc", "synthetc"),
    ],
)
def test_a_typo_fails_at_compose(override, mentions, compose_train, tmp_path):
    with pytest.raises(ConfigCompositionException, match=mentions):
        compose_train(tmp_path, override)


def test_each_data_source_holds_only_its_own_keys(compose_train, tmp_path):
    keys = {
        option: set(compose_train(tmp_path, f"data={option}").data)
        for option in ("synthetic", "archive", "prelabeled", "trump_spy5")
    }
    shared = keys["synthetic"] & keys["archive"] & keys["prelabeled"]
    assert {"interval", "max_length", "batch_size", "embedding"} <= shared
    assert keys["synthetic"] - shared == {"synthetic_seed", "include_retweets"}
    assert "synthetic_seed" not in keys["archive"] and "tweets_path" not in keys["synthetic"]
    assert keys["prelabeled"] - shared == {"path"}
    assert keys["trump_spy5"] == keys["archive"]


def test_pretrained_vectors_need_no_dim(compose_train, inputs, tmp_path):
    from lstm_tweets.config_check import check_config

    # (QUIET_RUN gives every test embedding.dim=16: unset here, as the pretrained option has it)
    cfg = compose_train(
        tmp_path,
        "embedding=pretrained",
        f"embedding.path={inputs['vectors']}",
        "embedding.dim=null",
    )
    assert cfg.embedding.dim is None
    check_config(cfg)
    datamodule = build(cfg.data, _convert_="all")
    datamodule.setup("fit")
    assert datamodule.embedding_matrix.shape == (len(datamodule.vocab.itos), 8)
    assert datamodule.coverage["found"] == len(POSITIVE_WORDS)

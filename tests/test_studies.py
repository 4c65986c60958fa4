"""A new study is a YAML file: the README's example, put in a folder of the user's own and added
through Hydra's search path, composes with the packaged configs (real Hydra compose, no mocks);
and the report reads what a study compares from its `report:` block."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from conftest import CONF_DIR
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_example() -> str:
    """The YAML block of README's "A new study is a YAML file" section."""
    section = README.read_text().split("### A new study is a YAML file", 1)[1]
    return re.search(r"```yaml\n(.*?)```", section, re.S).group(1)


def test_the_readme_study_composes_from_a_folder_on_the_search_path(tmp_path):
    (tmp_path / "experiment").mkdir()
    (tmp_path / "experiment" / "dropout.yaml").write_text(readme_example())
    with initialize_config_dir(config_dir=str(CONF_DIR)):
        cfg = compose(
            "train",
            overrides=[f"hydra.searchpath=[file://{tmp_path}]", "experiment=dropout"],
            return_hydra_config=True,
        )
    assert cfg.study == "dropout"
    assert cfg.trainer.max_epochs == 12
    assert dict(cfg.hydra.sweeper.params) == {
        "model.dropout": "0.0,0.3,0.6",
        "data.interval": "5,15",
        "seed": "1,2,3",
    }
    # The study's report block merges over train.yaml's defaults.
    assert cfg.report.test_family.startswith("3 dropouts")
    assert cfg.report.x == "data.interval"
    assert cfg.hydra.runtime.choices.experiment == "dropout"


def test_packaged_studies_declare_what_their_report_compares():

    with initialize_config_dir(config_dir=str(CONF_DIR)):
        ablation = compose("train", overrides=["experiment=ablation"])
    assert OmegaConf.to_container(ablation.report.ablation)["axes"][0] == "embedding"


def test_an_old_sweep_is_completed_from_the_packaged_experiment(tmp_path):
    """Sweeps written before the `report:` block held every key: the packaged experiment config
    they named fills in the rest; what the sweep recorded wins."""
    from lstm_tweets.studies import study_declaration

    sweep = tmp_path / "walk_forward" / "2026-01-01_00-00-00"
    sweep.mkdir(parents=True)
    multirun = {
        "report": {"test_family": "as recorded"},
        "hydra": {"runtime": {"choices": {"experiment": "walk_forward"}}},
    }
    (sweep / "multirun.yaml").write_text(yaml.safe_dump(multirun))
    declared = study_declaration([sweep])
    assert declared["pooled_over"] == "data.fold"
    assert declared["x"] == "data.interval"
    assert declared["test_family"] == "as recorded"
    assert declared["ablation"] is None

"""Sweeps compare trials on a base-rate-free objective: val/acc_lift by default, and a clear
warning when plain val/acc is optimized while the labels themselves are swept."""

import logging

from conftest import CONF_DIR
from hydra import compose, initialize_config_dir

from lstm_tweets.sweeper import warn_if_comparing_base_rates


def test_the_optuna_search_optimizes_the_validation_lift():
    with initialize_config_dir(config_dir=str(CONF_DIR)):
        cfg = compose("train", ["hparams_search=optuna"], return_hydra_config=True)
    assert cfg.optimized_metric == "val/acc_lift"
    assert "data.interval" in cfg.hydra.sweeper.params  # the label does vary in this search


def test_plain_accuracy_over_swept_labels_is_warned_about(caplog):
    with caplog.at_level(logging.WARNING, logger="lstm_tweets.sweeper"):
        warn_if_comparing_base_rates(["val/acc"], ["model.lr", "data.interval"])
    assert "data.interval" in caplog.text and "val/acc_lift" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="lstm_tweets.sweeper"):
        warn_if_comparing_base_rates(["val/acc_lift"], ["data.interval"])  # the right objective
        warn_if_comparing_base_rates(["val/acc"], ["model.lr", "data.max_length"])  # same labels
    assert caplog.text == ""

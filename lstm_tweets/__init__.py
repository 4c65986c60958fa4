"""lstm_tweets: does a tweet predict the next N minutes of the market?"""

from pathlib import Path

# The Hydra configs ship inside the package (lstm_tweets/conf/, package data in the wheel).
CONF_DIR = Path(__file__).resolve().parent / "conf"
# The checkout: by default outputs/ live here (conf/paths/default.yaml reads it through the
# `lstm_tweets.project_dir` resolver; LSTM_TWEETS_ROOT moves outputs/ elsewhere).
PROJECT_DIR = Path(__file__).resolve().parents[1]


def _register_resolvers() -> None:
    from omegaconf import OmegaConf

    OmegaConf.register_resolver("lstm_tweets.project_dir", _project_dir, replace=True)


def _project_dir() -> str:
    return str(PROJECT_DIR)


_register_resolvers()

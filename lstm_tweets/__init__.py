"""lstm_tweets: does a tweet predict the next N minutes of the market?"""

import os
from pathlib import Path

# The Hydra configs ship inside the package (lstm_tweets/conf/, package data in the wheel).
CONF_DIR = Path(__file__).resolve().parent / "conf"
# The folder above the package: the source checkout when it runs from one (an editable install).
PROJECT_DIR = Path(__file__).resolve().parents[1]


def root_dir() -> Path:
    """Where outputs/ goes, the one place that decides it: $LSTM_TWEETS_ROOT when set; else the
    source checkout (an editable install: outputs/ beside pyproject.toml, wherever the command
    runs); else, installed from a wheel, the current folder. conf/paths/default.yaml reads it
    through the `lstm_tweets.root_dir` resolver; glove and the report call it."""
    if os.environ.get("LSTM_TWEETS_ROOT"):
        return Path(os.environ["LSTM_TWEETS_ROOT"])
    if (PROJECT_DIR / "pyproject.toml").is_file() and (PROJECT_DIR / "lstm_tweets").is_dir():
        return PROJECT_DIR
    return Path.cwd()


def _register_resolvers() -> None:
    from omegaconf import OmegaConf

    OmegaConf.register_resolver("lstm_tweets.root_dir", lambda: str(root_dir()), replace=True)


_register_resolvers()

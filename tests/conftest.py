"""Shared fixtures. Keep this small: helpers that only one test file needs live in that file."""

from pathlib import Path

import pytest

# The real tweets and price files (see ../shared/data/README.md); absent on some machines.
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA}")
    return SHARED_DATA


# ---- composing the real Hydra config (test_configs, test_train, test_predict) ----------------
CONF_DIR = Path(__file__).resolve().parents[1] / "lstm_tweets" / "conf"

# Every test run: no progress bars (they fight pytest's capture) and a small random embedding
# and network (word2vec and a wide LSTM cost seconds, and no test here is about their size).
QUIET_RUN = [
    "++callbacks.rich_progress_bar=null",
    "++trainer.enable_progress_bar=false",
    "++trainer.enable_model_summary=false",
    "embedding=random",
    "embedding.dim=16",
    "model.hidden_dim=16",
    "data.batch_size=32",
]
# ...and, unless a test needs more, one epoch of a few batches.
SHORT_RUN = [
    "trainer.max_epochs=1",
    "++trainer.limit_train_batches=4",
    "++trainer.limit_val_batches=2",
]


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """One intra-op thread: on a busy 2-core machine, OpenMP threads that wait on each other make
    an LSTM step ten times slower (and 100x under `deterministic=True`)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    """One cache for the session: the synthetic sample, labeled frames and embeddings are built
    once and shared by every run."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="session")
def compose_train(cache_dir):
    """compose_train(output_dir, *overrides, short=True) -> the real `train` config, with
    QUIET_RUN (and SHORT_RUN) applied first, so that a test's own overrides win."""
    from hydra import compose, initialize_config_dir

    def compose_(output_dir, *overrides: str, short: bool = True):
        base = [f"paths.output_dir={output_dir}", f"paths.cache_dir={cache_dir}", *QUIET_RUN]
        with initialize_config_dir(config_dir=str(CONF_DIR)):
            return compose("train", overrides=[*base, *(SHORT_RUN if short else []), *overrides])

    return compose_


@pytest.fixture(scope="session")
def tiny_run(compose_train, tmp_path_factory):
    """One finished train+test run (2 epochs of 5 batches, count features on), shared by the tests
    that read a run's outputs or score with its checkpoint: (cfg, output_dir, metrics)."""
    from lstm_tweets.train import train

    output_dir = tmp_path_factory.mktemp("tiny_run")
    cfg = compose_train(
        output_dir,
        "trainer.max_epochs=2",
        "++trainer.limit_train_batches=5",
        "model.concat_counts=true",
    )
    return cfg, output_dir, train(cfg)

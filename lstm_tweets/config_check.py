"""The composed training config, checked before any data work.

`check_config(cfg)` raises `ConfigError` naming every key (or file) that cannot work and what
was expected, in one line. `lstm-tweets-train` prints it as `error: ...` and exits with code 2,
leaving nothing in the run folder but Hydra's `.hydra/` and the log. The rules say what the
code downstream needs (torch, Lightning, the datamodule); those still check for themselves,
later and less kindly. Imports are light (OmegaConf only) so that a bad command line fails in
about a second, without loading torch.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from lstm_tweets import objectives
from lstm_tweets.data.errors import DataError

# Allowed values (the modules that use them hold the same tuples; tests keep them equal):
# data.sources.SOURCES, data.labels.WINDOW_STARTS and TIES, data.split.SPLITS,
# data.embeddings.KINDS, baselines.BASELINES.
CHOICES: dict[str, tuple[str, ...]] = {
    "data.source": ("synthetic", "archive", "prelabeled"),
    "data.window_start": ("after_tweet", "before_tweet"),
    "data.ties": ("drop", "down", "class"),
    "data.split": ("chronological", "random", "walk_forward"),
    "embedding.kind": ("word2vec", "pretrained", "random"),
    "model.baseline": ("majority", "momentum", "tfidf_logreg"),
}
# Lightning's own values for ckpt_path, which name no file.
SPECIAL_CHECKPOINTS = ("last", "hpc")
ABSENT = object()


class ConfigError(DataError):
    """A config value that cannot work. The message names the key or file and what was expected;
    several problems are joined with '; ' on one line."""


def check_config(cfg: DictConfig) -> None:
    """Raise ConfigError listing every problem found in `cfg` (the composed `train` config)."""
    problems = Checks(cfg).run()
    if problems:
        raise ConfigError("; ".join(problems))


def shown(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def is_whole(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


class Checks:
    def __init__(self, cfg: DictConfig):
        self.cfg = cfg
        self.problems: list[str] = []
        self.flagged: set[str] = set()

    # ---- reading ---------------------------------------------------------------------------
    def get(self, key: str, default: Any = ABSENT) -> Any:
        """The value at `key`, ABSENT if there is no such key, None for `???` (reported apart)."""
        parent, _, leaf = key.rpartition(".")
        node = OmegaConf.select(self.cfg, parent) if parent else self.cfg
        if not OmegaConf.is_config(node) or leaf not in node:
            return default
        if OmegaConf.is_missing(node, leaf):
            return None
        value = node[leaf]
        return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value

    def fail(self, key: str, message: str) -> None:
        if key not in self.flagged:
            self.flagged.add(key)
            self.problems.append(message)

    # ---- rules -----------------------------------------------------------------------------
    def whole(self, key: str, minimum: int, what: str = "", *, null: bool = False, also=()) -> None:
        value = self.get(key)
        if value is ABSENT or (value is None and null) or value in also:
            return
        if not is_whole(value) or value < minimum:
            extra = f" ({what})" if what else ""
            alternatives = "".join(f" or {a}" for a in also)
            self.fail(
                key,
                f"{key}={shown(value)}: expected a whole number >= {minimum}{alternatives}{extra}",
            )

    def number(
        self,
        key: str,
        low: float | None = None,
        high: float | None = None,
        *,
        low_open: bool = False,
        high_open: bool = False,
        null: bool = False,
    ) -> None:
        value = self.get(key)
        if value is ABSENT or (value is None and null):
            return
        ok = is_number(value)
        if ok and low is not None:
            ok = value > low if low_open else value >= low
        if ok and high is not None:
            ok = value < high if high_open else value <= high
        if not ok:
            if low is not None and high is not None:
                expected = (
                    f"a number from {low:g} to {high:g}"
                    f"{' (excluding ' + format(high, 'g') + ')' if high_open else ''}"
                    f"{' (excluding ' + format(low, 'g') + ')' if low_open else ''}"
                )
            elif low is not None:
                expected = f"a number {'>' if low_open else '>='} {low:g}"
            else:
                expected = "a number"
            self.fail(key, f"{key}={shown(value)}: expected {expected}")

    def boolean(self, key: str) -> None:
        value = self.get(key)
        if value is not ABSENT and not isinstance(value, bool):
            self.fail(key, f"{key}={shown(value)}: expected true or false")

    def choice(self, key: str) -> None:
        value = self.get(key)
        if value is not ABSENT and value not in CHOICES[key]:
            self.fail(key, f"{key}={shown(value)}: expected one of {', '.join(CHOICES[key])}")

    def text(self, key: str, *, null: bool = False) -> None:
        value = self.get(key)
        if value is ABSENT or (value is None and null):
            return
        if not isinstance(value, str) or not value:
            self.fail(key, f"{key}={shown(value)}: expected a name (text)")

    def file(self, key: str, needed_for: str, what: str) -> Path | None:
        value = self.get(key)
        if value is ABSENT or value is None or value == "":
            self.fail(key, f"{key} is not set: {needed_for} needs {what}; give {key}=/path/to/file")
            return None
        path = Path(str(value)).expanduser()
        if not path.is_file():
            where = "" if path.is_absolute() else f" (relative paths start at {Path.cwd()})"
            found = "is a folder, not a file" if path.is_dir() else "file not found"
            self.fail(key, f"{key}={value}: {found}{where}; expected {what}")
            return None
        return path

    # ---- the config ----------------------------------------------------------------------------
    def run(self) -> list[str]:
        self.top_level()
        self.data()
        self.embedding()
        self.model()
        self.trainer()
        self.unset_values()
        return self.problems

    def top_level(self) -> None:
        seed = self.get("seed")
        if seed is not ABSENT and not (is_whole(seed) and 0 <= seed <= 2**32 - 1):
            self.fail("seed", f"seed={shown(seed)}: expected a whole number from 0 to 2**32 - 1")
        metric = self.get("optimized_metric")
        if metric is not ABSENT:
            try:
                objectives.check(metric)
            except ValueError as err:
                self.fail("optimized_metric", f"{err}; expected val/ metrics such as val/acc_lift")
        for key in ("test", "verbose", "track_test_every_epoch"):
            self.boolean(key)
        self.text("study", null=True)
        checkpoint = self.get("ckpt_path")
        if checkpoint not in (ABSENT, None) and checkpoint not in SPECIAL_CHECKPOINTS:
            path = Path(str(checkpoint)).expanduser()
            if not path.is_file():
                where = "" if path.is_absolute() else f" (relative paths start at {Path.cwd()})"
                self.fail(
                    "ckpt_path",
                    f"ckpt_path={checkpoint}: checkpoint not found{where}; expected a .ckpt file "
                    "written by an earlier run (<run folder>/checkpoints/last.ckpt)",
                )

    def data(self) -> None:
        for key in ("data.source", "data.window_start", "data.ties", "data.split"):
            self.choice(key)
        self.whole("data.interval", 1, "minutes after the tweet")
        self.number("data.dead_band_bps", 0)
        self.number("data.bar_minutes", 0, low_open=True, null=True)
        self.whole("data.max_length", 1, "tokens per tweet")
        self.whole("data.vocab_size", 2, "the vocabulary starts with <pad> and <unk>")
        self.whole("data.min_freq", 1)
        self.whole("data.batch_size", 1)
        self.whole("data.num_workers", 0)
        self.whole("data.folds", 1)
        self.whole("data.fold", 0)
        self.whole("data.synthetic_seed", 0)
        for key in (
            "data.include_retweets",
            "data.bucket_by_length",
            "data.pad_to_max_length",
            "data.shuffle_train_labels",
            "data.lowercase",
            "data.replace_urls",
            "data.replace_mentions",
        ):
            self.boolean(key)
        fractions = self.get("data.split_fractions")
        if fractions is not ABSENT and not (
            isinstance(fractions, list)
            and len(fractions) == 3
            and all(is_number(f) and f > 0 for f in fractions)
            and abs(sum(fractions) - 1) <= 1e-6
        ):
            self.fail(
                "data.split_fractions",
                f"data.split_fractions={fractions}: expected three positive shares summing to 1, "
                "e.g. [0.7,0.15,0.15]",
            )
        source = self.get("data.source")
        if source == "archive":
            self.file("data.tweets_path", "data=archive", "a tweets file (CSV, JSON or Parquet)")
            self.file("data.prices_path", "data=archive", "a price bars file (CSV or Parquet)")
        elif source == "prelabeled":
            self.file("data.path", "data=prelabeled", "a CSV with text,label columns")

    def embedding(self) -> None:
        self.choice("embedding.kind")
        kind = self.get("embedding.kind")
        # pretrained: null takes the vectors file's dimension
        self.whole("embedding.dim", 1, null=kind == "pretrained")
        self.whole("embedding.limit", 1, null=True)
        self.boolean("embedding.trainable")
        if kind == "word2vec":
            for key in ("embedding.window", "embedding.min_count", "embedding.epochs"):
                self.whole(key, 1)
        if kind != "pretrained":
            return
        path = self.file("embedding.path", "embedding=pretrained", "a word vectors file")
        dim = self.get("embedding.dim")
        if path is None or "embedding.dim" in self.flagged:
            return
        from lstm_tweets.data.embeddings import _sniff

        try:
            _, _, file_dim = _sniff(path)
        except DataError as err:
            self.fail("embedding.path", f"embedding.path: {err}")
            return
        if dim is not None and file_dim != dim:
            self.fail(
                "embedding.dim",
                f"embedding.dim={dim} but embedding.path={path} holds {file_dim}-dimensional "
                f"vectors: set embedding.dim={file_dim}, or leave it unset to use the file's",
            )

    def model(self) -> None:
        for key in ("model.concat_counts", "model.balance_classes"):
            self.boolean(key)
        baseline = self.get("model.baseline", default=None)
        if baseline is not None:
            self.choice("model.baseline")
            if baseline == "tfidf_logreg":
                self.whole("model.min_df", 1)
                self.whole("model.max_features", 1, null=True)
                grid = self.get("model.C_grid")
                if grid is not ABSENT and not (
                    isinstance(grid, list) and grid and all(is_number(c) and c > 0 for c in grid)
                ):
                    self.fail(
                        "model.C_grid", f"model.C_grid={grid}: expected a list of numbers > 0"
                    )
            return
        self.whole("model.hidden_dim", 1, "units in the LSTM's state")
        self.whole("model.num_layers", 1)
        self.number("model.dropout", 0, 1, high_open=True)
        self.boolean("model.bidirectional")
        self.number("model.lr", 0, low_open=True)
        self.number("model.optimizer.weight_decay", 0)
        if self.get("model.scheduler", default=None):
            self.whole("model.scheduler.step_size", 1)
            self.number("model.scheduler.gamma", 0, low_open=True)

    def trainer(self) -> None:
        self.whole("trainer.max_epochs", 1, "-1: no limit", null=True, also=(-1,))
        self.whole("trainer.min_epochs", 0, null=True)
        for key in ("limit_train_batches", "limit_val_batches", "limit_test_batches"):
            value = self.get(f"trainer.{key}")
            if value is ABSENT or value is None:
                continue
            fine = (is_whole(value) and value >= 0 and isinstance(value, int)) or (
                is_number(value) and isinstance(value, float) and 0 <= value <= 1
            )
            if not fine:
                self.fail(
                    f"trainer.{key}",
                    f"trainer.{key}={shown(value)}: expected a whole number of batches >= 0 or a "
                    "fraction from 0.0 to 1.0",
                )
        self.number("trainer.gradient_clip_val", 0, null=True)

    def unset_values(self) -> None:
        """Any other `???` left in the config (outside `hydra`)."""
        container = OmegaConf.masked_copy(self.cfg, [k for k in self.cfg if k != "hydra"])
        for key in sorted(OmegaConf.missing_keys(container)):
            self.fail(key, f"{key} is not set (???): give it on the command line, {key}=...")

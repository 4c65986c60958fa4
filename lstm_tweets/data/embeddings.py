"""Word vectors -> embedding matrix aligned with the vocabulary (row i = vector of itos[i]).

Three kinds (`embedding=`): `word2vec` trains gensim Word2Vec on the training tweets, `pretrained`
reads a word2vec binary/text or GloVe text file, `random` draws every row. Matrices are cached per
(kind, vocab, file or corpus, options, dimension) so a rerun never loads a multi-GB vectors file
again. `pretrained` takes its dimension from the file when `embedding.dim` is unset (null): only
the file's first line is read for it; a dimension that is given must match the file's.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import math
import zlib
from collections import Counter
from dataclasses import dataclass, fields
from itertools import chain
from pathlib import Path

import gensim
import numpy as np
from gensim.models import KeyedVectors, Word2Vec

from lstm_tweets.data.errors import DataError
from lstm_tweets.data.io import atomic_path

logger = logging.getLogger("lstm_tweets.embeddings")

PAD, UNK = "<pad>", "<unk>"
KINDS = ("word2vec", "pretrained", "random")
ACCEPTED = (
    "word2vec binary (.bin, .bin.gz), word2vec text (first line 'count dim') "
    "or GloVe text (no header), optionally gzip-compressed (.gz)"
)
# gensim's own .model/.kv files are pickles, and unpickling can run arbitrary code.
PICKLE_SUFFIXES = {".model", ".kv", ".pkl", ".pickle", ".joblib", ".npy", ".npz", ".pt", ".pth"}
CACHE_VERSION = 1
DEFAULT_DIM = 100  # word2vec and random without embedding.dim (conf/embedding/*.yaml say the same)
SNIFF_BYTES = 1 << 20  # enough for the header and the first vector line of any common file


@dataclass(frozen=True)
class EmbeddingOptions:
    """The `embedding` config group (conf/embedding/<kind>.yaml), as the datamodule receives it.
    `dim=None`: the vectors file's dimension for `pretrained`, DEFAULT_DIM otherwise. `trainable`
    is the model's (train.py reads it from the same group)."""

    kind: str = "random"
    dim: int | None = None
    path: str | None = None
    limit: int | None = None
    window: int = 5
    min_count: int = 1
    epochs: int = 10
    trainable: bool = True

    @classmethod
    def from_config(cls, node: dict | None) -> EmbeddingOptions:
        node = dict(node or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(node) - known)
        if unknown:
            raise DataError(
                f"embedding.{unknown[0]} is not an embedding setting; expected {', '.join(known)}"
            )
        if node.get("kind") not in (None, *KINDS):
            raise DataError(
                f"embedding={node['kind']!r} is unknown; expected one of {', '.join(KINDS)}"
            )
        return cls(**node)


def resolve_dim(kind: str, dim: int | None, path: str | Path | None) -> int:
    """The matrix's dimension: `dim` as given (for `pretrained`, checked against the file), or
    for `pretrained` without one the file's, read from its first line."""
    if kind != "pretrained":
        return DEFAULT_DIM if dim is None else int(dim)
    if path is None:
        raise DataError(f"embedding=pretrained needs embedding.path: {ACCEPTED}")
    _, _, file_dim = _sniff(Path(path).expanduser())
    if dim is not None and int(dim) != file_dim:
        raise DataError(
            f"embedding.dim={dim} but {path} has dimension {file_dim}: set embedding.dim="
            f"{file_dim}, or leave it unset (null) to use the file's"
        )
    return file_dim


def _is_vector_line(line: bytes, dim: int) -> bool:
    """True if `line` is `word f1 ... f_dim` in text, as gensim's text reader expects."""
    try:
        parts = line.decode("utf-8").rstrip().split(" ")
        if len(parts) != dim + 1:
            return False
        [float(x) for x in parts[1:]]
    except ValueError:  # UnicodeDecodeError is a ValueError too
        return False
    return True


def _sniff(path: Path) -> tuple[bool, bool, int]:
    """Read the first lines of a vectors file and return (binary, no_header, dim).

    The content decides, not the suffix: a `.bin` that holds text still loads, and anything
    that is neither word2vec nor GloVe (a pickle, random bytes) is refused before gensim sees it.
    """
    if not path.is_file():
        raise DataError(f"{path}: word vectors file not found (expected {ACCEPTED})")
    if PICKLE_SUFFIXES & {s.lower() for s in path.suffixes}:
        raise DataError(
            f"{path}: pickled gensim models are refused because loading them can run code; "
            f"expected {ACCEPTED}. Convert a trusted model with "
            "KeyedVectors.load(...).save_word2vec_format(out, binary=True)."
        )
    compressed = path.suffix.lower() == ".gz"
    try:
        with gzip.open(path, "rb") if compressed else open(path, "rb") as f:
            head = f.read(SNIFF_BYTES)
    except (OSError, EOFError, zlib.error) as e:  # BadGzipFile is an OSError
        raise DataError(f"{path}: cannot read the file ({e}); expected {ACCEPTED}") from e
    if not compressed and head.startswith(b"\x1f\x8b"):
        raise DataError(f"{path}: the file is gzip-compressed; give it a .gz suffix")
    if not head.strip():
        raise DataError(f"{path}: the file is empty; expected {ACCEPTED}")

    first, _, rest = head.partition(b"\n")
    fields = first.split()
    if len(fields) == 2 and all(f.isdigit() for f in fields):  # word2vec header "count dim"
        count, dim = int(fields[0]), int(fields[1])
        if count == 0 or dim == 0:
            raise DataError(f"{path}: the header says {count} vectors of dimension {dim}")
        if not rest:
            raise DataError(f"{path}: truncated: the header announces {count} vectors, none follow")
        return not _is_vector_line(rest.partition(b"\n")[0], dim), False, dim
    if len(fields) > 2 and _is_vector_line(first, len(fields) - 1):
        return False, True, len(fields) - 1  # GloVe: vectors from the first line on
    raise DataError(f"{path}: unknown word vectors format; expected {ACCEPTED}")


def load_word_vectors(path: str | Path, limit: int | None = None) -> KeyedVectors:
    """Load word2vec binary/text or GloVe text vectors; `limit` keeps the first N (most frequent)."""
    path = Path(path).expanduser()
    if limit is not None and limit < 1:
        raise DataError(
            f"{path}: embedding.limit must be a positive number of vectors, got {limit}"
        )
    binary, no_header, _ = _sniff(path)
    fmt = "word2vec binary" if binary else "GloVe text" if no_header else "word2vec text"
    try:
        kv = KeyedVectors.load_word2vec_format(
            str(path), binary=binary, no_header=no_header, limit=limit, unicode_errors="replace"
        )
    except (EOFError, ValueError, IndexError, AssertionError, OSError, zlib.error) as e:
        raise DataError(
            f"{path}: damaged or truncated {fmt} file ({e}); expected {ACCEPTED}"
        ) from e
    if len(kv) == 0:
        raise DataError(f"{path}: no vectors in the file; expected {ACCEPTED}")
    logger.info("loaded %d x %d %s vectors from %s", len(kv), kv.vector_size, fmt, path)
    return kv


def _crc32(text: str) -> int:
    return zlib.crc32(text.encode("utf-8"))


def train_word2vec(
    token_lists: list[list[str]],
    dim: int = 100,
    seed: int = 0,
    window: int = 5,
    min_count: int = 1,
    epochs: int = 10,
) -> KeyedVectors:
    """Train Word2Vec on tokenized tweets; deterministic for a given seed."""
    if not any(token_lists):
        raise DataError("embedding=word2vec: the training tweets hold no tokens to train on")
    try:
        # One worker: thread scheduling would otherwise reorder updates. A stable hashfxn keeps
        # results independent of PYTHONHASHSEED (gensim's default is Python's salted hash()).
        model = Word2Vec(
            sentences=token_lists,
            vector_size=dim,
            window=window,
            min_count=min_count,
            epochs=epochs,
            seed=seed,
            workers=1,
            hashfxn=_crc32,
        )
    except RuntimeError as e:  # gensim: "you must first build vocabulary before training"
        raise DataError(
            f"embedding=word2vec: no token occurs min_count={min_count} times in the training tweets"
        ) from e
    return model.wv


def build_embedding_matrix(
    itos: list[str],
    vectors: KeyedVectors | None,
    dim: int,
    seed: int = 0,
    *,
    token_counts: dict[str, int] | None = None,
    source: str | Path | None = None,
) -> tuple[np.ndarray, dict]:
    """Align `vectors` with the vocabulary; `vectors=None` gives an all-random matrix.

    Each token is looked up as is, then lower-cased, then Title-cased (GoogleNews is
    case-sensitive, tweets are not). Row 0 (`<pad>`) is zeros; `<unk>` and tokens without a vector
    get N(0, s) with s the std of the vectors found, so they sit at the pretrained scale.
    Coverage: `vocab_coverage` is the share of vocab tokens (pad/unk excluded) found;
    `token_coverage` the share of occurrences in `token_counts` whose token was found (tokens
    outside the vocab count as not found), or None without counts.
    """
    if list(itos[:2]) != [PAD, UNK]:
        raise ValueError(f"itos must start with {PAD!r}, {UNK!r}; got {list(itos[:2])}")
    if vectors is not None and vectors.vector_size != dim:
        raise DataError(
            f"embedding.dim={dim} but {source or 'the word vectors'} "
            f"has dimension {vectors.vector_size}"
        )

    rows, hits = [], []
    if vectors is not None:
        index = vectors.key_to_index
        for row in range(2, len(itos)):
            token = itos[row]
            for candidate in (token, token.lower(), token.title()):
                hit = index.get(candidate)
                if hit is not None:
                    rows.append(row)
                    hits.append(hit)
                    break

    found = np.asarray(vectors.vectors[hits], dtype=np.float32) if hits else None
    if found is not None:
        scale = float(found.std())
    elif vectors is not None:  # nothing found: still match the file's scale
        scale = float(vectors.vectors[:10_000].std())
    else:
        scale = 1.0 / math.sqrt(dim)
    scale = scale or 1.0 / math.sqrt(dim)

    # Draw every row, then overwrite: a row's random vector depends only on (seed, row, dim).
    matrix = np.random.default_rng(seed).standard_normal((len(itos), dim), dtype=np.float32)
    matrix *= np.float32(scale)
    if found is not None:
        matrix[rows] = found
    matrix[0] = 0.0

    n_words = len(itos) - 2
    token_coverage = None
    if token_counts:
        total = sum(token_counts.values()) - token_counts.get(PAD, 0) - token_counts.get(UNK, 0)
        hit_occurrences = sum(token_counts.get(itos[r], 0) for r in rows)
        token_coverage = hit_occurrences / total if total else None
    coverage = {
        "vocab_size": len(itos),
        "found": len(rows),
        "vocab_coverage": len(rows) / n_words if n_words else 0.0,
        "token_coverage": token_coverage,
    }
    return matrix, coverage


def _digest(obj) -> str:
    data = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(data.encode("utf-8")).hexdigest()


def _read_cache(npy: Path, meta: Path, shape: tuple[int, int]) -> tuple[np.ndarray, dict] | None:
    if not (npy.is_file() and meta.is_file()):
        return None
    try:
        matrix = np.load(npy, allow_pickle=False)
        coverage = json.loads(meta.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        logger.warning("ignoring unreadable embedding cache %s (%s)", npy, e)
        return None
    if matrix.shape != shape or matrix.dtype != np.float32:
        logger.warning("ignoring embedding cache %s with shape %s", npy, matrix.shape)
        return None
    return matrix, coverage


def embedding_matrix(
    kind: str,
    itos: list[str],
    *,
    dim: int | None = None,
    seed: int = 0,
    cache_dir: str | Path | None = None,
    path: str | Path | None = None,
    limit: int | None = None,
    train_tokens: list[list[str]] | None = None,
    token_counts: dict[str, int] | None = None,
    window: int = 5,
    min_count: int = 1,
    epochs: int = 10,
) -> tuple[np.ndarray, dict]:
    """The float32 (len(itos), dim) matrix for `embedding=kind`, and its coverage dict.

    With `cache_dir`, the result is kept in `<cache_dir>/embeddings/<key>.npy` (+ `.json`). The key
    covers everything the matrix depends on, the resolved dimension included; for `pretrained`
    that is the file's path, size and mtime, so a hit only stats the file and never loads it
    (with `dim=None` the file's first line is read for its dimension).
    """
    if kind not in KINDS:
        raise DataError(f"embedding={kind!r} is unknown; expected one of {', '.join(KINDS)}")
    if dim is not None and dim < 1:
        raise DataError(f"embedding.dim must be positive, got {dim}")
    if dim is None:
        dim = resolve_dim(kind, dim, path)
    key: dict = {"version": CACHE_VERSION, "kind": kind, "itos": _digest(list(itos))}
    key.update(dim=dim, seed=seed)
    if kind == "pretrained":
        if path is None:
            raise DataError(f"embedding=pretrained needs embedding.path: {ACCEPTED}")
        path = Path(path).expanduser().resolve()
        if not path.is_file():
            raise DataError(f"{path}: word vectors file not found (expected {ACCEPTED})")
        stat = path.stat()
        key.update(path=str(path), size=stat.st_size, mtime_ns=stat.st_mtime_ns, limit=limit)
    elif kind == "word2vec":
        if not train_tokens:
            raise DataError("embedding=word2vec needs the training tweets' tokens; got none")
        if token_counts is None:
            token_counts = Counter(chain.from_iterable(train_tokens))
        key.update(tokens=_digest([list(t) for t in train_tokens]), window=window)
        key.update(min_count=min_count, epochs=epochs, gensim=gensim.__version__)
    if token_counts:  # coverage depends on the vocab tokens' counts and the total only
        total = sum(token_counts.values()) - token_counts.get(PAD, 0) - token_counts.get(UNK, 0)
        key["counts"] = _digest([int(total), [int(token_counts.get(t, 0)) for t in itos]])
    digest = _digest(key)

    if cache_dir is not None:
        folder = Path(cache_dir) / "embeddings"
        npy, meta = folder / f"{digest}.npy", folder / f"{digest}.json"
        cached = _read_cache(npy, meta, (len(itos), dim))
        if cached is not None:
            logger.info("embedding cache hit %s (%s)", npy, _describe(kind, cached[1]))
            return cached
        logger.info("embedding cache miss %s: building %s matrix", npy, kind)

    if kind == "pretrained":
        resolve_dim(kind, dim, path)  # a mismatch fails before a multi-GB load, not after
        vectors = load_word_vectors(path, limit=limit)
    elif kind == "word2vec":
        vectors = train_word2vec(train_tokens, dim, seed, window, min_count, epochs)
    else:
        vectors = None
    matrix, coverage = build_embedding_matrix(
        itos, vectors, dim, seed, token_counts=token_counts, source=path
    )
    logger.info("embedding=%s: %s", kind, _describe(kind, coverage))

    if cache_dir is not None:
        folder.mkdir(parents=True, exist_ok=True)
        with (
            atomic_path(npy) as tmp,
            open(tmp, "wb") as handle,
        ):  # concurrent runs never see half a file
            np.save(handle, matrix)
        with atomic_path(meta) as tmp:
            tmp.write_text(json.dumps(coverage, indent=2))
    return matrix, coverage


def _describe(kind: str, coverage: dict) -> str:
    if kind == "random":
        return f"{coverage['vocab_size']} random rows"
    text = (
        f"{coverage['found']}/{coverage['vocab_size'] - 2} vocab tokens have a vector "
        f"({coverage['vocab_coverage']:.1%})"
    )
    if coverage.get("token_coverage") is not None:
        text += f", {coverage['token_coverage']:.1%} of train token occurrences"
    return text

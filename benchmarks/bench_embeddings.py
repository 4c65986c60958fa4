"""Benchmark: embedding matrix from a large word2vec binary file, cold versus cached.

    python benchmarks/bench_embeddings.py [--rows N] [--vocab N] [--out FILE]

Writes (once) a synthetic N x 300 float32 word2vec binary file, builds the matrix for a vocabulary
in a fresh process with an empty cache (time and peak RSS), then rebuilds it from the cache.
Figures go to outputs/bench/embeddings.json. Goal: the cached build is >= 50x faster.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DIM = 300
WORD_BYTES = 9  # "w0000123 ": fixed-width words keep every record the same size
RECORD = WORD_BYTES + 4 * DIM
GOAL = 50.0


def vectors_file(rows: int) -> tuple[Path, float | None]:
    """The synthetic file for `rows` vectors, and how long writing it took (None if reused)."""
    name = "1M" if rows == 1_000_000 else str(rows)
    path = ROOT / "outputs" / "cache" / "bench" / f"w2v_{name}_{DIM}.bin"
    header = f"{rows} {DIM}\n".encode()
    if path.is_file() and path.stat().st_size == len(header) + rows * RECORD:
        return path, None

    start = time.perf_counter()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    rng = np.random.default_rng(0)
    with open(tmp, "wb") as f:
        f.write(header)
        for lo in range(0, rows, 50_000):
            ids = np.arange(lo, min(lo + 50_000, rows))
            # Each record is "wNNNNNNN " followed by the raw float32 vector, as word2vec writes it.
            buf = np.empty((len(ids), RECORD), dtype=np.uint8)
            buf[:, 0] = ord("w")
            for k in range(7):
                buf[:, 7 - k] = ord("0") + (ids // 10**k) % 10
            buf[:, 8] = ord(" ")
            vecs = rng.standard_normal((len(ids), DIM), dtype=np.float32) * np.float32(0.1)
            buf[:, WORD_BYTES:] = vecs.view(np.uint8)
            buf.tofile(f)
    os.replace(tmp, path)
    return path, time.perf_counter() - start


def vocabulary(rows: int, size: int) -> tuple[list[str], dict[str, int]]:
    """A vocab like a tweet corpus against GoogleNews: mostly exact hits, some only after
    lower-casing, a fifth out of vocabulary; Zipf-like counts for token coverage."""
    rng = np.random.default_rng(1)
    picks = rng.choice(rows, size=size, replace=False)
    tokens = []
    for rank, i in enumerate(picks):
        word = f"w{i:07d}"
        tokens.append(f"oov{i}" if rank % 5 == 4 else word.upper() if rank % 10 == 3 else word)
    counts = {t: 10_000 // (rank + 1) + 1 for rank, t in enumerate(tokens)}
    return ["<pad>", "<unk>", *tokens], counts


def resident_kb() -> int:
    """Current RSS: the baseline, since ru_maxrss may still hold a transient peak from imports."""
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def cold_build(vectors: str, cache_dir: str, rows: int, size: int) -> None:
    """Child process: one build with an empty cache; prints its figures as JSON."""
    from lstm_tweets.data import embeddings as emb

    itos, counts = vocabulary(rows, size)
    baseline_kb = resident_kb()  # after imports
    stamps = {}
    load = emb.load_word_vectors

    def timed_load(*args, **kwargs):
        start = time.perf_counter()
        kv = load(*args, **kwargs)
        stamps["load_s"] = time.perf_counter() - start
        return kv

    emb.load_word_vectors = timed_load
    start = time.perf_counter()
    _, coverage = emb.embedding_matrix(
        "pretrained", itos, dim=DIM, cache_dir=cache_dir, path=vectors, token_counts=counts
    )
    seconds = time.perf_counter() - start
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kilobytes on Linux
    print(json.dumps({"cold_s": seconds, **stamps, "baseline_kb": baseline_kb,
                      "peak_kb": peak_kb, "coverage": coverage}))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="vectors in the file")
    parser.add_argument("--vocab", type=int, default=10_000, help="vocabulary size")
    parser.add_argument("--repeats", type=int, default=10, help="cached rebuilds to time")
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "bench" / "embeddings.json")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        cold_build(*args.child, args.rows, args.vocab)
        return
    if args.vocab > args.rows:
        parser.error("--vocab must not exceed --rows")

    from lstm_tweets.data import embeddings as emb

    path, write_s = vectors_file(args.rows)
    cache_dir = Path(tempfile.mkdtemp(prefix="emb_cache_", dir=path.parent))
    try:
        # Fresh interpreter: ru_maxrss is a high-water mark, so only a new process measures
        # the peak of this one build.
        child = subprocess.run(
            [sys.executable, __file__, "--rows", str(args.rows), "--vocab", str(args.vocab),
             "--child", str(path), str(cache_dir)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        cold = json.loads(child.stdout.strip().splitlines()[-1])

        def refuse(*_, **__):
            raise AssertionError("the cached build read the vectors file")

        emb.load_word_vectors = refuse  # proves every timed call below is a cache hit
        itos, counts = vocabulary(args.rows, args.vocab)
        times = []
        for _ in range(args.repeats + 1):
            start = time.perf_counter()
            matrix, coverage = emb.embedding_matrix(
                "pretrained", itos, dim=DIM, cache_dir=cache_dir, path=path, token_counts=counts
            )
            times.append(time.perf_counter() - start)
        assert coverage == cold["coverage"] and matrix.shape == (len(itos), DIM)
    finally:
        shutil.rmtree(cache_dir, ignore_errors=True)

    cached_s = statistics.median(times[1:])
    figures = {
        "rows": args.rows,
        "dim": DIM,
        "vocab": len(itos),
        "file_mb": round(path.stat().st_size / 2**20, 1),
        "file_write_s": None if write_s is None else round(write_s, 2),
        "cold_s": round(cold["cold_s"], 3),
        "cold_load_s": round(cold["load_s"], 3),
        "cached_first_s": round(times[0], 5),
        "cached_median_s": round(cached_s, 5),
        "speedup": round(cold["cold_s"] / cached_s, 1),
        "speedup_goal": GOAL,
        "meets_goal": cold["cold_s"] / cached_s >= GOAL,
        "cold_peak_rss_mb": round(cold["peak_kb"] / 1024, 1),
        "cold_baseline_rss_mb": round(cold["baseline_kb"] / 1024, 1),
        "cold_build_rss_mb": round((cold["peak_kb"] - cold["baseline_kb"]) / 1024, 1),
        "coverage": cold["coverage"],
        "python": platform.python_version(),
        "numpy": np.__version__,
        "gensim": __import__("gensim").__version__,
        "cpus": os.cpu_count(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=2) + "\n")

    print(f"embeddings: {args.rows:,} x {DIM} word2vec binary ({figures['file_mb']} MiB), "
          f"vocab {len(itos):,}")  # fmt: skip
    rows = [
        ("cold build (empty cache)", f"{figures['cold_s']:.3f} s"),
        ("  of which loading vectors", f"{figures['cold_load_s']:.3f} s"),
        ("cached rebuild (median)", f"{cached_s * 1000:.2f} ms"),
        ("speedup", f"{figures['speedup']:,.0f}x (goal >= {GOAL:.0f}x)"),
        ("cold peak RSS", f"{figures['cold_peak_rss_mb']:,.0f} MiB"),
        ("  above imports", f"{figures['cold_build_rss_mb']:,.0f} MiB"),
        ("vocab coverage", f"{coverage['vocab_coverage']:.1%}"),
    ]
    for label, value in rows:
        print(f"  {label:<28}{value:>24}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

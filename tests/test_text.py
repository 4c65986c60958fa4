"""Tokenizer, vocabulary and encoding."""

import logging

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lstm_tweets.data.text import TokenizerOptions, Vocab, build_vocab, encode, tokenize


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Read this https://t.co/AbC123 now", ["read", "this", "<url>", "now"]),
        ("see www.example.com/x", ["see", "<url>"]),
        # Archive retweets are cut with "…", sometimes inside the URL.
        ("RT @DanScavino: Join us https:/…", ["rt", "<user>", "join", "us", "<url>"]),
        ("#MAGAhttps://t.co/vU5EPIYKUc", ["#maga", "<url>"]),
        (
            "Thank you @FoxNews and @seanhannity's show",
            ["thank", "you", "<user>", "and", "<user>", "show"],
        ),
        ("We will #MAGA and #KAG2020!", ["we", "will", "#maga", "and", "#kag2020", "!"]),
        ("Trump &amp; Pence &gt; them", ["trump", "pence", "them"]),
        ("Jobs &amp;amp; more", ["jobs", "amp", "more"]),  # unescaped once only
        ("I don't know, it’s FAKE NEWS!", ["i", "don't", "know", "it's", "fake", "news", "!"]),
        ("Why? Why?!", ["why", "?", "why", "?", "!"]),
        (
            "GDP up 3.5% and $100 Billion, 1,000 jobs at 10:00 am",
            ["gdp", "up", "3.5%", "and", "$100", "billion", "1000", "jobs", "at", "10:00", "am"],
        ),
        (
            "$817M for 7pm rallies on the 2nd, $SPY up",
            ["$817m", "for", "7pm", "rallies", "on", "the", "2nd", "$spy", "up"],
        ),
        ("USA 🇺🇸🇺🇸 great 👍🏻🔥", ["usa", "🇺🇸", "🇺🇸", "great", "👍🏻", "🔥"]),
        ("family 👨\u200d👩\u200d👧 ❤️", ["family", "👨\u200d👩\u200d👧", "❤️"]),
        ("The “Fake News” (CNN) - sad…", ["the", "fake", "news", "cnn", "sad"]),
        ("", []),
        ("... — !!", ["!", "!"]),
    ],
)
def test_tokenize(text, expected):
    assert tokenize(text) == expected


def test_tokenize_does_not_depend_on_stripped_punctuation():
    # One archive source drops every comma and double quote; both versions must agree.
    with_punct = 'He said "No," and left, with 1,500 people.'
    stripped = "He said No and left with 1500 people."
    assert tokenize(with_punct) == tokenize(stripped)


def test_tokenize_options():
    text = "RT @Jim_Jordan: Big WIN https://t.co/XyZ #MAGA"
    assert tokenize(text, lowercase=False) == ["RT", "<user>", "Big", "WIN", "<url>", "#MAGA"]
    assert tokenize(text, replace_urls=False, replace_mentions=False) == [
        "rt",
        "@jim_jordan",
        "big",
        "win",
        "https://t.co/xyz",
        "#maga",
    ]


def test_tokenizer_options_round_trip():
    opts = TokenizerOptions(lowercase=False, replace_mentions=False)
    assert TokenizerOptions.from_dict(opts.to_dict()) == opts
    assert tokenize("Hi @Bob", **opts.to_dict()) == ["Hi", "@Bob"]
    with pytest.raises(ValueError):
        TokenizerOptions.from_dict({"lowercase": True, "stem": True})


def test_build_vocab_top_k_with_tie_break():
    lists = [["b", "a", "c", "c"], ["a", "b", "d"], ["c", "e"]]
    # Frequencies: c=3, a=2, b=2, d=1, e=1; ties go to the smaller string.
    vocab = build_vocab(lists, max_size=5)
    assert vocab.itos == ["<pad>", "<unk>", "c", "a", "b"]
    assert vocab.stoi["<pad>"] == 0 and vocab.stoi["<unk>"] == 1
    assert len(vocab) == 5
    assert vocab.counts["c"] == 3 and vocab.counts["a"] == 2
    assert vocab.counts["<unk>"] == 2  # d and e fell outside
    assert sum(vocab.counts.values()) == 9
    # Input order does not matter.
    assert build_vocab(lists[::-1], max_size=5) == vocab


def test_build_vocab_min_freq_and_small_vocab_note(caplog):
    with caplog.at_level(logging.INFO, logger="lstm_tweets.data.text"):
        vocab = build_vocab([["a", "a", "b"]], max_size=100, min_freq=2)
    assert vocab.itos == ["<pad>", "<unk>", "a"]
    assert "fewer than the 100 requested" in caplog.text
    with pytest.raises(ValueError):
        build_vocab([["a"]], max_size=1)


def test_test_only_word_maps_to_unk():
    vocab = build_vocab([["market", "up"], ["market", "down"]], max_size=10)
    ids, lengths = encode([["market", "crash"]], vocab, max_length=4)
    assert ids.tolist() == [[vocab.stoi["market"], 1, 0, 0]]
    assert lengths.tolist() == [2]
    assert "crash" not in vocab


@pytest.mark.parametrize("n_tokens", [0, 1, 4, 5, 6])
def test_encode_boundaries(n_tokens):
    max_length = 5
    vocab = Vocab(["<pad>", "<unk>", *(f"w{i}" for i in range(10))])
    tokens = [f"w{i}" for i in range(n_tokens)]
    ids, lengths = encode([tokens], vocab, max_length)
    assert ids.shape == (1, max_length) and ids.dtype == np.int64 and lengths.dtype == np.int64
    if n_tokens == 0:
        assert ids[0].tolist() == [1, 0, 0, 0, 0] and lengths[0] == 1
        return
    kept = min(n_tokens, max_length)
    assert lengths[0] == kept
    # The first tokens are kept, in order, then padding.
    assert ids[0].tolist() == [vocab.stoi[t] for t in tokens[:kept]] + [0] * (max_length - kept)


def test_encode_mixed_batch_and_bad_length():
    vocab = build_vocab([["a", "b"]], max_size=10)
    ids, lengths = encode([["a"], [], ["b", "a", "b", "x"]], vocab, max_length=3)
    a, b = vocab.stoi["a"], vocab.stoi["b"]
    assert ids.tolist() == [[a, 0, 0], [1, 0, 0], [b, a, b]]
    assert lengths.tolist() == [1, 1, 3]
    assert encode([], vocab, 3)[0].shape == (0, 3)
    with pytest.raises(ValueError):
        encode([["a"]], vocab, 0)


def test_vocab_round_trip():
    vocab = build_vocab([tokenize("Make America Great Again! #MAGA @user 🇺🇸")] * 2, max_size=50)
    restored = Vocab.from_dict(vocab.to_dict())
    assert restored == vocab
    assert restored.stoi == vocab.stoi and restored.counts == vocab.counts
    with pytest.raises(ValueError):
        Vocab(["<unk>", "<pad>", "a"])


words = st.sampled_from(["the", "market", "up", "down", "#maga", "!", "<url>", "zzz", "🔥"])


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.lists(words, max_size=12), min_size=1, max_size=20),
    st.integers(min_value=1, max_value=8),
    st.integers(min_value=2, max_value=8),
)
def test_encode_properties(token_lists, max_length, max_size):
    vocab = build_vocab(token_lists, max_size=max_size)
    assert len(vocab) <= max_size
    ids, lengths = encode(token_lists, vocab, max_length)
    assert ids.shape == (len(token_lists), max_length)
    assert ((lengths >= 1) & (lengths <= max_length)).all()
    assert (ids >= 0).all() and (ids < len(vocab)).all()
    # Padding exactly after the true length, and no padding id before it.
    positions = np.arange(max_length)
    assert (ids[positions >= lengths[:, None]] == 0).all()
    assert (ids[positions < lengths[:, None]] != 0).all()


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_tokenize_any_text(text):
    tokens = tokenize(text)
    assert all(tok and not tok.isspace() for tok in tokens)


def test_many_tweets_sanity():
    # A smoke test at realistic scale (no timing assertion: CI machines vary).
    base = [
        "RT @realDonaldTrump: Stock Market hits new high! https://t.co/abc #MAGA",
        "The Fake News Media is working overtime &amp; they don't care… 3.5% growth",
        "",
        "🇺🇸🇺🇸 THANK YOU OHIO!",
    ]
    texts = base * 25_000
    token_lists = [tokenize(t) for t in texts]
    vocab = build_vocab(token_lists, max_size=1000)
    ids, lengths = encode(token_lists, vocab, max_length=8)
    assert ids.shape == (100_000, 8)
    assert lengths[:4].tolist() == [8, 8, 1, 6]

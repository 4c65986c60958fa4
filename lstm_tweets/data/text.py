"""Tweet tokenizer, vocabulary (built on the train split only) and encoding to padded id arrays.

Tokenizing is a few C-level passes per tweet (`str.replace`, up to three `re.sub`, one
`re.findall`), with no per-character Python; 100k tweets take a few seconds at most.
"""

from __future__ import annotations

import dataclasses
import html
import logging
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from itertools import chain, islice, repeat

import numpy as np

logger = logging.getLogger(__name__)

URL_TOKEN = "<url>"
USER_TOKEN = "<user>"

# Archive retweets are truncated with "…", which can cut a URL to "https:/…": the ellipsis ends
# the URL. Case-insensitive through character classes, because re.IGNORECASE makes this scan
# about twice as slow.
_URL_RE = re.compile(r"(?:[hH][tT][tT][pP][sS]?:|[wW][wW][wW]\.)[^\s\u2026]*")
# A possessive stays with the mention ("@foo's" -> "<user>", not "<user> s").
_MENTION_RE = re.compile(r"@\w+(?:'\w+)*")
# "1,000" -> "1000": one source strips every comma, the others do not, so numbers must not
# depend on the thousands separator.
_THOUSANDS_RE = re.compile(r"(\d),(?=\d{3}(?!\d))")

_EMOJI = "\U0001f000-\U0001faff\u2300-\u23ff\u2600-\u27bf\u2b00-\u2bff\u3030\u303d\u3297\u3299"
_EMOJI_MOD = "\U0001f3fb-\U0001f3ff\ufe0f\u20e3"  # skin tones, variation selector, keycap
_TOKEN_RE = re.compile(
    "|".join(
        [
            rf"{re.escape(URL_TOKEN)}|{re.escape(USER_TOKEN)}",
            _URL_RE.pattern,  # only reached with replace_urls=False
            _MENTION_RE.pattern,  # only reached with replace_mentions=False
            r"#\w+",  # hashtag, '#' kept
            r"\$[^\W\d_]\w*",  # cashtag ($SPY)
            r"\$?\d+(?:[.:]\d+)*(?:%|\w*)",  # 3.5%, $100, 10:00, 7pm, 2nd, $1.5B
            r"\w+(?:'\w+)*",  # words, contractions whole
            r"[\U0001f1e6-\U0001f1ff]{2}",  # a flag is a pair of regional indicators
            rf"[{_EMOJI}][{_EMOJI_MOD}]*(?:\u200d[{_EMOJI}][{_EMOJI_MOD}]*)*",  # ZWJ sequences
            r"[!?]",
        ]
    )
)


def tokenize(
    text: str,
    lowercase: bool = True,
    replace_urls: bool = True,
    replace_mentions: bool = True,
) -> list[str]:
    """Split one tweet into tokens.

    - HTML entities are unescaped first (`&amp;` -> `&`); curly apostrophes become `'`.
    - URLs (also truncated ones like `https:/…`) -> `<url>`, `@mentions` -> `<user>`; with the
      replace flags off they stay as tokens.
    - Hashtags keep the `#` (`#MAGA` -> `#maga`); cashtags keep the `$` (`$SPY` -> `$spy`).
    - Numbers are single tokens with their decimal point, `%`, leading `$` and a trailing unit or
      suffix: `3.5%`, `$100`, `$1.5b`, `10:00`, `7pm`, `2nd`. Thousands separators are dropped
      (`1,000` -> `1000`) because part of the archive has all commas stripped.
    - Contractions stay whole (`don't`, `it's`). Each emoji (a flag, a skin-toned or ZWJ
      sequence) is one token.
    - `!` and `?` are tokens, one per character; all other punctuation is dropped, so texts with
      and without commas and quotes tokenize the same. "RT" is an ordinary word (`rt`).

    `lowercase=False` keeps the case (embedding lookups try the exact case first).
    """
    # Curly and modifier apostrophes become ASCII so "don’t" and "don't" are one token
    # (chained replace is far faster than str.translate with a non-ASCII table).
    text = html.unescape(text).replace("\u2019", "'").replace("\u2018", "'").replace("\u02bc", "'")
    # Padding with spaces also splits URLs glued to the previous word ("#MAGAhttps://t.co/x").
    text = _URL_RE.sub(f" {URL_TOKEN} " if replace_urls else r" \g<0> ", text)
    if replace_mentions:
        text = _MENTION_RE.sub(f" {USER_TOKEN} ", text)
    if "," in text:
        text = _THOUSANDS_RE.sub(r"\1", text)
    if lowercase:
        text = text.lower()
    return _TOKEN_RE.findall(text)


@dataclasses.dataclass(frozen=True)
class TokenizerOptions:
    """The `tokenize` options, stored in checkpoints so prediction tokenizes like training.

    Use as `tokenize(text, **options.to_dict())`.
    """

    lowercase: bool = True
    replace_urls: bool = True
    replace_mentions: bool = True

    def to_dict(self) -> dict[str, bool]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TokenizerOptions:
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown tokenizer options: {sorted(unknown)}")
        return cls(**{k: bool(v) for k, v in d.items()})


class Vocab:
    """Token <-> id mapping. `<pad>` is id 0 and `<unk>` id 1.

    `counts[token]` is the token's frequency in the lists the vocab was built from (the train
    split); `counts[UNK]` is the number of train tokens that fell outside the vocab, so
    `sum(counts.values())` is the number of train tokens.
    """

    PAD = "<pad>"
    UNK = "<unk>"
    PAD_ID = 0
    UNK_ID = 1

    def __init__(self, itos: Sequence[str], counts: dict[str, int] | None = None):
        itos = list(itos)
        if itos[:2] != [self.PAD, self.UNK]:
            raise ValueError(f"vocab must start with {self.PAD!r}, {self.UNK!r}, got {itos[:2]}")
        if len(set(itos)) != len(itos):
            raise ValueError("vocab has duplicate tokens")
        self.itos = itos
        self.stoi = {tok: i for i, tok in enumerate(itos)}
        counts = counts or {}
        self.counts = {tok: int(counts.get(tok, 0)) for tok in itos}

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: str) -> bool:
        return token in self.stoi

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocab) and (self.itos, self.counts) == (other.itos, other.counts)

    def __repr__(self) -> str:
        return f"Vocab(size={len(self)})"

    def to_dict(self) -> dict:
        return {"itos": list(self.itos), "counts": [self.counts[t] for t in self.itos]}

    @classmethod
    def from_dict(cls, d: dict) -> Vocab:
        itos, counts = d["itos"], d.get("counts")
        if counts is not None and len(counts) != len(itos):
            raise ValueError(f"vocab has {len(itos)} tokens but {len(counts)} counts")
        return cls(itos, dict(zip(itos, counts, strict=True)) if counts is not None else None)


def build_vocab(token_lists: Iterable[Sequence[str]], max_size: int, min_freq: int = 1) -> Vocab:
    """The `max_size - 2` most frequent tokens (with `min_freq` or more occurrences) plus `<pad>`
    and `<unk>`, so `len(vocab) <= max_size`. Ties in frequency go to the smaller token string,
    so the vocab does not depend on input order. Pass the train split only."""
    if max_size < 2:
        raise ValueError(f"max_size must be at least 2 (<pad> and <unk>), got {max_size}")
    if min_freq < 1:
        raise ValueError(f"min_freq must be at least 1, got {min_freq}")
    freq = Counter(chain.from_iterable(token_lists))
    total = sum(freq.values())
    # The specials are ids, not words: drop them if some text happens to contain them.
    freq.pop(Vocab.PAD, None)
    freq.pop(Vocab.UNK, None)
    ranked = sorted(
        ((tok, n) for tok, n in freq.items() if n >= min_freq), key=lambda tn: (-tn[1], tn[0])
    )
    kept = ranked[: max_size - 2]
    if len(kept) < max_size - 2:
        logger.info(
            "vocab has %d tokens, fewer than the %d requested (%d distinct tokens, %d with "
            "frequency >= %d)",
            len(kept) + 2,
            max_size,
            len(freq),
            len(ranked),
            min_freq,
        )
    counts = dict(kept)
    counts[Vocab.UNK] = total - sum(counts.values())
    return Vocab([Vocab.PAD, Vocab.UNK, *(tok for tok, _ in kept)], counts)


def encode(
    token_lists: Sequence[Sequence[str]], vocab: Vocab, max_length: int
) -> tuple[np.ndarray, np.ndarray]:
    """Token lists -> (ids of shape (n, max_length), lengths of shape (n,)), both int64.

    Keeps the first `max_length` tokens, pads with 0 and maps unknown tokens to 1. An empty token
    list becomes a single `<unk>` of length 1, so every length is in [1, max_length] (an LSTM
    cannot read a sequence of length 0).
    """
    if max_length < 1:
        raise ValueError(f"max_length must be at least 1, got {max_length}")
    n = len(token_lists)
    kept = np.minimum(np.fromiter(map(len, token_lists), dtype=np.int64, count=n), max_length)
    # islice + map keep the per-token work in C; slicing 100k lists costs more than the lookups.
    tokens = chain.from_iterable(map(islice, token_lists, repeat(max_length)))
    flat = np.fromiter(
        map(vocab.stoi.get, tokens, repeat(Vocab.UNK_ID)), dtype=np.int64, count=int(kept.sum())
    )
    ids = np.zeros((n, max_length), dtype=np.int64)
    # Row-major boolean indexing fills each row's first `kept` slots in order.
    ids[np.arange(max_length) < kept[:, None]] = flat
    empty = kept == 0
    ids[empty, 0] = Vocab.UNK_ID
    return ids, np.maximum(kept, 1)

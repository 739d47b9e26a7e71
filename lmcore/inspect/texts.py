"""Texts to inspect a run on: a clean sentence of its own validation split, and the <unk> share of typed text."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from lmcore.corpus.dataset import Corpus
from lmcore.corpus.tokenize import EOS, UNK
from lmcore.corpus.vocab import Vocab

LENGTHS = {"char": (30, 150)}  # tokens per sentence by tokenizer; words and word tokenizers: (8, 25)
SCAN_TOKENS = 200_000          # a streamed corpus's valid split can be huge: its first lines are enough


def validation_lines(corpus: Corpus, scan: int = SCAN_TOKENS) -> list[np.ndarray]:
    """Token ids of each line of the validation split (lines are joined with <eos>), without the <eos>."""
    ids = np.asarray(corpus.valid[:scan])
    ends = np.flatnonzero(ids == corpus.vocab.eos_id)
    starts = np.concatenate([[0], ends[:-1] + 1]) if ends.size else np.array([0])
    ends = ends if ends.size else np.array([ids.size])
    return [ids[a:b] for a, b in zip(starts, ends) if b > a]


def is_unknown(token: str, vocab: Vocab) -> bool:
    return token == UNK or token not in vocab.stoi


def example_sentence(corpus: Corpus, vocab: Vocab | None = None, min_tokens: int | None = None,
                     max_tokens: int | None = None) -> list[str]:
    """A validation line of min_tokens..max_tokens tokens with the fewest <unk> (the first of equals).

    vocab: the run's vocabulary, when it may differ from the corpus's. Without a line of that length,
    the line nearest to it, cut to max_tokens; [] for an empty validation split."""
    low, high = LENGTHS.get(corpus.spec.tokenizer, (8, 25))
    low, high = min_tokens or low, max_tokens or high
    vocab = vocab or corpus.vocab

    def key(item):  # lines in the range first, then fewer <unk>, then the earlier line
        index, tokens = item
        outside = max(low - len(tokens), len(tokens) - high, 0)
        return outside, unknown_share(tokens, vocab), index

    lines = [corpus.vocab.decode(ids) for ids in validation_lines(corpus)]
    if not lines:
        return []
    return min(enumerate(lines), key=key)[1][:high]


def unknown_share(tokens: Sequence[str], vocab: Vocab) -> float:
    return sum(is_unknown(t, vocab) for t in tokens) / max(1, len(tokens))


def unknown_tokens(tokens: Sequence[str], vocab: Vocab) -> tuple[int, int, list[str]]:
    """(unknown count, token count, distinct unknown tokens in order of appearance), <eos> not counted."""
    words = [t for t in tokens if t != EOS]
    unknown = [t for t in words if is_unknown(t, vocab)]
    return len(unknown), len(words), list(dict.fromkeys(unknown))

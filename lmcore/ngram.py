"""Interpolated Kneser–Ney n-gram language model (orders 1–5), the baseline beside the neural LMs.

Recursion, for level n = 1..order with context h of n-1 ids and shortened context h':

    P_n(w | h) = (max(c_n(h w) - D_n, 0) + D_n * F_n(h) * P_{n-1}(w | h')) / C_n(h)

where c_n are raw counts at the highest order and continuation counts (number of distinct
left neighbours) below it, C_n(h) = sum_w c_n(h w), F_n(h) = number of distinct w with
c_n(h w) > 0, and P_0 is uniform over the vocabulary. A context never seen at level n
(C_n(h) = 0) backs off fully: P_n = P_{n-1}.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from typing import Sequence

import numpy as np

from lmcore.corpus.dataset import Corpus, CorpusSpec, spec_fingerprint
from lmcore.corpus.loading import load_corpus

MAX_ORDER = 5
# Estimated discounts are kept inside this range so neither the counts nor the back-off vanish.
MIN_DISCOUNT, MAX_DISCOUNT = 0.1, 0.95
FALLBACK_DISCOUNT = 0.75


def _as_int_list(ids) -> list[int]:
    return [int(t) for t in np.asarray(ids).reshape(-1)]


def _ngrams(stream: list[int], n: int):
    return zip(*(stream[k:] for k in range(n)))


class KneserNeyLM:
    """Interpolated Kneser–Ney LM over a fixed vocabulary of token ids 0..vocab_size-1."""

    def __init__(self, order: int = 3, discount: float | None = None):
        if not 1 <= order <= MAX_ORDER:
            raise ValueError(f"order must be in 1..{MAX_ORDER}, got {order}")
        if discount is not None and not 0.0 < discount <= 1.0:
            raise ValueError(f"discount must be in (0, 1], got {discount}")
        self.order = order
        self.discount = discount
        self.vocab_size = 0
        # Index n (1..order) holds level n; index 0 is unused so levels read as in the formula.
        self.discounts: list[float] = []
        self._gram_counts: list[dict[tuple, int]] = []
        self._context_stats: list[dict[tuple, tuple[int, int]]] = []  # h -> (C(h), F(h))
        self._followers: list[dict[tuple, tuple[list[int], list[int]]]] = []  # h -> (words, counts)

    def fit(self, ids, vocab_size: int) -> "KneserNeyLM":
        """Count n-grams in one token-id stream; returns self."""
        stream = _as_int_list(ids)
        if vocab_size < 1:
            raise ValueError("vocab_size must be positive")
        if stream and not 0 <= min(stream) <= max(stream) < vocab_size:
            raise ValueError(f"token ids must lie in [0, {vocab_size})")
        self.vocab_size = vocab_size
        levels: list[dict[tuple, int]] = [{} for _ in range(self.order + 1)]
        levels[self.order] = Counter(_ngrams(stream, self.order))
        for n in range(1, self.order):
            # Continuation count of g: how many distinct tokens precede it, i.e. (n+1)-gram types ending in g.
            levels[n] = Counter(gram[1:] for gram in set(_ngrams(stream, n + 1)))
        self._gram_counts = levels
        self.discounts = [0.0] + [self._pick_discount(levels[n]) for n in range(1, self.order + 1)]
        self._context_stats = [{}]
        self._followers = [{}]
        for n in range(1, self.order + 1):
            by_context: dict[tuple, tuple[list[int], list[int]]] = {}
            for gram, count in levels[n].items():
                words, counts = by_context.setdefault(gram[:-1], ([], []))
                words.append(gram[-1])
                counts.append(count)
            self._context_stats.append({h: (sum(c), len(c)) for h, (_, c) in by_context.items()})
            self._followers.append(by_context)
        return self

    def _pick_discount(self, counts: dict[tuple, int]) -> float:
        if self.discount is not None:
            return self.discount
        counts_of_counts = Counter(counts.values())
        n1, n2 = counts_of_counts[1], counts_of_counts[2]
        if n1 + 2 * n2 == 0:
            return FALLBACK_DISCOUNT
        return min(max(n1 / (n1 + 2 * n2), MIN_DISCOUNT), MAX_DISCOUNT)

    def _history(self, context) -> tuple[int, ...]:
        if not self._gram_counts:
            raise RuntimeError("call fit() before scoring")
        history = tuple(_as_int_list(context))
        keep = self.order - 1
        return history[-keep:] if keep else ()

    def prob(self, context: Sequence[int], token: int) -> float:
        """P(token | last order-1 ids of context); a shorter context starts at a lower level."""
        history = self._history(context)
        token = int(token)
        if not 0 <= token < self.vocab_size:
            raise ValueError(f"token {token} is outside the vocabulary [0, {self.vocab_size})")
        p = 1.0 / self.vocab_size
        for n, h, total, distinct, d in self._levels(history):
            count = self._gram_counts[n].get(h + (token,), 0)
            p = (max(count - d, 0.0) + d * distinct * p) / total
        return p

    def _levels(self, history: tuple):
        """(n, context, total count, distinct followers, discount) from unigram up, seen contexts only
        (an unseen context backs off fully, so its level is skipped)."""
        for n in range(1, len(history) + 2):
            h = history[len(history) - n + 1:]  # the last n-1 ids
            stats = self._context_stats[n].get(h)
            if stats is not None:
                yield n, h, stats[0], stats[1], self.discounts[n]

    def distribution(self, context: Sequence[int]) -> np.ndarray:
        """Full next-token distribution over the vocabulary (sums to 1)."""
        history = self._history(context)
        p = np.full(self.vocab_size, 1.0 / self.vocab_size)
        for n, h, total, distinct, d in self._levels(history):
            words, counts = self._followers[n][h]
            p *= d * distinct / total
            p[words] += np.maximum(np.asarray(counts, dtype=np.float64) - d, 0.0) / total
        return p

    def log_probs(self, ids) -> np.ndarray:
        """ln P(ids[i] | ids[max(0, i-order+1):i]) for i = 1..len(ids)-1 (targets ids[1:])."""
        stream = _as_int_list(ids)
        keep = self.order - 1
        return np.array(
            [math.log(self.prob(stream[max(0, i - keep):i], stream[i])) for i in range(1, len(stream))],
            dtype=np.float64,
        )

    def perplexity(self, ids) -> float:
        """exp of the mean negative log-likelihood of ids[1:]."""
        scores = self.log_probs(ids)
        if scores.size == 0:
            raise ValueError("need at least two tokens to compute perplexity")
        return float(math.exp(-scores.mean()))


def ngram_perplexity(train_ids, eval_ids, vocab_size: int, order: int = 3) -> float:
    """Fit a KN model of the given order on train_ids and return its perplexity on eval_ids."""
    return KneserNeyLM(order=order).fit(train_ids, vocab_size).perplexity(eval_ids)


# The baseline beside the neural runs: exactly their vocabulary, splits and <eos>/<unk> protocol.
def ngram_baseline(corpus: Corpus, order: int = 3) -> dict:
    t0 = time.perf_counter()
    lm = KneserNeyLM(order).fit(corpus.train, len(corpus.vocab))
    return {"order": order, "valid_ppl": lm.perplexity(corpus.valid), "test_ppl": lm.perplexity(corpus.test),
            "vocab": len(corpus.vocab), "seconds": time.perf_counter() - t0}


def cached_baseline(store, spec: CorpusSpec | dict, order: int = 3) -> dict:
    """The baseline for a corpus spec, computed once and kept in the run store."""
    spec = CorpusSpec(**spec) if isinstance(spec, dict) else spec
    key = spec_fingerprint(spec)
    found = store.get_baseline(key, order)
    if found:
        return {"order": order, **{k: found[k] for k in ("valid_ppl", "test_ppl", "vocab", "seconds")}}
    result = ngram_baseline(load_corpus(spec), order)
    store.set_baseline(key, order, valid_ppl=result["valid_ppl"], test_ppl=result["test_ppl"],
                       vocab=result["vocab"], seconds=result["seconds"])
    return result

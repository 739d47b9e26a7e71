"""Tests for the interpolated Kneser–Ney baseline."""

import math

import numpy as np
import pytest

from lmcore.ngram import KneserNeyLM, ngram_perplexity

# Stream over vocab {0,1,2,3}; token 3 never occurs.
TINY = [0, 1, 0, 2, 0, 1]


def grammar_stream(n_tokens: int, seed: int, vocab: int = 20, eos: int = 0) -> list[int]:
    """A seeded random grammar: each word is chosen by the two before it from a few allowed ones."""
    rules = np.random.default_rng(1234)  # the grammar itself is fixed; only sampling varies with seed
    allowed = rules.integers(0, vocab, size=(vocab, vocab, 3))
    weights = np.array([0.7, 0.2, 0.1])
    rng = np.random.default_rng(seed)
    stream = [eos, int(rng.integers(1, vocab))]
    while len(stream) < n_tokens:
        a, b = stream[-2], stream[-1]
        stream.append(int(allowed[a, b, rng.choice(3, p=weights)]))
    return stream


def test_hand_computed_bigram():
    lm = KneserNeyLM(order=2, discount=0.5).fit(TINY, vocab_size=4)
    # Bigram counts: (0,1)=2, (1,0)=1, (0,2)=1, (2,0)=1.
    # Unigram continuation counts (distinct left neighbours): 0 <- {1,2} = 2, 1 <- {0} = 1, 2 <- {0} = 1.
    #   total 4, 3 distinct words, so P1(w) = (max(N(w)-0.5, 0) + 0.5*3*(1/4)) / 4
    #   P1(1) = (0.5 + 0.375)/4 = 0.21875, P1(0) = (1.5 + 0.375)/4 = 0.46875, P1(3) = 0.375/4 = 0.09375
    # Context 0: C(0) = 3, two distinct followers, so P2(w|0) = (max(c(0 w)-0.5, 0) + 0.5*2*P1(w)) / 3
    #   P2(1|0) = (1.5 + 0.21875)/3 = 0.57291666..., P2(3|0) = 0.09375/3 = 0.03125
    assert lm.prob([0], 1) == pytest.approx(1.71875 / 3, abs=1e-9)
    assert lm.prob([0], 3) == pytest.approx(0.03125, abs=1e-9)
    assert lm.prob([], 0) == pytest.approx(0.46875, abs=1e-9)
    # Context 3 was never seen: back off fully to P1.
    assert lm.prob([3], 0) == pytest.approx(0.46875, abs=1e-9)
    # Only the last order-1 ids matter.
    assert lm.prob([2, 2, 0], 1) == lm.prob([0], 1)


def test_estimated_discount_from_counts_of_counts():
    lm = KneserNeyLM(order=2).fit(TINY, vocab_size=4)
    # Bigram counts {2,1,1,1}: n1=3, n2=1 -> D2 = 3/(3+2) = 0.6.
    # Continuation counts {2,1,1}: n1=2, n2=1 -> D1 = 2/(2+2) = 0.5.
    assert lm.discounts[1:] == pytest.approx([0.5, 0.6])


@pytest.mark.parametrize("order", [1, 2, 3, 4, 5])
def test_distributions_sum_to_one(order):
    train = grammar_stream(3000, seed=0)
    vocab = 25  # ids 20..24 never occur
    lm = KneserNeyLM(order=order).fit(train, vocab)
    contexts = [[], train[:1], train[10:14], train[100:110], [21, 22, 23, 24], [train[5], 24], [24, train[5]]]
    for context in contexts:
        dist = lm.distribution(context)
        assert dist.shape == (vocab,)
        assert dist.sum() == pytest.approx(1.0, abs=1e-9)
        assert (dist > 0).all()
        for token in (0, train[7], 24):
            assert lm.prob(context, token) == pytest.approx(dist[token], abs=1e-12)


def test_log_probs_follow_stream_protocol():
    train, held_out = grammar_stream(2000, seed=1), grammar_stream(300, seed=2)
    lm = KneserNeyLM(order=3).fit(train, 20)
    scores = lm.log_probs(held_out)
    assert scores.shape == (len(held_out) - 1,)
    for i in (1, 2, 3, 150):
        assert scores[i - 1] == pytest.approx(math.log(lm.prob(held_out[max(0, i - 2):i], held_out[i])))
    assert lm.perplexity(held_out) == pytest.approx(math.exp(-scores.mean()))
    assert ngram_perplexity(train, held_out, 20, order=3) == pytest.approx(lm.perplexity(held_out))


def test_held_out_perplexity_decreases_with_order():
    train, held_out = grammar_stream(20000, seed=3), grammar_stream(2000, seed=4)
    ppl = [ngram_perplexity(train, held_out, 20, order=n) for n in (1, 2, 3)]
    assert all(math.isfinite(p) for p in ppl)
    assert ppl[0] > ppl[1] > ppl[2]


def test_training_perplexity_lower_at_order_5_than_1():
    train = np.array(grammar_stream(5000, seed=5))
    ppl1 = KneserNeyLM(order=1).fit(train, 20).perplexity(train)
    ppl5 = KneserNeyLM(order=5).fit(train, 20).perplexity(train)
    assert ppl5 < ppl1


@pytest.mark.parametrize("order", [1, 3, 5])
def test_unseen_tokens_get_positive_probability(order):
    lm = KneserNeyLM(order=order).fit([0, 1, 2, 3, 4] * 20, vocab_size=10)
    assert lm.prob([0, 1, 2, 3], 7) > 0
    assert lm.prob([9, 8, 7, 6], 9) > 0
    assert np.isfinite(lm.log_probs([0, 1, 7, 9, 2, 8])).all()


def test_rejects_bad_arguments():
    with pytest.raises(ValueError):
        KneserNeyLM(order=6)
    with pytest.raises(ValueError):
        KneserNeyLM(discount=1.5)
    with pytest.raises(ValueError):
        KneserNeyLM().fit([0, 5], vocab_size=5)
    with pytest.raises(RuntimeError):
        KneserNeyLM().prob([0], 1)
    with pytest.raises(ValueError):
        KneserNeyLM(order=2).fit(TINY, vocab_size=4).prob([0], 4)

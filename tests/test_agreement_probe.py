"""The lecture's claim, measured: after a short stated budget an LSTM agrees across long spans, the n-gram cannot.

Budget (lmcore.training.demos's agreement recipe): 1×128 LSTM, Adam lr 0.01, batch 16, τ 100, 12 epochs, seed 1,
about 20 s on one CPU thread. The latch is found for 3 of 5 seeds tried; seed 1 is one of them.
"""
from __future__ import annotations

import numpy as np

from lmcore.corpus.loading import load_corpus
from lmcore.inspect.memory import LECTURE_ITEMS, agreement_items, lm_margins, ngram_margins, usable
from lmcore.ngram import KneserNeyLM
from lmcore.training.checkpoints import load_checkpoint
from lmcore.training.config import RunConfig
from lmcore.training.demos import AGREEMENT_MODEL, AGREEMENT_TRAIN, RECIPES
from lmcore.training.trainer import train


def test_lstm_agrees_across_four_plus_words_and_the_ngram_does_not(tmp_path):
    spec = RECIPES["agreement"][0]
    corpus = load_corpus(spec)
    cfg = RunConfig(corpus=spec, model=AGREEMENT_MODEL, train=AGREEMENT_TRAIN)
    assert cfg.model.arch == "lstm"
    result = train(cfg, tmp_path)
    assert result.status == "done"
    model, _, vocab, _ = load_checkpoint(tmp_path / "best.pt")

    items = usable(agreement_items("valid"), vocab)
    far = np.array([it.distance >= 4 for it in items])
    assert far.sum() > 500
    lstm = (lm_margins(model, vocab, items) > 0)[far].mean()
    kn = KneserNeyLM(3).fit(corpus.train, len(corpus.vocab))
    ngram = (ngram_margins(kn, corpus.vocab, items) > 0)[far].mean()
    assert lstm >= 0.9, lstm
    assert ngram < 0.6 and lstm - ngram > 0.3, (lstm, ngram)
    # and the lecture's own sentences
    assert (lm_margins(model, vocab, list(LECTURE_ITEMS)) > 0).all()

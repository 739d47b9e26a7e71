"""The n-gram baseline on exactly the neural runs' vocabulary, splits and <eos>/<unk> protocol."""
from __future__ import annotations

import time
from dataclasses import asdict

from .corpus.dataset import Corpus, CorpusSpec, load_corpus, spec_fingerprint
from .ngram import KneserNeyLM


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


def spec_label(spec: CorpusSpec | dict) -> str:
    d = spec if isinstance(spec, dict) else asdict(spec)
    return f"{d['source']} ({d['tokenizer']}{', lowercased' if d.get('lowercase') else ''})"

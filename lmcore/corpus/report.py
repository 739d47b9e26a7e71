"""What the Corpus page and `lmcore corpus` show of a corpus: split sizes and the first tokens. No torch here,
so the first page a user opens does not wait for it."""
from __future__ import annotations

import math

import pandas as pd

from lmcore.corpus.dataset import SPLITS, Corpus, CorpusSpec, source_text, tokenized_splits


def corpus_stats_table(corpus: Corpus) -> pd.DataFrame:
    stats = corpus.stats()
    return pd.DataFrame([{"split": s, "lines": stats[f"{s}_lines"], "tokens": stats[f"{s}_tokens"],
                          "<unk> rate": f"{stats[f'{s}_unk_rate']:.2%}"} for s in SPLITS])


def preview_tokens(corpus: Corpus, n: int = 200) -> list[str]:
    """The first n training tokens as the model sees them (<unk> included)."""
    return corpus.vocab.decode(corpus.train[:n])


def text_sizes(spec: CorpusSpec) -> dict[str, dict[str, int]]:
    """Per split, its tokens under this spec's tokenizer (what a run predicts: its words, or characters, and one
    <eos> per line), its characters (each line end one) and its words (whitespace-separated). A split's lines do
    not depend on the tokenizer, so a char-level and a word-level run of one source are scored on the same text:
    bits per character = tokens × log2(perplexity) / characters, comparable between them."""
    tokens, _ = tokenized_splits(spec)
    lines = source_text(spec.source)
    return {s: {"tokens": len(tokens[s]), "chars": sum(len(ln) + 1 for ln in lines[s] if ln.strip()),
                "words": sum(len(ln.split()) for ln in lines[s])} for s in SPLITS}


def bits_per(ppl: float | None, sizes: dict[str, int], unit: str) -> float | None:
    """Bits per character ("chars") or per word ("words") of a split a run scored with this perplexity."""
    if ppl is None or not math.isfinite(ppl) or ppl <= 0 or not sizes.get(unit):
        return None
    return sizes["tokens"] * math.log2(ppl) / sizes[unit]

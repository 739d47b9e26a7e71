"""What the Corpus page and `lmcore corpus` show of a corpus: split sizes and the first tokens. No torch here,
so the first page a user opens does not wait for it."""
from __future__ import annotations

import pandas as pd

from lmcore.corpus.dataset import SPLITS, Corpus


def corpus_stats_table(corpus: Corpus) -> pd.DataFrame:
    stats = corpus.stats()
    return pd.DataFrame([{"split": s, "lines": stats[f"{s}_lines"], "tokens": stats[f"{s}_tokens"],
                          "<unk> rate": f"{stats[f'{s}_unk_rate']:.2%}"} for s in SPLITS])


def preview_tokens(corpus: Corpus, n: int = 200) -> list[str]:
    """The first n training tokens as the model sees them (<unk> included)."""
    return corpus.vocab.decode(corpus.train[:n])

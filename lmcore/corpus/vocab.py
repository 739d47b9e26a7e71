"""Vocabulary built from the training split only; rarer and unseen words map to <unk>."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

from lmcore.corpus.tokenize import EOS, UNK


@dataclass
class Vocab:
    itos: list[str]
    stoi: dict[str, int] = field(init=False, repr=False)
    # distinct tokens of the training text before the rare ones became <unk> (None: not known, e.g. a checkpoint's)
    types_seen: int | None = field(default=None, compare=False)

    def __post_init__(self):
        self.stoi = {s: i for i, s in enumerate(self.itos)}

    @classmethod
    def build(cls, train_tokens: Iterable[str], min_count: int = 1, max_vocab: int | None = None) -> "Vocab":
        return cls.from_counts(Counter(train_tokens), min_count, max_vocab)

    @classmethod
    def from_counts(cls, counts: Counter, min_count: int = 1, max_vocab: int | None = None) -> "Vocab":
        """The vocabulary of token counts (the streaming reader counts without keeping the tokens)."""
        counts = Counter(counts)
        counts.pop(UNK, None)
        counts.pop(EOS, None)
        # Most frequent first, ties broken alphabetically so the ids are reproducible.
        kept = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
        if max_vocab is not None:
            kept = kept[: max(0, max_vocab - 2)]
        return cls([UNK, EOS] + kept, types_seen=len(counts))

    def __len__(self) -> int:
        return len(self.itos)

    @property
    def unk_id(self) -> int:
        return self.stoi[UNK]

    @property
    def eos_id(self) -> int:
        return self.stoi[EOS]

    def encode(self, tokens: Sequence[str]) -> np.ndarray:
        unk = self.unk_id
        return np.fromiter((self.stoi.get(t, unk) for t in tokens), dtype=np.int64, count=len(tokens))

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.itos[int(i)] for i in ids]

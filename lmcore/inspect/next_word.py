"""Next-word view: where the actual next token ranks, surprisal statistics, and sampled text as it comes.

Surprisal of token x_{t+1} is -log2 P(x_{t+1} | x_1..x_t) in bits; perplexity = 2 ** (mean surprisal).
"""
from __future__ import annotations

from typing import Iterable, Iterator, Sequence

import numpy as np
import pandas as pd
import torch

from lmcore.corpus.tokenize import EOS, tokenize
from lmcore.corpus.vocab import Vocab
from lmcore.nn.model import RNNLM
from lmcore.nn.sampling import prompt_ids, sample_tokens


@torch.no_grad()
def next_token_ranks(model: RNNLM, ids: Sequence[int]) -> np.ndarray:
    """(T-1,) rank of each actual next token in the model's distribution: 1 = its first guess."""
    model.eval()
    x = torch.as_tensor(np.asarray(ids, dtype=np.int64), device=model.encoder.weight.device).view(-1, 1)  # (T, 1)
    logits, _, _ = model(x)  # (T, 1, V)
    scores = logits[:-1, 0].float()  # (T-1, V); softmax keeps the order, so compare logits
    actual = scores.gather(1, x[1:])  # (T-1, 1)
    return ((scores > actual).sum(dim=1) + 1).cpu().numpy()


def surprisal_table(tokens: Sequence[str], surprisal: np.ndarray, ranks: np.ndarray | None = None) -> pd.DataFrame:
    """Mean surprisal, perplexity and friends of one text, as (quantity, value) rows of strings."""
    s = np.asarray(surprisal, dtype=float)
    if s.size == 0:
        return pd.DataFrame({"quantity": ["tokens predicted"], "value": ["0"]})
    mean = float(s.mean())
    worst = int(s.argmax())
    rows = [("tokens predicted", f"{s.size:,}"),
            ("mean surprisal (bits/token)", f"{mean:.3f}"),
            ("perplexity = 2^mean", f"{2.0 ** mean:.2f}"),
            ("most surprising token", f"{tokens[worst + 1]} ({s[worst]:.2f} bits)")]
    if ranks is not None and len(ranks):
        rows.append(("actual next token was the first guess", f"{np.mean(np.asarray(ranks) == 1):.1%}"))
    return pd.DataFrame(rows, columns=["quantity", "value"])


def prompt_tokens(text: str, kind: str, lowercase: bool) -> list[str]:
    """The prompt's tokens, without the <eos> after its last line, so sampling continues that line."""
    tokens = tokenize(text.splitlines(), kind, lowercase)
    return tokens[:-1] if tokens and tokens[-1] == EOS else tokens


def text_pieces(tokens: Iterable[str], kind: str, after: str | None = EOS) -> Iterator[str]:
    """Readable pieces, one per token, that join into `detokenize(tokens, kind)`.

    `after` is the token before the first one (None or <eos>: a line start, so no leading space).
    """
    prev = after
    for tok in tokens:
        if tok == EOS:
            yield "\n"
        elif kind == "char" or prev is None or prev == EOS:
            yield tok
        else:
            yield " " + tok
        prev = tok


def sample_pieces(model: RNNLM, vocab: Vocab, prompt: Sequence[str], kind: str, n: int,
                  temperature: float = 1.0, top_k: int = 0, seed: int = 0) -> Iterator[str]:
    """Sample n tokens after the prompt (an empty prompt starts a new line) and yield them as text pieces."""
    tokens = (vocab.itos[i] for i in sample_tokens(model, prompt_ids(vocab, prompt), n, temperature, top_k, seed))
    return text_pieces(tokens, kind, after=prompt[-1] if prompt else None)

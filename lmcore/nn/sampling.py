"""Sampling text from a trained model, one token at a time (so a page can show it as it comes)."""
from __future__ import annotations

from typing import Iterator, Sequence

import torch

from lmcore.corpus.tokenize import EOS
from lmcore.corpus.vocab import Vocab
from lmcore.nn.model import RNNLM
from lmcore.values import MAX_SEED, check_finite, check_whole


def check_sampling(n: int, temperature: float, top_k: int, seed: int) -> None:
    """Refuse, with the flag's name, what would otherwise fail deep inside torch."""
    check_finite("temperature", temperature)
    if temperature <= 0:
        raise ValueError("temperature must be positive")
    for name, value in (("words", n), ("top-k", top_k), ("seed", seed)):
        check_whole(name, value)
        if value < 0:
            raise ValueError(f"{name} cannot be negative (top-k 0: all words)" if name == "top-k"
                             else f"{name} cannot be negative")
    if seed > MAX_SEED:
        raise ValueError(f"seed must be between 0 and {MAX_SEED} (2**32 - 1), not {seed}")


def prompt_ids(vocab: Vocab, prompt: Sequence[str]) -> list[int]:
    """The ids a sample starts from: <eos>, then the prompt. A prompt starts a line, and in training every line
    came after an <eos>; read from a zero state without one, "a young girl" went on with "in" (0.06) rather than
    the text's "eats" (0.11)."""
    tokens = list(prompt)
    return [vocab.eos_id] + [int(i) for i in vocab.encode(tokens[1:] if tokens[:1] == [EOS] else tokens)]


def sample_tokens(model: RNNLM, prompt_ids: Sequence[int], n: int, temperature: float = 1.0,
                  top_k: int = 0, seed: int = 0) -> Iterator[int]:
    """Yield n sampled token ids after feeding the prompt; seeded so the same call gives the same text.
    The arguments are checked here, when called, not at the first token."""
    check_sampling(n, temperature, top_k, seed)
    return _sampled(model, prompt_ids, n, temperature, top_k, seed)


@torch.no_grad()
def _sampled(model: RNNLM, prompt_ids: Sequence[int], n: int, temperature: float, top_k: int,
             seed: int) -> Iterator[int]:
    model.eval()
    device = model.encoder.weight.device
    gen = torch.Generator(device="cpu").manual_seed(seed)
    ids = list(prompt_ids) or [0]
    logits, _, hidden = model(torch.tensor(ids, device=device).view(-1, 1))
    last = logits[-1, 0]
    for _ in range(n):
        # shifted to a maximum of 0 first, in float64: a tiny temperature then sends the others to -inf
        # (probability 0) instead of every score to inf, whose softmax is NaN
        scores = ((last.double().cpu() - last.max().double().cpu()) / temperature).float()
        if top_k and top_k < scores.numel():
            cutoff = torch.topk(scores, top_k).values[-1]
            scores = scores.masked_fill(scores < cutoff, float("-inf"))
        token = int(torch.multinomial(torch.softmax(scores, dim=-1), 1, generator=gen))
        yield token
        logits, _, hidden = model(torch.tensor([[token]], device=device), hidden)
        last = logits[-1, 0]

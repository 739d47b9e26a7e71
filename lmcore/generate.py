"""Sampling text from a trained model, one token at a time (so a page can show it as it comes)."""
from __future__ import annotations

from typing import Iterator, Sequence

import torch

from .model import RNNLM


@torch.no_grad()
def sample_tokens(model: RNNLM, prompt_ids: Sequence[int], n: int, temperature: float = 1.0,
                  top_k: int = 0, seed: int = 0) -> Iterator[int]:
    """Yield n sampled token ids after feeding the prompt; seeded so the same call gives the same text."""
    if temperature <= 0:
        raise ValueError("temperature must be positive")
    model.eval()
    device = model.encoder.weight.device
    gen = torch.Generator(device="cpu").manual_seed(seed)
    ids = list(prompt_ids) or [0]
    logits, _, hidden = model(torch.tensor(ids, device=device).view(-1, 1))
    last = logits[-1, 0]
    for _ in range(n):
        scores = (last / temperature).float().cpu()
        if top_k and top_k < scores.numel():
            cutoff = torch.topk(scores, top_k).values[-1]
            scores = scores.masked_fill(scores < cutoff, float("-inf"))
        token = int(torch.multinomial(torch.softmax(scores, dim=-1), 1, generator=gen))
        yield token
        logits, _, hidden = model(torch.tensor([[token]], device=device), hidden)
        last = logits[-1, 0]

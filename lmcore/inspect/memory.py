"""Markov against memory: long-range agreement and how much context a model uses.

- Agreement probe: at the verb of "the roses in the vase by the door are", is P(are) > P(is)?
  Accuracy by the number of words between subject and verb, for a neural run and for the n-gram
  baseline, whose fixed window cannot reach a subject further back than order − 1 words.
- Context use (Khandelwal et al. 2018): validation perplexity when the model may only see the last k
  tokens before each target (k = 1, 2, 3, 4, 5, 10, …, all), every k scored on the same targets. The
  feedforward model's curve is flat from k = n − 1 on: it never reads further back.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from lmcore.corpus.builtin import agreement_pairs, builtin_text
from lmcore.corpus.dataset import CorpusSpec, split_lines
from lmcore.corpus.tokenize import EOS
from lmcore.corpus.vocab import Vocab
from lmcore.ngram import KneserNeyLM
from lmcore.nn.context_windows import output_nll_sums, stack_windows
from lmcore.nn.model import RNNLM
from lmcore.training.device import bf16_native

CONTEXT_LENGTHS = (1, 2, 3, 4, 5, 10, 20, 50, 100, 200)  # 3, 4: where an FFNN of n = 4, 5 flattens


@dataclass(frozen=True)
class ProbeItem:
    prefix: tuple[str, ...]   # the sentence up to (not including) the verb
    correct: str
    wrong: str
    distance: int | None      # words between subject and verb, when known


# The lecture's roses, with the subject "roses" at index 1.
LECTURE_ITEMS = tuple(ProbeItem(tuple(p.split()), "are", "is", d) for p, d in [
    ("the roses", 0), ("the roses in the vase", 3), ("the roses in the vase by the door", 6),
    ("the roses in the vase by the door to the kitchen", 9)])


def agreement_items(split: str = "valid") -> list[ProbeItem]:
    """Probe items from the built-in `agreement` corpus, for the lines of one split."""
    lines = builtin_text("agreement").splitlines()
    splits = split_lines("\n".join(lines), "agreement")
    start = {"train": 0, "valid": len(splits["train"]), "test": len(splits["train"]) + len(splits["valid"])}[split]
    pairs = agreement_pairs()[start:start + len(splits[split])]
    return [ProbeItem(tuple(lines[p.line].split()[:p.verb_index]), p.correct, p.wrong, p.distance) for p in pairs]


def parse_probe_tsv(text: str) -> list[ProbeItem]:
    """Lines of `prefix<TAB>correct<TAB>wrong[<TAB>distance]`; '#' starts a comment."""
    items = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.split("\t")
        if len(parts) not in (3, 4) or not all(p.strip() for p in parts[:3]):
            raise ValueError(f"probe line {n}: expected 'prefix<TAB>correct<TAB>wrong[<TAB>distance]'")
        distance = int(parts[3]) if len(parts) == 4 and parts[3].strip() else None
        items.append(ProbeItem(tuple(parts[0].lower().split()), parts[1].strip().lower(), parts[2].strip().lower(),
                               distance))
    return items


def usable(items: Sequence[ProbeItem], vocab: Vocab) -> list[ProbeItem]:
    """Items whose two verb forms are both in the vocabulary (else the comparison means nothing)."""
    return [it for it in items if it.correct in vocab.stoi and it.wrong in vocab.stoi]


def readable(items: Sequence[ProbeItem], vocab: Vocab) -> list[ProbeItem]:
    """Items whose every word, the prefix's and both verb forms, is in the vocabulary: none reads as <unk>."""
    return [it for it in usable(items, vocab) if all(w in vocab.stoi for w in it.prefix)]


def probe_applies(items: Sequence[ProbeItem], vocab: Vocab, min_share: float = 0.5) -> bool:
    """Whether a model with this vocabulary reads most probe sentences whole.

    A python-docs run knows "is" and "are" but not "roses" or "vase": its P(are) > P(is) after <unk>s
    measures nothing about agreement."""
    return bool(items) and len(readable(items, vocab)) >= min_share * len(items)


@torch.no_grad()
def lm_margins(model: RNNLM, vocab: Vocab, items: Sequence[ProbeItem], batch: int = 512,
               edits: dict | None = None) -> np.ndarray:
    """log P(correct) − log P(wrong) at the verb, each sentence read from <eos> with a fresh state; edits: the
    interventions' {layer: edit} (lmcore.inspect.interventions), step 0 the <eos>."""
    model.eval()
    device = model.encoder.weight.device
    margins = []
    for start in range(0, len(items), batch):
        chunk = items[start:start + batch]
        seqs = [vocab.encode([EOS, *it.prefix]) for it in chunk]
        length = max(len(s) for s in seqs)
        x = torch.zeros(length, len(seqs), dtype=torch.long, device=device)
        for j, s in enumerate(seqs):
            x[: len(s), j] = torch.as_tensor(s)  # right-padding: an RNN's earlier steps never see it
        out, _ = model.features(x, edits=edits) if edits else model.features(x)  # (T, B, H)
        last = torch.as_tensor([len(s) - 1 for s in seqs], device=device)
        logp = torch.log_softmax(model.decoder(out[last, torch.arange(len(seqs), device=device)]), dim=-1)
        good = torch.as_tensor([vocab.stoi[it.correct] for it in chunk], device=device)
        bad = torch.as_tensor([vocab.stoi[it.wrong] for it in chunk], device=device)
        margins.append((logp.gather(1, good[:, None]) - logp.gather(1, bad[:, None]))[:, 0].cpu().numpy())
    return np.concatenate(margins) if margins else np.zeros(0)


def ngram_margins(lm: KneserNeyLM, vocab: Vocab, items: Sequence[ProbeItem]) -> np.ndarray:
    out = []
    for it in items:
        context = vocab.encode([EOS, *it.prefix]).tolist()
        out.append(math.log(lm.prob(context, vocab.stoi[it.correct])) - math.log(lm.prob(context, vocab.stoi[it.wrong])))
    return np.asarray(out)


def accuracy_by_distance(items: Sequence[ProbeItem], margins: np.ndarray, name: str) -> pd.DataFrame:
    """One row per distance: how many items, and the fraction where the correct form is more probable."""
    df = pd.DataFrame({"distance": [it.distance for it in items], "correct": margins > 0})
    table = df.groupby("distance", dropna=False)["correct"].agg(["size", "mean"]).reset_index()
    table.columns = ["distance", "items", "accuracy"]
    table.insert(0, "model", name)
    return table


@torch.no_grad()
def context_perplexity(model: RNNLM, ids, lengths: Sequence[int] = CONTEXT_LENGTHS, max_targets: int = 20_000,
                       batch: int = 512, progress: Callable[[float, str], None] | None = None,
                       bf16: bool = False) -> pd.DataFrame:
    """Perplexity on the same targets when the model sees only the last k tokens, and all of them.

    Targets are positions t ≥ max(lengths) (so every k has its k tokens); "all" reads the whole
    stream from its start with the state carried, as in ordinary evaluation.

    One run from a zero state at position s, read for max(lengths) steps, has after k steps seen
    exactly the k tokens before s + k: it scores target s + k with context k for every k at once.
    So each start is run once (max(lengths) steps) instead of once per k (sum(lengths) steps).

    bf16: a recurrent model's stack and output products in bfloat16 where the device computes it natively
    (faster on such a CPU); the gates, cells and log-softmax stay float32, and the FFNN float32 throughout, whose
    flat curve beyond its window must stay exactly flat. PyTorch's LSTM and GRU on such a CPU take lmcore.nn.context_windows'
    C++ (the LSTM's perplexities within 0.03% of float32 on the demo runs), any other model PyTorch's autocast (within 0.13%).
    In float32 (bf16 off, or a CPU without it) PyTorch's LSTM and GRU on the CPU take the same C++ with float32 products,
    and every recurrent model's −log y is summed by the C++ from float32 logits (its exp a polynomial as accurate as
    float32's: the perplexities equal PyTorch's to rounding, not bit for bit).
    """
    model.eval()
    device = model.encoder.weight.device
    recurrent = recurrent_precision(bf16 and model.cfg.recurrent, device)
    # the products of lmcore.nn.context_windows' C++ forms (recurrent models; the FFNN keeps PyTorch's float32,
    # which keeps its curve exactly flat beyond its window)
    products = (torch.bfloat16 if bf16 and bf16_native(device) else torch.float32) if model.cfg.recurrent else None
    ids = np.asarray(ids)
    lengths = sorted(set(int(k) for k in lengths))
    if lengths[0] < 1:
        raise ValueError(f"context lengths must be at least 1, got {lengths[0]}")
    longest = lengths[-1]
    targets = np.arange(longest, min(len(ids), longest + max_targets))
    if targets.size == 0:
        raise ValueError(f"context use needs more than {longest} tokens; this text has {len(ids)}")
    last = int(targets[-1])
    nll = dict.fromkeys(lengths, 0.0)
    starts = np.arange(0, last)  # every s with s + k a target for some k
    for i in range(0, len(starts), batch):
        s = starts[i:i + batch]
        span = min(longest, last - int(s[0]))  # the last starts need fewer steps
        read = [k for k in lengths if k <= span]
        with recurrent():
            tops = _windows_top(model, ids, s, span, [k - 1 for k in read], products)  # after k: predicts s + k
        h_rows, scored = [], []  # every k's rows through the output layer at once: one product, one weight cast
        for k, top in zip(read, tops):
            keep = np.flatnonzero((s + k >= longest) & (s + k <= last))
            if keep.size:
                h_rows.append(top[torch.as_tensor(keep, device=device)])
                scored.append((k, torch.as_tensor(ids[s[keep] + k], device=device)))
        if h_rows:  # (the last starts may have too few steps left for any k)
            sums = _nll_sums(model, torch.cat(h_rows), [y for _, y in scored], products, recurrent)
            for (k, _), total in zip(scored, sums):
                nll[k] += total
        if progress:
            progress(min(i + batch, len(starts)) / (len(starts) + 1), f"contexts 1 … {longest}")
    rows = [{"context": str(k), "tokens": k, "ppl": math.exp(nll[k] / len(targets))} for k in lengths]
    with recurrent():  # the whole stream as one window from its start, read at every target; PyTorch's stack
        out = _windows_top(model, ids, np.zeros(1, dtype=int), last, (targets - 1).tolist(), None)  # (the C++
        # steps one window at ~150 µs a step, the fused module at ~30)
    y = torch.as_tensor(ids[targets], device=device)
    total, = _nll_sums(model, out[:, 0], [y], products, recurrent)
    rows.append({"context": "all", "tokens": len(ids), "ppl": math.exp(total / len(targets))})
    if progress:
        progress(1.0, "done")
    return pd.DataFrame(rows)


def _nll_sums(model: RNNLM, h: torch.Tensor, targets: list[torch.Tensor], products: torch.dtype | None,
              precision) -> list[float]:
    """Σ −log y[target] for each group of h's rows (len(y) rows each, in order): one product for all of them,
    in `products` through the C++ where it applies, else the model's output layer and a float32 log-softmax."""
    sums = output_nll_sums(model.decoder, h, targets, products) if products is not None else None
    if sums is not None:
        return sums
    with precision():  # the products in bf16 too where asked for; the log-softmax float32
        logits = model.decoder(h)
    return [F.cross_entropy(z.float(), y, reduction="sum").item()
            for z, y in zip(logits.split([len(y) for y in targets]), targets)]


def _windows_top(model: RNNLM, ids: np.ndarray, starts: np.ndarray, span: int, steps: list[int],
                 products: torch.dtype | None) -> torch.Tensor:
    """The top layer's h after each of `steps` (len(steps), b, H) of the windows ids[s : s + span] of consecutive
    starts s, each from a zero state.

    Window j's t-th token is token starts[0] + j + t: the windows are b + span − 1 tokens, viewed with overlapping
    strides rather than b × span looked up one by one. Past the text's end the last token stands in (causal: those
    steps are never read). products: the dtype of the products of PyTorch's LSTM and GRU through
    lmcore.nn.context_windows' C++ where it applies (on the CPU: any other device, or None, keeps PyTorch's module)."""
    device = model.encoder.weight.device
    positions = np.minimum(int(starts[0]) + np.arange(len(starts) + span - 1), len(ids) - 1)
    tokens = torch.as_tensor(ids[positions], device=device)
    if not model.cfg.recurrent:  # the FFNN reads ids through its own windows
        return model.features(tokens.unfold(0, span, 1).t())[0][steps]
    top = stack_windows(model, tokens, span, steps, products) if products is not None else None
    if top is not None:
        return top
    emb = model.encoder(tokens)  # (b + span − 1, E), eval: no dropout
    if torch.is_autocast_enabled(device.type):  # cast the distinct rows once, not every window's copy of them
        emb = emb.to(torch.get_autocast_dtype(device.type))
    windows = emb.as_strided((span, len(starts), emb.size(1)), (emb.size(1), emb.size(1), 1))
    return model.stack(windows.contiguous())[0][steps]  # kept in its precision: only these rows are read


def recurrent_precision(bf16: bool, device: torch.device):
    """A context for the recurrent stack's forward: bfloat16 autocast when asked for and native here, else none."""
    if bf16 and bf16_native(device):
        return lambda: torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext


def ngram_context_perplexity(lm: KneserNeyLM, ids, lengths: Sequence[int] = CONTEXT_LENGTHS,
                             max_targets: int = 20_000) -> float:
    """The n-gram baseline's perplexity on the same targets (its window is order − 1 whatever k is)."""
    ids = np.asarray(ids)
    first = max(lengths)
    targets = np.arange(first, min(len(ids), first + max_targets))
    logp = lm.log_probs(ids[first - lm.order + 1:targets[-1] + 1])[-len(targets):]
    return float(np.exp(-logp.mean()))


def corpus_is_agreement(spec: CorpusSpec) -> bool:
    return spec.source == "builtin:agreement" and spec.tokenizer in ("word", "words")

"""Trace: every quantity a view draws, for one token sequence, in one call.

The recurrent stack is run through the hand-written cells (whatever backend trained the model: the
cells read the fused module's own tensors; the LSTM's and GRU's equations in their C++ loops where those apply),
so every gate is visible by name:
    LSTM: i, f, g, o and the cell state c;   GRU: r, z, n;   every arch: the hidden state h.
Every LSTM variant has the same names: a gate the variant removes (NIG, NFG, NOG) is the constant 1,
permanently open, and `gate_notes` says so; CIFG's f is 1 − i.
The feedforward model (FFNN) has no cells and no gates: its one layer is h_t = tanh(V x_t + b1) on the window.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from lmcore.corpus.vocab import Vocab
from lmcore.nn.architectures import GATE_LABELS, LSTM_VARIANTS, ModelConfig
from lmcore.nn.model import RNNLM


@dataclass
class Trace:
    tokens: list[str]                      # the T input tokens
    ids: np.ndarray                        # (T,)
    layers: list[dict[str, np.ndarray]]    # per layer: name -> (T, H); always "h", plus gates and "c"
    next_prob: np.ndarray                  # (T-1,) P(tokens[t+1] | tokens[:t+1])
    top_ids: np.ndarray                    # (T, k) the k most probable next tokens after position t
    top_probs: np.ndarray                  # (T, k)
    prob_mass: np.ndarray = field(repr=False)  # (T,) sum of the whole next-token distribution (≈ 1)
    gate_notes: dict[str, str] = field(default_factory=dict)  # gates that are not learned: see gate_notes()

    @property
    def surprisal(self) -> np.ndarray:
        """-log2 P(next token), bits, (T-1,)."""
        return -np.log2(np.maximum(self.next_prob, 1e-300))

    def quantity(self, name: str, layer: int = 0) -> np.ndarray:
        return self.layers[layer][name]

    def names(self, layer: int = 0) -> list[str]:
        return list(self.layers[layer])


@torch.no_grad()
def trace(model: RNNLM, ids, vocab: Vocab | None = None, top_k: int = 10) -> Trace:
    """Run ids (a sequence of token ids) through the model from a zero state and record everything."""
    model.eval()
    device = model.encoder.weight.device
    x = torch.as_tensor(np.asarray(ids, dtype=np.int64), device=device).view(-1, 1)  # (T, 1)
    if model.cfg.recurrent:
        emb = model.encoder(x)  # (T, 1, E)
        out, _, per_layer = model.run_cells(emb, model.init_hidden(1), keep_gates=True)
    else:  # the FFNN: what the output layer reads ([h; x] with direct connections), h its first H columns
        out, _ = model.features(x)  # (T, 1, ·)
        per_layer = [{"h": out[..., :model.cfg.hidden]}]
    probs = torch.softmax(model.decoder(out[:, 0]).float(), dim=-1)  # (T, vocab)
    k = min(top_k, probs.size(1))
    top = torch.topk(probs, k, dim=-1)
    next_prob = probs[:-1].gather(1, x[1:]).squeeze(1)
    layers = [{name: value[:, 0].float().cpu().numpy() for name, value in layer.items()} for layer in per_layer]
    tokens = vocab.decode(x[:, 0].tolist()) if vocab is not None else [str(i) for i in x[:, 0].tolist()]
    return Trace(tokens=tokens, ids=x[:, 0].cpu().numpy(), layers=layers, next_prob=next_prob.cpu().numpy(),
                 top_ids=top.indices.cpu().numpy(), top_probs=top.values.cpu().numpy(),
                 prob_mass=probs.sum(dim=-1).cpu().numpy(), gate_notes=gate_notes(model.cfg))


def gate_notes(cfg: ModelConfig) -> dict[str, str]:
    """What a view must say about gates that are not learned, by gate:
    {"i": "no input gate: drawn as permanently open"} for NIG; {"f": "forget gate f = 1 − i (coupled)"} for CIFG."""
    notes = {g: f"no {GATE_LABELS[g][:-2]}: drawn as permanently open" for g in cfg.constant_gates}
    if cfg.arch == "lstm" and LSTM_VARIANTS[cfg.variant].coupled:
        notes["f"] = "forget gate f = 1 − i (coupled)"
    return notes


def gate_means(tr: Trace) -> list[dict[str, list[float]]]:
    """Per layer, each gate's mean over units at every step (what `inspect trace --json` prints)."""
    return [{name: values.mean(axis=1).round(6).tolist() for name, values in layer.items() if name != "h"}
            for layer in tr.layers]

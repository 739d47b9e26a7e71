"""The recurrent language model: embedding x, recurrent stack h, output y = softmax(W h + b2).

Parameters always live in a PyTorch fused module (nn.RNN / nn.LSTM / nn.GRU), which then also
serves as the fast forward where it supports the configuration. Configurations it cannot run
(a sigmoid Elman RNN, the lecture's default) and every trace go through the hand-written cells in
`cells.py`, which read the very same tensors.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .cells import make_cell, run_layer

ARCHS = {
    "elman": "Elman RNN, h = f(V x + U h + b1); f = σ (the lecture), tanh or relu",
    "irnn": "ReLU RNN with U initialised to the identity, zero biases (Le et al. 2015)",
    "lstm": "Long short-term memory (Hochreiter & Schmidhuber 1997; PyTorch gates i, f, g, o)",
    "gru": "Gated recurrent unit (Cho et al. 2014; PyTorch convention)",
}
ACTIVATION_NAMES = ("sigmoid", "tanh", "relu")
BACKENDS = ("auto", "fused", "cells")


@dataclass
class ModelConfig:
    arch: str = "lstm"
    activation: str = "sigmoid"  # Elman only; IRNN is always relu
    bias: bool = True            # False drops b1 and b2, as in the coursework
    emb: int = 200
    hidden: int = 200
    layers: int = 2
    dropout: float = 0.2         # on embeddings, between layers and before W
    tied: bool = False           # W shares the embedding matrix (needs emb == hidden)
    backend: str = "auto"        # auto: fused where PyTorch has it, cells otherwise
    vocab_size: int = 0

    def validate(self) -> None:
        if self.arch not in ARCHS:
            raise ValueError(f"unknown architecture {self.arch!r}; choose one of {', '.join(ARCHS)}")
        if self.activation not in ACTIVATION_NAMES:
            raise ValueError(f"unknown activation {self.activation!r}; choose one of {', '.join(ACTIVATION_NAMES)}")
        if self.backend not in BACKENDS:
            raise ValueError(f"unknown backend {self.backend!r}; choose one of {', '.join(BACKENDS)}")
        for name in ("emb", "hidden", "layers", "vocab_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError("dropout must be in [0, 1)")
        if self.tied and self.emb != self.hidden:
            raise ValueError(f"tied weights need emb == hidden (got {self.emb} and {self.hidden})")
        if self.backend == "fused" and not self.fusable:
            raise ValueError("PyTorch has no fused module for a sigmoid Elman RNN; use backend cells or auto")

    @property
    def fusable(self) -> bool:
        return not (self.arch == "elman" and self.activation == "sigmoid")

    @property
    def uses_fused(self) -> bool:
        return self.backend != "cells" and self.fusable

    @property
    def cell_activation(self) -> str:
        return "relu" if self.arch == "irnn" else self.activation


def _parameter_module(cfg: ModelConfig) -> nn.RNNBase:
    dropout = cfg.dropout if cfg.layers > 1 else 0.0
    common = dict(input_size=cfg.emb, hidden_size=cfg.hidden, num_layers=cfg.layers, bias=cfg.bias, dropout=dropout)
    if cfg.arch == "lstm":
        return nn.LSTM(**common)
    if cfg.arch == "gru":
        return nn.GRU(**common)
    # A sigmoid Elman keeps its weights in an nn.RNN too (never called): one layout for every arch.
    return nn.RNN(nonlinearity="relu" if cfg.cell_activation == "relu" else "tanh", **common)


class RNNLM(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.encoder = nn.Embedding(cfg.vocab_size, cfg.emb)
        self.rnn = _parameter_module(cfg)
        self.decoder = nn.Linear(cfg.hidden, cfg.vocab_size, bias=cfg.bias)
        self.drop = nn.Dropout(cfg.dropout)
        self.cell = make_cell(cfg.arch, cfg.activation)
        self._init_weights()
        if cfg.tied:
            self.decoder.weight = self.encoder.weight

    def _init_weights(self) -> None:
        nn.init.uniform_(self.encoder.weight, -0.1, 0.1)
        nn.init.uniform_(self.decoder.weight, -0.1, 0.1)
        if self.decoder.bias is not None:
            nn.init.zeros_(self.decoder.bias)
        if self.cfg.arch == "irnn":
            # Le et al. 2015: U = I, biases 0, input weights small Gaussian.
            for layer in range(self.cfg.layers):
                nn.init.eye_(self.layer_weights(layer)[1])
                nn.init.normal_(self.layer_weights(layer)[0], std=0.001 ** 0.5)
                for b in self.layer_weights(layer)[2:]:
                    if b is not None:
                        nn.init.zeros_(b)

    def layer_weights(self, layer: int) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
        """(V, U, b_ih, b_hh) of one layer in PyTorch's layout: V = weight_ih, U = weight_hh."""
        get = lambda name: getattr(self.rnn, f"{name}_l{layer}", None)
        return get("weight_ih"), get("weight_hh"), get("bias_ih"), get("bias_hh")

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())  # tied weights are counted once

    def init_hidden(self, batch: int, device=None):
        h = torch.zeros(self.cfg.layers, batch, self.cfg.hidden, device=device or self.encoder.weight.device)
        return (h, torch.zeros_like(h)) if self.cfg.arch == "lstm" else h

    def forward(self, x: Tensor, hidden=None, targets: Tensor | None = None, use_cells: bool = False):
        """x: (T, B) token ids. Returns (logits (T, B, vocab), loss or None, final hidden)."""
        out, hidden = self.features(x, hidden, use_cells)
        logits = self.decoder(self.drop(out))  # (T, B, vocab)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1))
        return logits, loss, hidden

    def features(self, x: Tensor, hidden=None, use_cells: bool = False):
        """Embedding and recurrent stack without the output layer: (h of the top layer (T, B, H), hidden)."""
        if hidden is None:
            hidden = self.init_hidden(x.size(1))
        emb = self.drop(self.encoder(x))  # (T, B, E)
        if self.cfg.uses_fused and not use_cells:
            return self.rnn(emb, hidden)  # (T, B, H)
        out, hidden, _ = self.run_cells(emb, hidden)
        return out, hidden

    def run_cells(self, emb: Tensor, hidden, keep_gates: bool = False, state_hooks: dict | None = None):
        """The recurrent stack through the hand-written cells; returns (out, hidden, per-layer traces).

        state_hooks: {layer: hook(t, state) -> state}, passed to that layer's `run_layer`.
        """
        lstm = self.cfg.arch == "lstm"
        layer_input, finals, traces = emb, [], []
        for layer in range(self.cfg.layers):
            w_ih, w_hh, b_ih, b_hh = self.layer_weights(layer)
            state = (hidden[0][layer], hidden[1][layer]) if lstm else hidden[layer]
            xp = F.linear(layer_input, w_ih, b_ih)  # (T, B, chunks·H): V x + b for every step at once
            hook = (state_hooks or {}).get(layer)
            out, state, gates = run_layer(self.cell, xp, state, w_hh, b_hh, keep_gates, hook)
            gates["h"] = out
            traces.append(gates)
            finals.append(state)
            layer_input = out
            if layer < self.cfg.layers - 1 and self.training:
                layer_input = F.dropout(out, self.rnn.dropout, training=True)
        if lstm:
            hidden = (torch.stack([s[0] for s in finals]), torch.stack([s[1] for s in finals]))
        else:
            hidden = torch.stack(finals)
        return out, hidden, traces


def detach_hidden(hidden):
    """Cut the graph at a chunk boundary: truncated BPTT carries the value, not the history."""
    if isinstance(hidden, tuple):
        return tuple(h.detach() for h in hidden)
    return hidden.detach()


"""The recurrent language model: embedding x, recurrent stack h, output y = softmax(W h + b2).

Parameters V, U, b live in a PyTorch fused module (nn.RNN / nn.LSTM / nn.GRU), which then also
serves as the fast forward where it supports the configuration. Configurations it cannot run
(a sigmoid Elman RNN, the lecture's default; Cho's GRU; the LSTM variants other than PyTorch's)
and every trace go through the hand-written cells in `cells.py`, which read the very same tensors.
Two exceptions, both LSTM variants (see cells.py): one that drops a gate keeps V, U, b under the
same names in `StackedWeights`, without the dropped gate's rows; and the parameters a variant adds
(peepholes p_i, p_f, p_o; FGR's gate-to-gate matrix R) live in `RNNLM.extra`, named after the maths.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lmcore.nn.architectures import LSTM_VARIANTS, ModelConfig
from lmcore.nn.cells import make_cell
from lmcore.nn.dropout import Dropout, dropout
from lmcore.nn.feedforward import FeedforwardLM
from lmcore.nn.output_loss import init_softmax_weights, make_output, output_layer
from lmcore.nn.unroll import compile_wanted, compiled_step, run_layer


# nn.RNNBase.mode → the op its forward calls (one layer at a time in RNNLM.fused_by_layer)
_FUSED_OPS = {"LSTM": torch.lstm, "GRU": torch.gru, "RNN_TANH": torch.rnn_tanh, "RNN_RELU": torch.rnn_relu}


class StackedWeights(nn.Module):
    """V, U, b of every layer under nn.LSTM's names (weight_ih_l0, …), for an LSTM variant that drops a
    gate: only the row blocks of the gates it has (cells.LSTMVariant.blocks), initialised as nn.LSTM is."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int, bias: bool, dropout: float, blocks: int):
        super().__init__()
        self.hidden_size, self.num_layers, self.dropout = hidden_size, num_layers, dropout
        for layer in range(num_layers):
            inputs = input_size if layer == 0 else hidden_size
            shapes = {"weight_ih": (blocks * hidden_size, inputs), "weight_hh": (blocks * hidden_size, hidden_size)}
            if bias:
                shapes.update(bias_ih=(blocks * hidden_size,), bias_hh=(blocks * hidden_size,))
            for name, shape in shapes.items():
                self.register_parameter(f"{name}_l{layer}", nn.Parameter(torch.empty(shape)))
        k = hidden_size ** -0.5
        for p in self.parameters():
            nn.init.uniform_(p, -k, k)


def _parameter_module(cfg: ModelConfig) -> nn.Module:
    dropout = cfg.dropout if cfg.layers > 1 else 0.0
    common = dict(input_size=cfg.emb, hidden_size=cfg.hidden, num_layers=cfg.layers, bias=cfg.bias, dropout=dropout)
    if cfg.arch == "lstm":
        blocks = len(LSTM_VARIANTS[cfg.variant].blocks)
        return nn.LSTM(**common) if blocks == 4 else StackedWeights(**common, blocks=blocks)
    if cfg.arch == "gru":
        return nn.GRU(**common)
    # A sigmoid Elman keeps its weights in an nn.RNN too (never called): one layout for every arch.
    return nn.RNN(nonlinearity="relu" if cfg.cell_activation == "relu" else "tanh", **common)


def _extra_parameters(cfg: ModelConfig) -> dict[str, nn.Parameter]:
    """The parameters an LSTM variant adds to V, U, b, per layer k, named after the maths:
    p_i_l{k}, p_f_l{k}, p_o_l{k}: peephole (diagonal) weights, (H,); R_l{k}: FGR's gate-to-gate
    matrix, (3H, 3H), rows the gates i, f, o at t and columns i, f, o at t−1. Initialised as nn.LSTM
    initialises its weights: uniform in ±1/√H."""
    if cfg.arch != "lstm":
        return {}
    v, H, k = LSTM_VARIANTS[cfg.variant], cfg.hidden, cfg.hidden ** -0.5
    shapes = {}
    for layer in range(cfg.layers):
        shapes.update({f"p_{g}_l{layer}": (H,) for g in v.peephole_gates})
        if v.gate_recurrence:
            shapes[f"R_l{layer}"] = (3 * H, 3 * H)
    return {name: nn.Parameter(torch.empty(shape).uniform_(-k, k)) for name, shape in shapes.items()}


class RNNLM(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.encoder = nn.Embedding(cfg.vocab_size, cfg.emb)
        self.rnn = _parameter_module(cfg)
        self.extra = nn.ParameterDict(_extra_parameters(cfg))  # empty unless an LSTM variant adds parameters
        self.decoder = make_output(cfg, cfg.hidden)  # W, b2 (or an adaptive softmax)
        self.drop = Dropout(cfg.dropout)
        self.cell = make_cell(cfg.arch, cfg.activation, cfg.variant, cfg.gru_convention)
        self.compile = "off"  # torch.compile of the cells' step: auto | on | off (a run setting, set by train)
        self.native_training = False  # train sets it (training.device.native_pays): the cells' C++ loop in training
        self.native_loss = False  # train sets it (training.device.native_loss_pays): the C++ softmax in training
        self._init_weights()
        if cfg.tied:
            self.decoder.weight = self.encoder.weight

    def _init_weights(self) -> None:
        nn.init.uniform_(self.encoder.weight, -0.1, 0.1)
        init_softmax_weights(self.decoder)
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

    def layer_extras(self, layer: int) -> dict[str, Tensor]:
        """The variant's own parameters of one layer, by symbol: {"p_i": …, "p_f": …, "p_o": …, "R": …}."""
        suffix = f"_l{layer}"
        return {name[:-len(suffix)]: p for name, p in self.extra.items() if name.endswith(suffix)}

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())  # tied weights are counted once

    def init_hidden(self, batch: int, device=None):
        """h, or (h, c) for the LSTM, or (h, c, a) for FGR (a: its gates i, f, o at the step before, (L, B, 3H))."""
        h = torch.zeros(self.cfg.layers, batch, self.cfg.hidden, device=device or self.encoder.weight.device)
        if self.cfg.arch != "lstm":
            return h
        if LSTM_VARIANTS[self.cfg.variant].gate_recurrence:
            return h, torch.zeros_like(h), h.new_zeros(self.cfg.layers, batch, 3 * self.cfg.hidden)
        return h, torch.zeros_like(h)

    def forward(self, x: Tensor, hidden=None, targets: Tensor | None = None, use_cells: bool = False,
                edits: dict | None = None, need_logits: bool = True):
        """x: (T, B) token ids. Returns (logits (T, B, vocab), loss or None, final hidden). edits: see run_cells.
        need_logits=False (training, evaluation): the loss alone, the logits made a chunk at a time (None)."""
        out, hidden = self.features(x, hidden, use_cells, edits)
        return (*output_layer(self.decoder, self.drop(out), targets, need_logits, self.training and self.native_loss),
                hidden)

    def features(self, x: Tensor, hidden=None, use_cells: bool = False, edits: dict | None = None):
        """Embedding and recurrent stack without the output layer: (h of the top layer (T, B, H), hidden).
        edits (interventions, see run_cells) run the hand-written cells."""
        return self.stack(self.drop(self.encoder(x)), hidden, use_cells, edits)

    def stack(self, emb: Tensor, hidden=None, use_cells: bool = False, edits: dict | None = None):
        """The recurrent stack over embeddings (T, B, E): (h of the top layer (T, B, H), hidden)."""
        if hidden is None:
            hidden = self.init_hidden(emb.size(1))
        if self.cfg.uses_fused and not use_cells and not edits and not (self.training and self.native_training):
            if self.training and self.rnn.dropout and emb.device.type == "cpu":
                return self.fused_by_layer(emb, hidden)
            return self.rnn(emb, hidden)  # (T, B, H)
        out, hidden, _ = self.run_cells(emb, hidden, edits=edits)
        return out, hidden

    def fused_by_layer(self, emb: Tensor, hidden):
        """The fused module's op one layer at a time, with lmcore's dropout between layers: the same weights and
        computation as the fused module, only the masks between layers drawn by lmcore (PyTorch's draw one number
        per element on the CPU: see dropout.py)."""
        op = _FUSED_OPS[self.rnn.mode]
        tupled = isinstance(hidden, tuple)
        layer_input, finals = emb, []
        for layer in range(self.cfg.layers):
            weights = [w for w in self.layer_weights(layer) if w is not None]
            state = tuple(s[layer:layer + 1] for s in hidden) if tupled else hidden[layer:layer + 1]
            out, *final = op(layer_input, state, weights, self.cfg.bias, 1, 0.0, True, False, False)
            finals.append(final)
            layer_input = dropout(out, self.rnn.dropout, True) if layer < self.cfg.layers - 1 else out
        final = [torch.cat(parts) for parts in zip(*finals)]
        return out, tuple(final) if tupled else final[0]

    def run_cells(self, emb: Tensor, hidden, keep_gates: bool = False, state_hooks: dict | None = None,
                  edits: dict | None = None):
        """The recurrent stack through the hand-written cells; returns (out, hidden, per-layer traces).

        state_hooks: {layer: hook(t, state) -> state}, passed to that layer's `run_layer`.
        edits: {layer: edit(t, name, value) -> value}, that layer's interventions (lmcore.inspect.interventions).
        """
        tupled = isinstance(hidden, tuple)  # LSTM: (h, c) or (h, c, a)
        layer_input, finals, traces = emb, [], []
        for layer in range(self.cfg.layers):
            w_ih, w_hh, b_ih, b_hh = self.layer_weights(layer)
            state = tuple(s[layer] for s in hidden) if tupled else hidden[layer]
            xp = F.linear(layer_input, w_ih, b_ih)  # (T, B, chunks·H): V x + b for every step at once
            hook = (state_hooks or {}).get(layer)
            step = compiled_step(self.cell) if compile_wanted(self.compile, xp.device, self.cell) else None
            out, state, gates = run_layer(self.cell, xp, state, w_hh, b_hh, keep_gates, hook, self.layer_extras(layer),
                                          step, (edits or {}).get(layer))
            gates["h"] = out
            traces.append(gates)
            finals.append(state)
            layer_input = out
            if layer < self.cfg.layers - 1 and self.training:
                layer_input = dropout(out, self.rnn.dropout, training=True)
        if tupled:
            hidden = tuple(torch.stack(parts) for parts in zip(*finals))
        else:
            hidden = torch.stack(finals)
        return out, hidden, traces


def detach_hidden(hidden):
    """Cut the graph at a chunk boundary: truncated BPTT carries the value, not the history."""
    if isinstance(hidden, tuple):
        return tuple(h.detach() for h in hidden)
    return hidden.detach()



def build_model(cfg: ModelConfig) -> nn.Module:
    """The one way a model is made from its config: the recurrent LM, or the feedforward one (same interface)."""
    if cfg.arch == "ffnn":
        return FeedforwardLM(cfg)
    return RNNLM(cfg)

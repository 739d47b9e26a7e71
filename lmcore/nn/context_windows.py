"""The context-use measure's two costs through C++ (lmcore/nn/native/context_use.cpp), where it applies.

The measure runs a model from a zero state over every start of a text, max(k) steps each, and scores the rows it
reads. For PyTorch's LSTM and GRU on the CPU both halves have a cheaper exact form: the first layer's V x + b made once per
token instead of once per window and step (products in bfloat16 where the CPU computes it natively, else float32),
and −log softmax(z)[y] summed straight from bfloat16 (or float32) logits (the product without b2, which the C++
adds). Each function returns None where its C++ does not apply, and the caller keeps PyTorch's way.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from lmcore.nn import native
from lmcore.nn.cells import GRUCell, LSTMCell
from lmcore.nn.model import RNNLM


def _ops(device: torch.device):
    return native.context_use() if device.type == "cpu" else None


def stack_windows(model: RNNLM, tokens: Tensor, span: int, steps: Sequence[int],
                  dtype: torch.dtype = torch.bfloat16) -> Tensor | None:
    """The top layer's h after each of `steps` of the windows tokens[j : j + span] (lstm_windows, gru_windows), or
    None where neither applies."""
    top = lstm_windows(model, tokens, span, steps, dtype)
    return top if top is not None else gru_windows(model, tokens, span, steps, dtype)


def lstm_windows(model: RNNLM, tokens: Tensor, span: int, steps: Sequence[int],
                 dtype: torch.dtype = torch.bfloat16) -> Tensor | None:
    """The top layer's h after each of `steps` (ascending, 0-based) of the windows tokens[j : j + span],
    j = 0 … len(tokens) − span, each read from a zero state: (len(steps), windows, H) float32. The products in
    `dtype` (bfloat16 where the CPU computes it natively, else float32), the gates and cells float32. None unless
    the model is PyTorch's LSTM (fused or on the cells)."""
    ops = _ops(tokens.device)
    cell = getattr(model, "cell", None)  # the FFNN has none
    if ops is None or not (isinstance(cell, LSTMCell) and cell.pytorch):
        return None
    weights, biases = [], []
    with torch.no_grad(), torch.autocast(tokens.device.type, enabled=False):  # g0 float32 whatever the caller's
        for layer in range(model.cfg.layers):
            w_ih, w_hh, b_ih, b_hh = model.layer_weights(layer)
            bias = _float_bias(w_hh, b_ih, b_hh)
            if layer == 0:  # V x + b once per token
                g0 = _per_token_inputs(model, tokens, w_ih, bias)
                weights.append(w_hh.t().to(dtype).contiguous())
            else:  # [h_below; h_own] · [V; U]ᵀ
                weights.append(torch.cat([w_ih, w_hh], 1).t().to(dtype).contiguous())
                biases.append(bias.contiguous())
        return ops.lstm_windows(g0, weights, biases, span, list(steps))


def gru_windows(model: RNNLM, tokens: Tensor, span: int, steps: Sequence[int],
                dtype: torch.dtype = torch.bfloat16) -> Tensor | None:
    """As lstm_windows, for PyTorch's GRU (fused or on the cells; not Cho's convention): the first layer's V x + b_ih
    once per token, U h (and a higher layer's V x) per step in `dtype`, the gates float32."""
    ops = _ops(tokens.device)
    cell = getattr(model, "cell", None)
    if ops is None or not (isinstance(cell, GRUCell) and not cell.cho):
        return None
    u, v, b_hh, b_ih = [], [], [], []
    with torch.no_grad(), torch.autocast(tokens.device.type, enabled=False):  # g0 float32 whatever the caller's
        for layer in range(model.cfg.layers):
            w_ih, w_hh, bias_ih, bias_hh = model.layer_weights(layer)
            u.append(w_hh.t().to(dtype).contiguous())
            b_hh.append(_float_bias(w_hh, bias_hh))
            if layer == 0:  # V x + b_ih once per token
                g0 = _per_token_inputs(model, tokens, w_ih, _float_bias(w_hh, bias_ih))
            else:
                v.append(w_ih.t().to(dtype).contiguous())
                b_ih.append(_float_bias(w_hh, bias_ih))
        return ops.gru_windows(g0, u, v, b_hh, b_ih, span, list(steps))


def _float_bias(w_hh: Tensor, *biases: Tensor | None) -> Tensor:
    """The sum of the given biases in float32 (zeros where there are none), one per row of w_hh."""
    return sum((b.float() for b in biases if b is not None), w_hh.new_zeros(w_hh.size(0), dtype=torch.float32))


def _per_token_inputs(model: RNNLM, tokens: Tensor, w_ih: Tensor, bias: Tensor) -> Tensor:
    """The first layer's V x + bias for each token once (b + span − 1 rows), float32: window j's step t reads row j + t."""
    return torch.addmm(bias, model.encoder(tokens).float(), w_ih.float().t())


def output_nll_sums(decoder: nn.Module, h: Tensor, targets: Sequence[Tensor],
                    dtype: torch.dtype = torch.bfloat16) -> list[float] | None:
    """Σ −log y[target] for each group of rows of h (N, H), the groups len(y) rows each in order, with
    y = softmax(W h + b2): the product in `dtype` (bfloat16 where native, else float32), b2 and the log-softmax in
    float32, no log-softmax written.
    None unless the output layer is the full softmax's (an nn.Linear) and the C++ runs here."""
    ops = _ops(h.device)
    if ops is None or type(decoder) is not nn.Linear:
        return None
    with torch.no_grad(), torch.autocast(h.device.type, enabled=False):
        w_t = decoder.weight.to(dtype).t()
        b2 = None if decoder.bias is None else decoder.bias.float()
        rows = h.to(dtype).split([len(y) for y in targets])
        # 512 rows' logits at a time (10 MB at 10k words), read by the sum while still in the cache
        return [sum(ops.nll_sum(torch.mm(part, w_t), y_part, b2) for part, y_part in zip(group.split(512), y.split(512)))
                for group, y in zip(rows, targets)]

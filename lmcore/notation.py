"""The lecture's notation, in one place: its equations in LaTeX and the PyTorch tensor behind each symbol.

x: input (the embedding of the current token), h: hidden state, y: output distribution,
V: input→hidden (weight_ih), U: hidden→hidden (weight_hh), W: hidden→output (decoder.weight),
b1 = b_ih + b_hh, b2 = decoder.bias, σ: the logistic sigmoid.
"""
from __future__ import annotations

from .model import ModelConfig

OUTPUT = r"y_t = \mathrm{softmax}(W h_t + b_2), \qquad P(x_{t+1} \mid x_1, \dots, x_t) = y_t"
ACTIVATION_TEX = {"sigmoid": r"\sigma", "tanh": r"\tanh", "relu": r"\mathrm{relu}"}


def equations(cfg: ModelConfig) -> list[str]:
    """The recurrence and output of this configuration, in the lecture's symbols (PyTorch's gate order)."""
    b = cfg.bias
    if cfg.arch in ("elman", "irnn"):
        f = ACTIVATION_TEX[cfg.cell_activation]
        rec = rf"h_t = {f}(V x_t + U h_{{t-1}}{' + b_1' if b else ''})"
        eqs = [rec + (r"\quad (U_0 = I,\ b_1 = 0)" if cfg.arch == "irnn" else "")]
    elif cfg.arch == "lstm":
        bias = lambda g: f" + b_{g}" if b else ""
        eqs = [rf"i_t = \sigma(V_i x_t + U_i h_{{t-1}}{bias('i')}), \quad f_t = \sigma(V_f x_t + U_f h_{{t-1}}{bias('f')})",
               rf"g_t = \tanh(V_g x_t + U_g h_{{t-1}}{bias('g')}), \quad o_t = \sigma(V_o x_t + U_o h_{{t-1}}{bias('o')})",
               r"c_t = f_t \odot c_{t-1} + i_t \odot g_t, \qquad h_t = o_t \odot \tanh(c_t)"]
    else:
        bias = lambda g: f" + b_{g}" if b else ""
        eqs = [rf"r_t = \sigma(V_r x_t + U_r h_{{t-1}}{bias('r')}), \quad z_t = \sigma(V_z x_t + U_z h_{{t-1}}{bias('z')})",
               rf"n_t = \tanh(V_n x_t{bias('{in}')} + r_t \odot (U_n h_{{t-1}}{bias('{hn}')}))",
               r"h_t = (1 - z_t) \odot n_t + z_t \odot h_{t-1}"]
    return eqs + [OUTPUT if b else OUTPUT.replace(" + b_2", "")]


def parameter_map(cfg: ModelConfig) -> list[dict]:
    """Rows of (symbol, PyTorch parameter, shape) for the first layer and the output layer."""
    blocks = {"elman": "", "irnn": "", "lstm": " (i, f, g, o stacked)", "gru": " (r, z, n stacked)"}[cfg.arch]
    k = {"elman": 1, "irnn": 1, "lstm": 4, "gru": 3}[cfg.arch]
    rows = [{"symbol": "x_t", "PyTorch": "encoder.weight[token]", "shape": f"({cfg.emb},)", "meaning": "input: the token's embedding"},
            {"symbol": "V", "PyTorch": "rnn.weight_ih_l0" + blocks, "shape": f"({k * cfg.hidden}, {cfg.emb})", "meaning": "input → hidden"},
            {"symbol": "U", "PyTorch": "rnn.weight_hh_l0" + blocks, "shape": f"({k * cfg.hidden}, {cfg.hidden})", "meaning": "hidden → hidden (recurrent)"},
            {"symbol": "W", "PyTorch": "decoder.weight" + (" (= encoder.weight, tied)" if cfg.tied else ""),
             "shape": f"({cfg.vocab_size}, {cfg.hidden})", "meaning": "hidden → output"}]
    if cfg.bias:
        rows.insert(3, {"symbol": "b_1", "PyTorch": "rnn.bias_ih_l0 + rnn.bias_hh_l0", "shape": f"({k * cfg.hidden},)",
                        "meaning": "hidden bias (PyTorch keeps two that add up)"})
        rows.append({"symbol": "b_2", "PyTorch": "decoder.bias", "shape": f"({cfg.vocab_size},)", "meaning": "output bias"})
    return rows

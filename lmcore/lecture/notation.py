"""The lecture's notation, in one place: its equations in LaTeX and the PyTorch tensor behind each symbol.

x: input (the embedding of the current token), h: hidden state, y: output distribution,
V: input→hidden (weight_ih), U: hidden→hidden (weight_hh), W: hidden→output (decoder.weight),
b1 = b_ih + b_hh, b2 = decoder.bias, σ: the logistic sigmoid.
LSTM variants (Greff et al. 2016) add p_i, p_f, p_o (peepholes, extra.p_*_l0) and R (FGR's gate-to-gate
matrix, extra.R_l0, acting on a_{t-1} = [i_{t-1}; f_{t-1}; o_{t-1}]).
The feedforward model (Bengio et al. 2003) has no U: x_i is the n − 1 previous words' embeddings side by side,
V is hidden_layer.weight, and D (direct connections) sits beside W in decoder.weight.
"""
from __future__ import annotations

from lmcore.nn.architectures import LSTM_VARIANTS, ModelConfig, adaptive_clusters

OUTPUT = r"y_t = \mathrm{softmax}(W h_t + b_2), \qquad P(x_{t+1} \mid x_1, \dots, x_t) = y_t"
# The adaptive softmax (lmcore.nn.adaptive_output): a head over the frequent words and one entry per cluster c of
# rarer ones; a word w of cluster c has the head's probability of c times its own within c, read through P_c h.
ADAPTIVE_OUTPUT = (r"y_t(w) = \mathrm{softmax}(W_{head} h_t + b_{head})_w \quad \text{(w in the head)}",
                   r"y_t(w) = \mathrm{softmax}(W_{head} h_t + b_{head})_c \; \mathrm{softmax}(W_c P_c h_t + b_c)_w "
                   r"\quad \text{(w in cluster c)}")
ACTIVATION_TEX = {"sigmoid": r"\sigma", "tanh": r"\tanh", "relu": r"\mathrm{relu}"}


def equations(cfg: ModelConfig) -> list[str]:
    """The recurrence and output of this configuration, in the lecture's symbols (PyTorch's gate order)."""
    b = cfg.bias
    if cfg.arch == "ffnn":
        return _feedforward_equations(cfg)
    if cfg.arch in ("elman", "irnn"):
        f = ACTIVATION_TEX[cfg.cell_activation]
        rec = rf"h_t = {f}(V x_t + U h_{{t-1}}{' + b_1' if b else ''})"
        eqs = [rec + (r"\quad (U_0 = I,\ b_1 = 0)" if cfg.arch == "irnn" else "")]
    elif cfg.arch == "lstm":
        eqs = _lstm_equations(cfg)
    else:
        bias = lambda g: f" + b_{g}" if b else ""
        eqs = [rf"r_t = \sigma(V_r x_t + U_r h_{{t-1}}{bias('r')}), \quad z_t = \sigma(V_z x_t + U_z h_{{t-1}}{bias('z')})"]
        if cfg.gru_convention == "cho":  # Cho et al. 2014: r gates h_{t-1} before U_n
            eqs.append(rf"n_t = \tanh(V_n x_t{bias('{in}')} + U_n (r_t \odot h_{{t-1}}){bias('{hn}')})")
        else:  # PyTorch / cuDNN: r gates U_n h_{t-1} + b_hn after the product
            eqs.append(rf"n_t = \tanh(V_n x_t{bias('{in}')} + r_t \odot (U_n h_{{t-1}}{bias('{hn}')}))")
        eqs.append(r"h_t = (1 - z_t) \odot n_t + z_t \odot h_{t-1}")
    return eqs + _output_equations(cfg)


def _output_equations(cfg: ModelConfig, h: str = "h_t", t: str = "t") -> list[str]:
    """y from h: the softmax over every word, or the adaptive softmax's head and clusters (two lines, each fits the
    page); b's only with biases."""
    if cfg.output == "adaptive":
        eqs = [eq.replace("h_t", h).replace("y_t", f"y_{t}") for eq in ADAPTIVE_OUTPUT]
        return eqs if cfg.bias else [eq.replace(" + b_{head}", "").replace(" + b_c", "") for eq in eqs]
    return [OUTPUT if cfg.bias else OUTPUT.replace(" + b_2", "")]


def _feedforward_equations(cfg: ModelConfig) -> list[str]:
    """Bengio et al. (2003): the window of n − 1 embeddings, one tanh layer, W (and D) to the output."""
    n, b = cfg.window, cfg.bias

    def words(f: str, sep: str) -> str:  # f(w_{i−n+1}), …, f(w_{i−1}): all of them while they fit
        names = [f.format(rf"w_{{i-{k}}}") for k in range(n - 1, 0, -1)]
        return sep.join(names) if len(names) <= 3 else sep.join([names[0], r"\dots", names[-1]])

    window = "the previous word" if n == 2 else f"the {n - 1} previous words"
    head = [rf"x_i = [{words('e({})', '; ')}] \quad (n = {n}: \text{{{window}}})",
            rf"h_i = \tanh(V x_i{' + b_1' if b else ''})"]
    if cfg.output == "adaptive":  # it reads h_i, or [h_i; x_i] with direct connections
        return head + _output_equations(cfg, "[h_i; x_i]" if cfg.direct else "h_i", "i")
    return head + [rf"y_i = \mathrm{{softmax}}(W h_i{' + D x_i' if cfg.direct else ''}{' + b_2' if b else ''}), "
            rf"\qquad P(w_i \mid {words('{}', ', ')}) = y_i"]


def _lstm_equations(cfg: ModelConfig) -> list[str]:
    """The LSTM of cfg.variant: PyTorch's, or Greff's vanilla (peepholes) with one change (cells.py)."""
    v = LSTM_VARIANTS[cfg.variant]

    def pre(gate: str, cell: str = "c_{t-1}") -> str:  # the argument of gate's σ (or of g's tanh)
        terms = f"V_{gate} x_t + U_{gate} h_{{t-1}}"
        if gate in v.peephole_gates:
            terms += rf" + p_{gate} \odot {cell}"
        if v.gate_recurrence and gate != "g":
            terms += f" + R_{gate} a_{{t-1}}"
        return terms + (f" + b_{gate}" if cfg.bias else "")

    i = rf"i_t = \sigma({pre('i')})" if "i" in v.gates else r"i_t = 1 \ \text{(no input gate)}"
    f = (r"f_t = 1 - i_t \ \text{(coupled)}" if v.coupled else rf"f_t = \sigma({pre('f')})" if "f" in v.gates
         else r"f_t = 1 \ \text{(no forget gate)}")
    g = rf"g_t = \tanh({pre('g')})" if v.input_activation else rf"g_t = {pre('g')} \ \text{{(no input activation)}}"
    o = rf"o_t = \sigma({pre('o', 'c_t')})" if "o" in v.gates else r"o_t = 1 \ \text{(no output gate)}"
    h = r"h_t = o_t \odot \tanh(c_t)" if v.output_activation else r"h_t = o_t \odot c_t \ \text{(no output activation)}"
    c = r"c_t = f_t \odot c_{t-1} + i_t \odot g_t"
    if v.pytorch_equivalent:  # short lines: two equations each
        return [rf"{i}, \quad {f}", rf"{g}, \quad {o}", rf"{c}, \qquad {h}"]
    eqs = [i, f, g, c, o, h]  # one per line, in the order of computation: o's peephole sees the new c_t
    if v.gate_recurrence:
        eqs.append(r"a_{t-1} = [i_{t-1}; f_{t-1}; o_{t-1}], \quad a_0 = 0 \ \text{(full gate recurrence)}")
    return eqs


def parameter_map(cfg: ModelConfig) -> list[dict]:
    """Rows of (symbol, PyTorch parameter, shape) for the first layer and the output layer."""
    if cfg.arch == "ffnn":
        return _feedforward_parameters(cfg)
    variant = LSTM_VARIANTS[cfg.variant] if cfg.arch == "lstm" else None
    blocks = {"elman": "", "irnn": "", "lstm": f" ({', '.join(variant.blocks) if variant else ''} stacked)",
              "gru": " (r, z, n stacked)"}[cfg.arch]
    k = {"elman": 1, "irnn": 1, "lstm": len(variant.blocks) if variant else 4, "gru": 3}[cfg.arch]
    rows = [{"symbol": "x_t", "PyTorch": "encoder.weight[token]", "shape": f"({cfg.emb},)", "meaning": "input: the token's embedding"},
            {"symbol": "V", "PyTorch": "rnn.weight_ih_l0" + blocks, "shape": f"({k * cfg.hidden}, {cfg.emb})", "meaning": "input → hidden"},
            {"symbol": "U", "PyTorch": "rnn.weight_hh_l0" + blocks, "shape": f"({k * cfg.hidden}, {cfg.hidden})", "meaning": "hidden → hidden (recurrent)"},
            {"symbol": "W", "PyTorch": "decoder.weight" + (" (= encoder.weight, tied)" if cfg.tied else ""),
             "shape": f"({cfg.vocab_size}, {cfg.hidden})", "meaning": "hidden → output"}]
    if cfg.bias:
        rows.insert(3, {"symbol": "b_1", "PyTorch": "rnn.bias_ih_l0 + rnn.bias_hh_l0", "shape": f"({k * cfg.hidden},)",
                        "meaning": "hidden bias (PyTorch keeps two that add up)"})
        rows.append({"symbol": "b_2", "PyTorch": "decoder.bias", "shape": f"({cfg.vocab_size},)", "meaning": "output bias"})
    if cfg.output == "adaptive":
        rows = [r for r in rows if r["symbol"] not in ("W", "b_2")] + adaptive_rows(cfg, cfg.hidden, "h")
    if variant and variant.peephole_gates:
        gates = variant.peephole_gates
        rows.insert(3, {"symbol": ", ".join(f"p_{g}" for g in gates), "PyTorch": ", ".join(f"extra.p_{g}_l0" for g in gates),
                        "shape": f"({cfg.hidden},) each", "meaning": "peepholes: diagonal weights from the cell to the gates"})
    if variant and variant.gate_recurrence:
        rows.insert(3, {"symbol": "R = [R_i; R_f; R_o]", "PyTorch": "extra.R_l0", "shape": f"({3 * cfg.hidden}, {3 * cfg.hidden})",
                        "meaning": "gates at t−1 → gates at t (full gate recurrence)"})
    return rows


def _feedforward_parameters(cfg: ModelConfig) -> list[dict]:
    """The FFNN's symbols: e(w) and x_i from the embedding, V and b_1, then W, D and b_2 (decoder.weight = [W D])."""
    E, H, v, x = cfg.emb, cfg.hidden, cfg.vocab_size, (cfg.window - 1) * cfg.emb
    rows = [{"symbol": "e(w)", "PyTorch": "encoder.weight[token]", "shape": f"({E},)",
             "meaning": "a word's embedding"},
            {"symbol": "x_i", "PyTorch": "encoder.weight[token]" if cfg.window == 2 else f"{cfg.window - 1} rows of encoder.weight, side by side", "shape": f"({x},)",
             "meaning": "input: the previous word's embedding" if cfg.window == 2
             else f"input: the {cfg.window - 1} previous words' embeddings, oldest first"},
            {"symbol": "V", "PyTorch": "hidden_layer.weight", "shape": f"({H}, {x})", "meaning": "input → hidden"},
            {"symbol": "W", "PyTorch": ("decoder.weight[:, :H]" if cfg.direct else "decoder.weight")
             + (" (= encoder.weight, tied)" if cfg.tied else ""), "shape": f"({v}, {H})", "meaning": "hidden → output"}]
    if cfg.direct:
        rows.append({"symbol": "D", "PyTorch": "decoder.weight[:, H:]", "shape": f"({v}, {x})",
                     "meaning": "input → output (direct connections)"})
    if cfg.bias:
        rows.insert(3, {"symbol": "b_1", "PyTorch": "hidden_layer.bias", "shape": f"({H},)", "meaning": "hidden bias"})
        rows.append({"symbol": "b_2", "PyTorch": "decoder.bias", "shape": f"({v},)", "meaning": "output bias"})
    if cfg.output == "adaptive":  # no W, D, b_2: the head and clusters read h, or [h; x] with direct connections
        rows = [r for r in rows if r["symbol"] not in ("W", "D", "b_2")]
        rows += adaptive_rows(cfg, H + (x if cfg.direct else 0), "[h; x]" if cfg.direct else "h")
    return rows


def adaptive_rows(cfg: ModelConfig, in_features: int, reads: str) -> list[dict]:
    """The adaptive softmax's symbols: W_head (and b_head), then P_c, W_c (and b_c) of each cluster: c1, c2, …"""
    clusters = adaptive_clusters(in_features, cfg.vocab_size)
    head = clusters[0][0]
    rows = [{"symbol": "W_head", "PyTorch": "decoder.head.weight", "shape": f"({head + len(clusters)}, {in_features})",
             "meaning": f"{reads} → the {head:,} most frequent words and one entry per cluster"}]
    if cfg.bias:
        rows.append({"symbol": "b_head", "PyTorch": "decoder.head.bias", "shape": f"({head + len(clusters)},)",
                     "meaning": "the head's bias"})
    for c, (start, end, d) in enumerate(clusters, start=1):
        tail = f"decoder.tails.{c - 1}"
        rows += [{"symbol": f"P_c{c}", "PyTorch": f"{tail}.0.weight", "shape": f"({d}, {in_features})",
                  "meaning": f"{reads} → a {d}-number projection for cluster {c}"},
                 {"symbol": f"W_c{c}", "PyTorch": f"{tail}.1.weight", "shape": f"({end - start}, {d})",
                  "meaning": f"projection → words {start:,}–{end - 1:,} by frequency rank"}]
        if cfg.bias:
            rows.append({"symbol": f"b_c{c}", "PyTorch": f"{tail}.1.bias", "shape": f"({end - start},)",
                         "meaning": f"cluster {c}'s bias"})
    return rows

"""What each architecture is, in one catalogue: its gates (names, labels, which are sigmoids), the LSTM
variants and GRU conventions, the weight blocks per layer, the parameter count, and the one name of a model.

LSTM variants (Greff et al. 2016, "LSTM: A Search Space Odyssey"), options of the one LSTM cell.
Greff's "vanilla" LSTM has peepholes (Gers & Schmidhuber 2000; Graves 2012) and each of the eight
variants changes one thing in it:
    peephole: i_t = σ(V_i x_t + U_i h_{t-1} + p_i ⊙ c_{t-1} + b_i)
              f_t = σ(V_f x_t + U_f h_{t-1} + p_f ⊙ c_{t-1} + b_f)
              g_t = tanh(V_g x_t + U_g h_{t-1} + b_g)
              c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t
              o_t = σ(V_o x_t + U_o h_{t-1} + p_o ⊙ c_t + b_o)        (c_t: the new cell)
              h_t = o_t ⊙ tanh(c_t)
    NIG  no input gate           i_t = 1             NIAF no input activation    g_t = V_g x_t + U_g h_{t-1} + b_g
    NFG  no forget gate          f_t = 1             NOAF no output activation   h_t = o_t ⊙ c_t
    NOG  no output gate          o_t = 1             NP   no peepholes           (PyTorch's LSTM)
    CIFG coupled input/forget    f_t = 1 - i_t
    FGR  full gate recurrence: i, f and o also see a_{t-1} = [i_{t-1}; f_{t-1}; o_{t-1}] through R:
         i_t = σ(… + R_i a_{t-1} + b_i), likewise f and o; R = [R_i; R_f; R_o] is (3H, 3H), Greff's nine
         matrices R_ii, R_fi, R_oi, … in one; a_0 = 0, and a_t travels with the state (h, c, a).
A removed gate has no weights (its rows are absent from V, U, b) and no peephole; CIFG's f has
neither. This project's default, "vanilla", is PyTorch's LSTM: Greff's NP, so "np" names the same
model. A gate that a variant removes is reported in traces as the constant 1: permanently open.

GRU conventions:
    pytorch  n = tanh(V_n x_t + b_in + r ⊙ (U_n h_{t-1} + b_hn))    (cuDNN; reset after the product)
    cho      n = tanh(V_n x_t + b_in + U_n (r ⊙ h_{t-1}) + b_hn)    (Cho et al. 2014; reset before it)
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from lmcore.values import check_finite, check_whole

# Every gate a cell reports, by architecture, in PyTorch's order (an Elman RNN has none).
GATES = {"elman": (), "irnn": (), "lstm": ("i", "f", "g", "o"), "gru": ("r", "z", "n"), "ffnn": ()}
# How a page, a legend or a table names each quantity of a trace.
GATE_LABELS = {"i": "input gate i", "f": "forget gate f", "g": "candidate g", "o": "output gate o",
               "c": "cell state c", "r": "reset gate r", "z": "update gate z", "n": "candidate n",
               "h": "hidden state h"}
LSTM_GATES = ("i", "f", "o")  # the LSTM's sigmoid gates; g is the candidate ("block input" in Greff)
# Every gate that is a sigmoid, so "open" (near 1) and "closed" (near 0) mean something.
SIGMOID_GATES = LSTM_GATES + ("r", "z")
# The lecture's names for the architectures (its table calls the Elman network "RNN").
ARCH_NAMES = {"elman": "RNN", "irnn": "IRNN", "lstm": "LSTM", "gru": "GRU", "ffnn": "FFNN"}
# The architectures with a state carried through time: the ones hidden states, gates and gradients through time
# apply to. The feedforward model reads a fixed window of words and carries nothing but those words.
RECURRENT = ("elman", "irnn", "lstm", "gru")
MAX_WINDOW = 64  # the feedforward model's n: far beyond the 5 of Bengio et al. (2003), bounded for memory
ACTIVATION_SYMBOLS = {"sigmoid": "σ", "tanh": "tanh", "relu": "ReLU"}


@dataclass(frozen=True)
class LSTMVariant:
    name: str                       # as shown: "vanilla", "peephole", "NIG", …
    description: str
    gates: str = "ifo"              # the sigmoid gates with weights of their own
    peepholes: bool = False         # p_i, p_f on c_{t-1}; p_o on c_t (each gate that has weights)
    coupled: bool = False           # CIFG: f = 1 − i
    input_activation: bool = True   # g = tanh(·); NIAF: identity
    output_activation: bool = True  # h = o ⊙ tanh(c); NOAF: h = o ⊙ c
    gate_recurrence: bool = False   # FGR: i, f, o also see [i; f; o] of the step before

    @property
    def blocks(self) -> tuple[str, ...]:
        """The row blocks of V, U and b, in PyTorch's order i, f, g, o, less the gates that are absent."""
        return tuple(b for b in "ifgo" if b == "g" or b in self.gates)

    @property
    def constant(self) -> tuple[str, ...]:
        """Gates held at 1 (permanently open): absent, and not computed from another gate."""
        return tuple(g for g in LSTM_GATES if g not in self.gates and not (self.coupled and g == "f"))

    @property
    def peephole_gates(self) -> tuple[str, ...]:
        return tuple(g for g in LSTM_GATES if g in self.gates) if self.peepholes else ()

    @property
    def pytorch_equivalent(self) -> bool:
        """The same function as nn.LSTM with nn.LSTM's parameters: can run fused."""
        return (self.gates == "ifo" and not (self.peepholes or self.coupled or self.gate_recurrence)
                and self.input_activation and self.output_activation)


LSTM_VARIANTS: dict[str, LSTMVariant] = {
    "vanilla": LSTMVariant("vanilla", "PyTorch's LSTM: no peepholes (Greff's NP); runs fused", peepholes=False),
    "peephole": LSTMVariant("peephole", "Greff's and Graves' vanilla LSTM: peepholes, i and f see c_{t-1}, "
                            "o sees c_t", peepholes=True),
    "nig": LSTMVariant("NIG", "no input gate: i = 1", gates="fo", peepholes=True),
    "nfg": LSTMVariant("NFG", "no forget gate: f = 1", gates="io", peepholes=True),
    "nog": LSTMVariant("NOG", "no output gate: o = 1", gates="if", peepholes=True),
    "niaf": LSTMVariant("NIAF", "no input activation: g without tanh", peepholes=True, input_activation=False),
    "noaf": LSTMVariant("NOAF", "no output activation: h = o ⊙ c", peepholes=True, output_activation=False),
    "np": LSTMVariant("NP", "no peepholes: the same model as vanilla (PyTorch's LSTM)", peepholes=False),
    "cifg": LSTMVariant("CIFG", "coupled input and forget gate: f = 1 − i", gates="io", peepholes=True,
                        coupled=True),
    "fgr": LSTMVariant("FGR", "full gate recurrence: i, f, o also see i, f, o of step t−1", peepholes=True,
                       gate_recurrence=True),
}
GRU_CONVENTIONS = {
    "pytorch": "PyTorch / cuDNN: reset after the recurrent product, n = tanh(V_n x + b_in + r ⊙ (U_n h + b_hn))",
    "cho": "Cho et al. 2014: reset before the recurrent product, n = tanh(V_n x + U_n (r ⊙ h) + b)",
}


ARCHS = {
    "elman": "Elman RNN, h = f(V x + U h + b1); f = σ (the lecture), tanh or relu",
    "irnn": "ReLU RNN with U initialised to the identity, zero biases (Le et al. 2015)",
    "lstm": "Long short-term memory (Hochreiter & Schmidhuber 1997; PyTorch gates i, f, g, o; variants of Greff et al. 2016)",
    "gru": "Gated recurrent unit (Cho et al. 2014; PyTorch's convention or Cho's)",
    "ffnn": "Feedforward n-gram model (Bengio et al. 2003): the n−1 previous words' embeddings, h = tanh(V x + b1), "
            "no recurrence",
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
    backend: str = "auto"        # auto: fused where PyTorch has it, else cells (training on a CPU: native_pays)
    vocab_size: int = 0
    variant: str = "vanilla"     # LSTM only: one of cells.LSTM_VARIANTS (vanilla = PyTorch's LSTM)
    gru_convention: str = "pytorch"  # GRU only: where the reset gate acts, "pytorch" or "cho"
    window: int = 5              # FFNN only: n, so it reads the n − 1 words before the one it predicts
    direct: bool = False         # FFNN only: Bengio's direct connections, y = softmax(W h + D x + b2)
    output: str = "softmax"      # the output layer: one of OUTPUTS (softmax over every word, or adaptive)

    def validate(self) -> None:
        if self.arch not in ARCHS:
            raise ValueError(f"unknown architecture {self.arch!r}; choose one of {', '.join(ARCHS)}")
        if self.activation not in ACTIVATION_NAMES:
            raise ValueError(f"unknown activation {self.activation!r}; choose one of {', '.join(ACTIVATION_NAMES)}")
        if self.variant not in LSTM_VARIANTS:
            raise ValueError(f"unknown LSTM variant {self.variant!r}; choose one of {', '.join(LSTM_VARIANTS)}")
        if self.variant != "vanilla" and self.arch != "lstm":
            raise ValueError(f"variant {self.variant!r} is an LSTM variant; the {self.arch} has none")
        if self.gru_convention not in GRU_CONVENTIONS:
            raise ValueError(f"unknown GRU convention {self.gru_convention!r}; choose one of {', '.join(GRU_CONVENTIONS)}")
        if self.gru_convention != "pytorch" and self.arch != "gru":
            raise ValueError(f"the GRU convention {self.gru_convention!r} applies to the GRU only")
        if self.backend not in BACKENDS:
            raise ValueError(f"unknown backend {self.backend!r}; choose one of {', '.join(BACKENDS)}")
        for name in ("emb", "hidden", "layers", "vocab_size"):
            check_whole(name, getattr(self, name))
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        check_finite("dropout", self.dropout)
        self._validate_feedforward()
        for name in ("bias", "tied", "direct"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, not {getattr(self, name)!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError("dropout must be in [0, 1)")
        if self.output not in OUTPUTS:
            raise ValueError(f"unknown output layer {self.output!r}; choose one of {', '.join(OUTPUTS)}")
        if self.output == "adaptive" and self.tied:
            raise ValueError("an adaptive softmax has no one row of W per word to share with the embedding; "
                             "untie W (tied off) or use the full softmax")
        if self.output == "adaptive":
            adaptive_cutoffs(self.vocab_size)  # refuses a vocabulary too small to split
        if self.tied and self.emb != self.hidden:
            raise ValueError(f"tied weights need emb == hidden (got {self.emb} and {self.hidden})")
        if self.backend == "fused" and not self.fusable:
            what = {"elman": "a sigmoid Elman RNN", "lstm": f"the LSTM variant {self.variant_label}",
                    "gru": "Cho's GRU"}[self.arch]
            raise ValueError(f"PyTorch has no fused module for {what}; use backend cells or auto")

    def _validate_feedforward(self) -> None:
        check_whole("window", self.window)
        if not 2 <= self.window <= MAX_WINDOW:
            raise ValueError(f"window n must be between 2 (a bigram model) and {MAX_WINDOW}, not {self.window}")
        if self.arch != "ffnn":
            if self.window != 5 or self.direct is True:
                raise ValueError(f"window and direct connections belong to the feedforward model; the {self.arch} "
                                 "reads its whole past")
            return
        if self.layers != 1:
            raise ValueError(f"the feedforward model has one hidden layer (Bengio et al. 2003), not {self.layers}")
        if self.backend != "auto":
            raise ValueError("the feedforward model has no recurrent backend to choose; leave backend on auto")
        if self.tied and self.direct is True:
            raise ValueError("direct connections D x need an untied W (the output layer reads [h; x])")

    @property
    def fusable(self) -> bool:
        if self.arch == "ffnn":
            return False
        if self.arch == "lstm":
            return LSTM_VARIANTS[self.variant].pytorch_equivalent
        if self.arch == "gru":
            return self.gru_convention == "pytorch"
        return not (self.arch == "elman" and self.activation == "sigmoid")

    @property
    def variant_label(self) -> str:
        """"" for PyTorch's LSTM and GRU (the defaults), else the variant's name: "NIG", "peephole", "Cho"."""
        if self.arch == "lstm" and self.variant != "vanilla":
            return LSTM_VARIANTS[self.variant].name
        return "Cho" if self.arch == "gru" and self.gru_convention == "cho" else ""

    @property
    def constant_gates(self) -> tuple[str, ...]:
        """Gates this model does not have, reported (and drawn) as the constant 1: permanently open."""
        return LSTM_VARIANTS[self.variant].constant if self.arch == "lstm" else ()

    @property
    def uses_fused(self) -> bool:
        return self.backend != "cells" and self.fusable

    @property
    def cell_activation(self) -> str:
        """The activation of h: ReLU for the IRNN, tanh for the FFNN (Bengio et al.), else the Elman setting."""
        return {"irnn": "relu", "ffnn": "tanh"}.get(self.arch, self.activation)

    @property
    def recurrent(self) -> bool:
        """Whether the model carries a state through time (hidden states, gates, gradients through time)."""
        return self.arch in RECURRENT


def require_recurrent(cfg: ModelConfig, what: str) -> None:
    """Refuse, in one line, a measurement through time on a model that has no state through time (the FFNN)."""
    if not cfg.recurrent:
        raise ValueError(f"{what} needs a recurrent model; {model_name(cfg)} carries no state through time (its "
                         f"context is the fixed window of the {cfg.window - 1} previous words)")


def model_name(m: ModelConfig, size: bool = False) -> str:
    """The one name of a model, in every table, legend, page and run name: the lecture's name for the
    architecture, the Elman RNN's activation, the LSTM variant or GRU convention; with size, layers × units.
    "σ-RNN", "tanh-RNN", "IRNN", "LSTM", "LSTM-NIG", "GRU-Cho", "FFNN n=5"; "LSTM 2×200";
    "LSTM 2×200, adaptive softmax" where the output layer is not the full softmax."""
    if m.arch == "ffnn":
        name = f"FFNN{'-direct' if m.direct else ''} n={m.window}"
    elif m.arch == "elman":
        name = f"{ACTIVATION_SYMBOLS[m.activation]}-RNN"
    else:
        name = ARCH_NAMES[m.arch] + (f"-{m.variant_label}" if m.variant_label else "")
    name = f"{name} {m.layers}×{m.hidden}" if size else name
    return name + (", adaptive softmax" if m.output == "adaptive" else "")


# The output layer: a softmax over every word, or Grave et al.'s adaptive softmax (lmcore.nn.adaptive_output).
OUTPUTS = {"softmax": "full softmax over every word: y = softmax(W h + b2)",
           "adaptive": "adaptive softmax (Grave et al. 2017): a head of the 2,000 most frequent words and clusters of "
                       "rarer ones, still an exact distribution over every word; several times faster from ~10k words"}
ADAPTIVE_HEAD = (2_000, 10_000)  # cutoffs, each where the vocabulary is at least twice as large
ADAPTIVE_DIV = 4                 # each cluster reads a projection of h this much smaller than the one before
ADAPTIVE_MIN_VOCAB = 2           # a head and one cluster of a word or more


def adaptive_cutoffs(vocab: int) -> list[int]:
    """Where the head ends and each cluster starts: [2000] for 4k–20k words, [2000, 10000] above; a quarter of
    the vocabulary in the head for smaller ones, at least one word (so the layer works on any corpus, as every
    vocabulary has <unk>, <eos> and a word, though it pays from ~5k words)."""
    if vocab < ADAPTIVE_MIN_VOCAB:
        raise ValueError(f"an adaptive softmax needs a vocabulary of at least {ADAPTIVE_MIN_VOCAB} words, not {vocab}")
    return [c for c in ADAPTIVE_HEAD if 2 * c <= vocab] or [max(1, vocab // 4)]


def adaptive_clusters(in_features: int, vocab: int) -> list[tuple[int, int, int]]:
    """The tail clusters of an adaptive softmax: (first word id, last + 1, size of h's projection it reads)."""
    bounds = adaptive_cutoffs(vocab) + [vocab]
    return [(bounds[i], bounds[i + 1], max(1, in_features // ADAPTIVE_DIV ** (i + 1))) for i in range(len(bounds) - 1)]


def adaptive_params(in_features: int, vocab: int, bias: bool) -> int:
    """lmcore.nn.adaptive_output.AdaptiveOutput's parameter count in closed form."""
    clusters = adaptive_clusters(in_features, vocab)
    head = clusters[0][0] + len(clusters)  # the head's words and one entry per cluster
    total = in_features * head + (head if bias else 0)
    for start, end, d in clusters:
        total += in_features * d + d * (end - start) + ((end - start) if bias else 0)
    return total


GATE_BLOCKS = {"elman": 1, "irnn": 1, "gru": 3, "lstm": 4}  # weight blocks per layer: V and U each hold this many


def count_params(cfg: ModelConfig, vocab_size: int | None = None) -> int:
    """Parameters of RNNLM(cfg) in closed form (equal to model.num_params(); a test checks).

    LSTM variants: a removed gate (NIG, NFG, NOG) or a coupled one (CIFG) has no block in V, U, b;
    peepholes add H per gate that has one; FGR adds R, (3H)² per layer. The FFNN: see FeedforwardLM."""
    v = vocab_size or cfg.vocab_size
    H = cfg.hidden
    if cfg.arch == "ffnn":  # embedding, V and b1 on the n − 1 words, W (unless tied), D, b2
        x = (cfg.window - 1) * cfg.emb
        return v * cfg.emb + x * H + (H if cfg.bias else 0) + _output_params(cfg, H + (x if cfg.direct else 0), v)
    variant = LSTM_VARIANTS[cfg.variant] if cfg.arch == "lstm" else None
    g = len(variant.blocks) if variant else GATE_BLOCKS[cfg.arch]
    total = v * cfg.emb  # embedding
    for layer in range(cfg.layers):
        inputs = cfg.emb if layer == 0 else H
        total += g * H * (inputs + H + (2 if cfg.bias else 0))  # V, U, b_ih, b_hh
        if variant:
            total += len(variant.peephole_gates) * H + (9 * H * H if variant.gate_recurrence else 0)  # p_*, R
    return total + _output_params(cfg, H, v)


def _output_params(cfg: ModelConfig, in_features: int, vocab: int) -> int:
    """The output layer's: W (unless tied) and b2, or the adaptive softmax's head and clusters."""
    if cfg.output == "adaptive":
        return adaptive_params(in_features, vocab, cfg.bias)
    return (0 if cfg.tied else in_features * vocab) + (vocab if cfg.bias else 0)


def hidden_for_budget(cfg: ModelConfig, target_params: int, vocab_size: int) -> int:
    """The hidden size whose parameter count is closest to target_params, the rest of cfg kept.

    A tied model keeps emb == hidden, so both move together.
    """
    def params(h: int) -> int:
        return count_params(replace(cfg, hidden=h, emb=h if cfg.tied else cfg.emb), vocab_size)
    lo, hi = 1, 4096
    while lo < hi:  # parameters grow with h: find the first h at or above the target
        mid = (lo + hi) // 2
        lo, hi = (mid + 1, hi) if params(mid) < target_params else (lo, mid)
    return min((max(1, lo - 1), lo), key=lambda h: abs(params(h) - target_params))



"""Named starting points for the Train page and the CLI, and parameter-budget matching.

The page maps a preset name to these objects and nothing else (TensorFlow Playground's state.ts habit):
the defaults live here, not in widgets.
"""
from __future__ import annotations

from dataclasses import replace

from .cells import LSTM_VARIANTS
from .config import TrainConfig
from .model import ModelConfig

PRESETS: dict[str, tuple[ModelConfig, TrainConfig]] = {
    # Learning rates picked by 4-epoch runs on python-docs (SGD, clip 0.25): σ tolerates 20, tanh 5, relu ~5.
    "lecture RNN": (ModelConfig(arch="elman", activation="sigmoid", bias=False, layers=1, dropout=0.2),
                    TrainConfig(optimizer="sgd", lr=20.0, clip=0.25)),
    "tanh RNN": (ModelConfig(arch="elman", activation="tanh", layers=1, dropout=0.2),
                 TrainConfig(optimizer="sgd", lr=5.0, clip=0.25)),
    "IRNN": (ModelConfig(arch="irnn", layers=1, dropout=0.2),
             TrainConfig(optimizer="sgd", lr=5.0, clip=0.25)),
    "LSTM": (ModelConfig(arch="lstm", layers=2, dropout=0.2), TrainConfig(optimizer="sgd", lr=20.0, clip=0.25)),
    "GRU": (ModelConfig(arch="gru", layers=2, dropout=0.2), TrainConfig(optimizer="sgd", lr=20.0, clip=0.25)),
}
DEFAULT_LINEUP = ("lecture RNN", "LSTM", "GRU")

GATE_BLOCKS = {"elman": 1, "irnn": 1, "gru": 3, "lstm": 4}  # weight blocks per layer: V and U each hold this many


def count_params(cfg: ModelConfig, vocab_size: int | None = None) -> int:
    """Parameters of RNNLM(cfg) in closed form (equal to model.num_params(); a test checks).

    LSTM variants: a removed gate (NIG, NFG, NOG) or a coupled one (CIFG) has no block in V, U, b;
    peepholes add H per gate that has one; FGR adds R, (3H)² per layer."""
    v = vocab_size or cfg.vocab_size
    H = cfg.hidden
    variant = LSTM_VARIANTS[cfg.variant] if cfg.arch == "lstm" else None
    g = len(variant.blocks) if variant else GATE_BLOCKS[cfg.arch]
    total = v * cfg.emb  # embedding
    for layer in range(cfg.layers):
        inputs = cfg.emb if layer == 0 else H
        total += g * H * (inputs + H + (2 if cfg.bias else 0))  # V, U, b_ih, b_hh
        if variant:
            total += len(variant.peephole_gates) * H + (9 * H * H if variant.gate_recurrence else 0)  # p_*, R
    total += (0 if cfg.tied else H * v) + (v if cfg.bias else 0)  # W, b2
    return total


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


def preset(name: str) -> tuple[ModelConfig, TrainConfig]:
    model, train = PRESETS[name]
    return replace(model), replace(train)


def live_eval_every(train_tokens: int, batch: int, bptt: int, per_epoch: int = 4) -> int:
    """Steps between evaluations so a live curve gets about `per_epoch` points per epoch."""
    steps_per_epoch = max(1, train_tokens // max(1, batch * bptt))
    return max(1, steps_per_epoch // per_epoch)

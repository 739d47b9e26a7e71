"""Named starting points for the Train page and the CLI, and parameter-budget matching.

The page maps a preset name to these objects and nothing else (TensorFlow Playground's state.ts habit):
the defaults live here, not in widgets.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from lmcore.corpus.dataset import CorpusSpec
from lmcore.nn.architectures import ModelConfig, hidden_for_budget
from lmcore.training.config import DEFAULT_LR, RunConfig, TrainConfig
from lmcore.training.device import bf16_pays

# The default lineup's recipe, chosen by measurement over three seeds (benchmarks/bench_lecture_claims.py):
# on the built-in python-docs corpus (44k training words) Adam reaches in 16 epochs what SGD at lr 20 does
# not in 40, the three runs end within 4 minutes on 2 cores, and every model shares it, so that the lineup
# differs in the cell alone. Small corpus, so: tied W = embedding (fewer parameters) and dropout 0.5.
LINEUP_TRAIN = TrainConfig(optimizer="adam", lr=0.003, clip=0.25, epochs=16, batch=10, bptt=35, lr_decay=4.0)
_SMALL = dict(emb=200, hidden=200, layers=1, dropout=0.5, tied=True)


@dataclass(frozen=True)
class Preset:
    model: ModelConfig
    train: TrainConfig
    note: str  # one line on the page: what it is and why these settings


PRESETS: dict[str, Preset] = {
    "lecture RNN": Preset(
        ModelConfig(arch="elman", activation="sigmoid", bias=False, **_SMALL), LINEUP_TRAIN,
        "The lecture's RNN: h_t = σ(V x_t + U h_{t−1}), y_t = softmax(W h_t), no biases as in the coursework; "
        "trained like the gated models so that only the cell differs."),
    "tanh RNN": Preset(
        ModelConfig(arch="elman", activation="tanh", **_SMALL), LINEUP_TRAIN,
        "The Elman RNN with tanh, zero-centred states (Le et al. 2015's 'tanh RNN'); same recipe as the lineup."),
    "IRNN": Preset(
        ModelConfig(arch="irnn", **_SMALL), replace(LINEUP_TRAIN, lr=0.001),
        "ReLU RNN with U = I at the start (Le et al. 2015); a lower lr, since at 0.003 its first epoch spikes."),
    "LSTM": Preset(
        ModelConfig(arch="lstm", **_SMALL), LINEUP_TRAIN,
        "Long short-term memory: a linear cell c_t = f ⊙ c_{t−1} + i ⊙ g behind input, forget and output gates "
        "(Graves 2012, Fig. 4.2); PyTorch's fused LSTM."),
    "GRU": Preset(
        ModelConfig(arch="gru", **_SMALL), LINEUP_TRAIN,
        "Gated recurrent unit (Cho et al. 2014): update and reset gates, no separate cell, 3 weight blocks to "
        "the LSTM's 4, so fewer parameters at the same size."),
    "FFNN": Preset(
        ModelConfig(arch="ffnn", window=5, **{**_SMALL, "layers": 1}), LINEUP_TRAIN,
        "The feedforward model of the lecture before (Bengio et al. 2003): the 4 previous words' embeddings, "
        "h = tanh(V x + b1); a fixed window, like a 5-gram, with shared parameters."),
}
DEFAULT_LINEUP = ("lecture RNN", "LSTM", "GRU")

# A built-in corpus with a recipe of its own: the agreement corpus (166k words, 222 types) needs long
# truncation (τ 100: a subject and its verb up to ~15 words apart must fall in one chunk) and no dropout for
# the gated models to find the number latch; each run takes about a minute on 2 cores. Adam at lr 0.005 rather
# than the demos' 0.01 (lmcore.training.demos): at 0.01 the GRU lost the latch it had found by epoch 4 on 2 of seeds
# 1111–1116, the default seed among them (0.70 and 0.71 correct at 4+ words apart at the end), at 0.005 on 1 of 8.
# (Which seeds miss moves with float32's rounding: the optimizer's step in C++ took the LSTM's seed 1113 from 0.94
# to 0.69 and gave 1111 0.83 against 0.95, while the other six seeds stayed at 0.90-1.00; the softmax's bias gradient
# summed per block of rows rather than per thread then gave 1113 0.87 and 1111 0.75. Tried then: lr 0.003, where
# the GRU found the latch on 4 of seeds 1111-1118 and the LSTM was slower to find it.)
CORPUS_RECIPES: dict[str, tuple[dict, dict]] = {
    "builtin:agreement": (dict(emb=64, hidden=128, dropout=0.0, tied=False),
                          dict(lr=0.005, batch=16, bptt=100, epochs=12)),
}
RECIPE_NOTE = ("Every preset (python-docs and your own text): Adam lr 0.003, gradient norm clipped at 0.25, batch 10 × τ 35, 16 epochs, lr ÷ 4 when "
               "an epoch ends no better than the best earlier one; 200 units, W tied to the embedding, dropout 0.5. "
               "Chosen so the three default runs end in under 2 minutes on 2 cores and show the lecture's claims: on "
               "five seeds out of five the LSTM and GRU beat the σ-RNN and the Kneser–Ney 3-gram, the GRU with fewer "
               "parameters within 11% of the LSTM; the lecture's plain SGD (lr 20, Advanced) needs many more epochs here.")

AGREEMENT_NOTE = ("On the agreement corpus every preset takes its recipe: 1×128 units, embedding 64, no dropout, "
                  "W untied, Adam lr 0.005, batch 16 × τ 100, 12 epochs: a subject and its verb must fall in one "
                  "chunk for the gated models to learn to carry the subject's number. They find it on most seeds, not "
                  "all: of seeds 1111–1118 the LSTM found it on 7 (0.87–1.00 correct at 4+ words apart; 0.75 on seed "
                  "1111, the default), the GRU on 7 (0.82–0.99; 0.62 on seed 1115), the σ-RNN on none of 1111–1113 "
                  "(0.51–0.61).")


def recipe_note(corpus: CorpusSpec) -> str:
    """The line the Train page shows about the recipe its presets start from on this corpus."""
    return AGREEMENT_NOTE if corpus.source in CORPUS_RECIPES else RECIPE_NOTE


def preset(name: str, corpus: CorpusSpec | None = None) -> tuple[ModelConfig, TrainConfig]:
    """A preset's settings, with the corpus's own recipe on top where a built-in corpus has one."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    model, train = CORPUS_RECIPES.get(corpus.source, ({}, {})) if corpus else ({}, {})
    return replace(PRESETS[name].model, **model), replace(PRESETS[name].train, **train)


def run_config(preset_name: str | None, corpus: CorpusSpec, *, model: dict | None = None, train: dict | None = None,
               vocab_size: int = 0, train_tokens: int = 0, match_params: int = 0, name: str = "") -> RunConfig:
    """The one way a run's config is built (the Train page, the CLI, the benchmarks): a preset's settings, or
    the library's defaults, with the caller's changes on top, then what follows from them.

    model / train: only the settings the caller sets. A changed optimizer without an lr takes that
    optimizer's default lr; a tied model without an embedding size takes emb = hidden; the FFNN, one layer.
    vocab_size: needed for match_params (the hidden size whose parameter count is closest to it).
    train_tokens: given (the page), and no eval_every, the run gets live evaluations for its curves; they
    change nothing else (lmcore.training.trainer)."""
    base_model, base_train = preset(preset_name, corpus) if preset_name else (ModelConfig(), TrainConfig())
    model, train = dict(model or {}), dict(train or {})
    if "optimizer" in train and "lr" not in train and train["optimizer"] != base_train.optimizer:
        train["lr"] = DEFAULT_LR.get(train["optimizer"], base_train.lr)
    m = replace(base_model, **model)
    if m.arch == "ffnn" and "layers" not in model:
        m = replace(m, layers=1)  # the feedforward model has one hidden layer
    if m.output == "adaptive" and m.tied and "tied" not in model:  # the presets tie W to the embedding, which
        m = replace(m, tied=False, emb=model.get("emb", m.hidden))  # an adaptive softmax has not: emb stays = h
    if m.tied and "emb" not in model:
        m = replace(m, emb=m.hidden)
    if vocab_size:
        m = replace(m, vocab_size=vocab_size)
    if match_params:
        h = hidden_for_budget(m, match_params, vocab_size)
        m = replace(m, hidden=h, emb=h if m.tied else m.emb)
    t = replace(base_train, **train)
    if "bf16" not in train:  # unless told: bfloat16 where it measured faster at equal perplexity
        t = replace(t, bf16=bf16_pays(m, t.device))
    if train_tokens and "eval_every" not in train:
        t = replace(t, eval_every=live_eval_every(train_tokens, t.batch, t.bptt))
    if preset_name and not name:
        kind = m.variant_label if m.recurrent else f"{'direct ' if m.direct else ''}n={m.window}"  # FFNN: its window
        name = f"{preset_name} {kind}".rstrip() + f" {m.layers}×{m.hidden}"  # "LSTM NIG 1×200", "FFNN n=5 1×200"
        name += ", adaptive softmax" if m.output == "adaptive" else ""
    return RunConfig(name=name, corpus=corpus, model=m, train=t)


ADAPTIVE_PAYS_FROM = 10_000  # words: where benchmarks/bench_adaptive.py measured the adaptive softmax 1.7× faster


def output_hint(m: ModelConfig) -> str:
    """A line for the Train page when the corpus's vocabulary is large enough that the adaptive softmax pays."""
    if m.output != "softmax" or m.vocab_size < ADAPTIVE_PAYS_FROM:
        return ""
    return (f"{m.vocab_size:,} words: most of each step goes to the softmax over all of them; the adaptive softmax "
            "(Advanced → Output layer) trains about 1.7× faster at 10k words and more above, at similar perplexity")


def default_lineup(corpus: CorpusSpec, vocab_size: int = 0, train_tokens: int = 0, **train) -> list[RunConfig]:
    """The Train page's runs with nothing changed; train: shared settings such as seed or epochs."""
    return [run_config(p, corpus, train=train, vocab_size=vocab_size, train_tokens=train_tokens)
            for p in DEFAULT_LINEUP]


MAX_SEEDS = 10  # seeds per configured run on the Train page: each is a run of its own in the queue and its limits


def over_seeds(configs: list[RunConfig], seeds: int) -> list[RunConfig]:
    """Each config trained with `seeds` seeds (its own seed, then the next ones), config by config: runs that
    differ only by seed, which Compare shows as one group (lmcore.runs.seeds)."""
    if not 1 <= seeds <= MAX_SEEDS:
        raise ValueError(f"seeds per run must be between 1 and {MAX_SEEDS}, not {seeds}")
    return [replace(cfg, train=replace(cfg.train, seed=cfg.train.seed + k)) for cfg in configs for k in range(seeds)]


def live_eval_every(train_tokens: int, batch: int, bptt: int, per_epoch: int = 4) -> int:
    """Steps between evaluations so a live curve gets about `per_epoch` points per epoch."""
    steps_per_epoch = max(1, train_tokens // max(1, batch * bptt))
    return max(1, steps_per_epoch // per_epoch)

"""What the pages about models measure, through lmcore.inspect: gradients through time, the gates' chain,
saliency, context use, word maps, the agreement probe, hidden-state analysis, next-word ranks. What takes
seconds is kept per checkpoint version (st.cache_data), so a link or a rerun shows it again at once."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from appstate.corpus import cached_corpus, cached_ngram
from appstate.home import get_store
from appstate.models import ModelRun, cached_checkpoint, checkpoint_version, run_trace
from appstate.text import md
from lmcore.corpus.dataset import CorpusSpec
from lmcore.corpus.tokenize import EOS
from lmcore.inspect.bptt_check import walkthrough
from lmcore.inspect.embeddings import METHODS, NEIGHBOURS, embedding_matrix, find_word, most_frequent_ids, \
    neighbour_table, word_map
from lmcore.inspect.gradients import input_saliency, jacobian_decay, loss_gradient_decay
from lmcore.inspect.hidden import (ORDERS, SCORE_NAMES, clearest_feature, matches_table, order_units, propose_span,
                                   propose_threshold, regex_feature, search_pattern, select_units, suggest_features,
                                   value_bounds)
from lmcore.inspect.memory import (LECTURE_ITEMS, accuracy_by_distance, agreement_items, context_perplexity,
                                   lm_margins, ngram_context_perplexity, ngram_margins, parse_probe_tsv, probe_applies,
                                   readable)
from lmcore.inspect.next_word import next_token_ranks, prompt_tokens, sample_pieces, surprisal_table
from lmcore.inspect.sensitivity import input_sensitivity, mean_over_units, normalise, output_sensitivity, \
    unit_sensitivity
from lmcore.inspect.trace import Trace, gate_notes
from lmcore.nn.architectures import GATE_LABELS
from lmcore.runs.catalog import RunRef, training_checkpoints
from lmcore.values import ordinal
from lmcore.viz.gates import PLACES

__all__ = [
    # the pages' names from lmcore
    "EOS", "GATE_LABELS", "LECTURE_ITEMS", "METHODS", "NEIGHBOURS", "ORDERS", "SCORE_NAMES", "agreement_items",
    "clearest_feature", "embedding_matrix", "find_word", "matches_table", "neighbour_table", "next_token_ranks",
    "order_units", "ordinal", "parse_probe_tsv", "prompt_tokens", "propose_span", "propose_threshold",
    "regex_feature", "sample_pieces", "search_pattern", "select_units", "suggest_features", "surprisal_table",
    "value_bounds", "walkthrough",
    # this module's
    "GateChain", "agreement_tables", "cached_word_map", "context_curve", "decay_curves", "first_input_sensitivity",
    "gate_chain", "ngram_context_curve", "saliency", "training_stages",
]


# --- gradients through time ---------------------------------------------------------------------------------------
def training_stages(ref: RunRef) -> list[tuple[str, Path]]:
    """(label, checkpoint) of a run through training: its initialisation, then after each epoch."""
    return training_checkpoints(get_store(), ref)


@st.cache_data(max_entries=64, show_spinner="Measuring gradients through time…")
def _decay_curves(path: str, mtime_ns: int, K: int, positions: int):
    model, cfg, vocab, _ = cached_checkpoint(path, mtime_ns)
    corpus = cached_corpus(cfg.corpus)
    ids = vocab.encode(corpus.vocab.decode(corpus.valid[:5000]))
    return (loss_gradient_decay(model, ids, K=K, positions=positions),
            jacobian_decay(model, ids, K=K, positions=min(positions, 8)))


def decay_curves(checkpoint: Path, K: int, positions: int):
    """(‖∂ℓ_t/∂h_{t−k}‖, ‖∂h_t/∂h_{t−k}‖_F) curves of one checkpoint on its corpus's validation
    text."""
    return _decay_curves(str(checkpoint), checkpoint.stat().st_mtime_ns, K, positions)


def first_input_sensitivity(run: ModelRun, tokens: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Graves' Fig. 4.1: each step's (hidden, output) sensitivity to the first input x_0."""
    ids = run.vocab.encode(tokens)
    return input_sensitivity(run.model, ids, 0), output_sensitivity(run.model, ids, 0)


def saliency(run: ModelRun, tokens: list[str], position: int) -> np.ndarray:
    """‖∂ log p(w_position)/∂x_{t}‖ for every earlier token t."""
    return input_saliency(run.model, run.vocab.encode(tokens), position)


# --- gates (Graves' Fig. 4.4) -------------------------------------------------------------------------------------
@dataclass
class GateChain:
    """One model's Fig. 4.4 over a window of a text: how long its hidden state depends on one input."""
    trace: Trace
    layer: int                    # the layer drawn: the one asked for, or the model's top one if it has fewer
    unit: int | None              # None: the mean of all units
    sensitivity: np.ndarray       # ‖∂h_t/∂x_source‖ over the whole text up to the window's end
    shading: np.ndarray           # the same, relative to its peak, over the window
    gates: dict[str, np.ndarray]  # each gate of the unit (or the mean), over the window
    notes: dict[str, str]         # the gates an LSTM variant goes without, and how they are drawn
    constant: tuple[str, ...]


def gate_chain(run: ModelRun, tokens: list[str], source: int, start: int, stop: int, layer: int,
               unit: int | None, keeper: bool = False) -> GateChain:
    """The chain for steps [start, stop) of this text, traced from the input at `source`. keeper: the unit
    whose state at the window's last step depends most on the source (it differs between models)."""
    lay = min(layer, run.cfg.model.layers - 1)
    ids = run.vocab.encode(tokens[:max(stop, source + 1)])
    if keeper:
        unit = int(unit_sensitivity(run.model, ids, source, stop - 1, lay).argmax())
    tr = run_trace(run.ref, tokens)
    raw = input_sensitivity(run.model, ids, source, lay, unit)
    gates = {g: mean_over_units(tr.layers[lay][g], unit)[start:stop] for g in PLACES[run.cfg.model.arch]}
    return GateChain(tr, lay, unit, raw, normalise(raw)[start:stop], gates, gate_notes(run.cfg.model),
                     run.cfg.model.constant_gates)


# --- Markov vs memory (issue 13, item 1): context use kept per checkpoint, so a link shows it again at once -------
def agreement_tables(runs: list[ModelRun], items, order: int) -> tuple[list[pd.DataFrame], list[str]]:
    """Agreement accuracy by distance for each run the probe applies to, then the Kneser–Ney baseline fitted on
    the corpus of the first of them; and why the probe does not apply to the others (markdown)."""
    tables, ngram_cfg, unreadable = [], None, []
    for run in runs:
        kept = readable(items, run.vocab)
        if not probe_applies(items, run.vocab):  # e.g. a python-docs run knows "is" and "are" but not "roses"
            unreadable.append(f"{md(run.ref.label)} ({len(kept):,} of {len(items):,} sentences have every word in "
                              "its vocabulary)")
            continue
        tables.append(accuracy_by_distance(kept, lm_margins(run.model, run.vocab, kept), run.ref.label))
        ngram_cfg = ngram_cfg or run.cfg
    if ngram_cfg is not None:
        kn, kn_vocab = cached_ngram(ngram_cfg.corpus, order), cached_corpus(ngram_cfg.corpus).vocab
        kept = readable(items, kn_vocab)
        tables.append(accuracy_by_distance(kept, ngram_margins(kn, kn_vocab, kept), f"Kneser–Ney {order}-gram"))
    return tables, unreadable


@st.cache_data(max_entries=32, show_spinner=False)
def _context_curve(path: str, mtime_ns: int, max_targets: int):
    model, cfg, vocab, _ = cached_checkpoint(path, mtime_ns)
    corpus = cached_corpus(cfg.corpus)
    return context_perplexity(model, vocab.encode(corpus.vocab.decode(corpus.valid)), max_targets=max_targets,
                              bf16=True)  # where native: a third of float32's time (an LSTM: within 0.03%)


def context_curve(ref: RunRef, max_targets: int):
    """Perplexity of the run against the tokens of context it may read (its corpus's validation text)."""
    return _context_curve(*checkpoint_version(ref), max_targets)


def ngram_context_curve(spec: CorpusSpec, order: int, max_targets: int):
    """The same for the corpus's Kneser–Ney baseline."""
    return ngram_context_perplexity(cached_ngram(spec, order), cached_corpus(spec).valid, max_targets=max_targets)


# --- word maps (issue 13, item 6): t-SNE or PCA of the most frequent words, once per checkpoint version -----------
@st.cache_data(max_entries=32, show_spinner=False)
def _word_map(path: str, mtime_ns: int, which: str, method: str, n: int, perplexity: float):
    model, _, vocab, _ = cached_checkpoint(path, mtime_ns)
    return word_map(embedding_matrix(model, which), most_frequent_ids(vocab, n), method, perplexity)


def cached_word_map(ref: RunRef, which: str, method: str, n: int, perplexity: float):
    """The WordMap of a run's n most frequent words, with a spinner that says how long t-SNE takes
    (measured on 2 shared cores: about 1.5 s for 300 words, 6 s for 1,000, 14 s for 2,000)."""
    text = (f"t-SNE on {n:,} words: about {max(1, round(n / 200))} s on 2 cores…" if method == "t-SNE"
            else f"PCA on {n:,} words…")
    with st.spinner(text, show_time=True):
        return _word_map(*checkpoint_version(ref), which, method, n, float(perplexity))

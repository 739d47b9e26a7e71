"""The Lecture page's models and numbers: one run per model of the lecture on the agreement corpus (the user's newest
finished one, else the demo shipped with the app), and what each step's figure shows, computed once per checkpoint
version (st.cache_data), so the tour opens at once after its first visit."""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import pandas as pd
import streamlit as st

from appstate.corpus import cached_corpus, cached_ngram, corpus_params
from appstate.home import get_store
from appstate.inspection import context_curve, decay_curves, gate_chain, ngram_context_curve, walkthrough
from appstate.models import ModelRun, cached_checkpoint, checkpoint_version, load_run, run_trace
from lmcore.corpus.batching import batchify
from lmcore.corpus.tokenize import tokenize_line
from lmcore.inspect.memory import LECTURE_ITEMS, accuracy_by_distance, agreement_items, lm_margins, ngram_margins, \
    readable
from lmcore.inspect.sensitivity import unit_sensitivity
from lmcore.lecture import tour
from lmcore.lecture.tour import NGRAM_ORDER, ROSES, ROSES_SOURCE, SLOTS, STEPS, TOUR_CORPUS, Question
from lmcore.nn.architectures import count_params, model_name
from lmcore.runs.catalog import RunRef, inspectable_runs, newest_finished
from lmcore.training.checkpoints import CheckpointError
from lmcore.training.trainer import EVAL_BATCH, evaluate
from lmcore.viz.style import DEMO_ARCHITECTURES

__all__ = ["CONTEXT_TARGETS", "NGRAM_ORDER", "Question", "ROSES", "ROSES_SOURCE", "STEPS", "TourModel", "bptt_step",
           "chain_step", "colour_keys", "context_step", "decay_step", "ffnn_says", "gru_step", "lstm_step",
           "markov_step", "ngram_name", "rnn_says", "roses_step", "size_table", "table_step", "tour_models", "try_it"]
CONTEXT_TARGETS = 2000  # validation predictions per k: the curves' shape in seconds (the page's own default is 5,000)
DECAY_K, DECAY_POSITIONS = 40, 16
BPTT = dict(hidden=8, tau=6, seed=0, scale=0.5)


@dataclass
class TourModel:
    slot: str         # "ffnn", "rnn", "lstm", "gru"
    name: str         # the model's one name: "FFNN n=5", "σ-RNN", "LSTM"
    run: ModelRun

    @property
    def own(self) -> bool:
        return not self.run.ref.is_demo


# One colour per model of the tour, distinct whatever runs fill the slots (run keys hashed to eight colours collide:
# a user's #1 and two demos all came red), and each the colour its demo has on every other page (run_colour).
SLOT_COLOURS = {slot: DEMO_ARCHITECTURES.index("elman" if slot == "rnn" else slot)
                for slot in ("ffnn", "rnn", "lstm", "gru")}


def colour_keys(models: dict[str, "TourModel"]) -> dict[str, int]:
    """Each tour model's name -> its colour's place, for the figures' run_keys (the n-gram stays grey)."""
    return {m.name: SLOT_COLOURS[m.slot] for m in models.values()}


def _tour_refs() -> dict[str, RunRef]:
    """Each slot's run: the user's newest finished run of that architecture on the tour's corpus, else its demo."""
    refs = inspectable_runs(get_store())
    mine = [r for r in refs if not r.is_demo and r.corpus == TOUR_CORPUS and _reads_words(r)]
    demos = {r.key: r for r in refs if r.is_demo}
    chosen = {}
    for slot, (_, archs) in SLOTS.items():
        ref = newest_finished(mine, archs) or demos.get(f"demo:agreement-{'elman' if slot == 'rnn' else slot}")
        if ref is not None:
            chosen[slot] = ref
    return chosen


def _reads_words(ref: RunRef) -> bool:
    """A run whose tokens are words: the roses sentence and the agreement probe mean nothing to a char-level one."""
    try:
        return cached_checkpoint(*checkpoint_version(ref))[1].corpus.tokenizer in ("word", "words")
    except (CheckpointError, OSError):
        return False


def tour_models() -> dict[str, TourModel]:
    out = {}
    for slot, ref in _tour_refs().items():
        run = load_run(ref)
        out[slot] = TourModel(slot, model_name(run.cfg.model), run)
    return out


def _tokens(run: ModelRun, text: str = ROSES) -> list[str]:
    return tokenize_line(text, run.cfg.corpus.tokenizer, run.cfg.corpus.lowercase)


def ngram_name() -> str:
    return f"Kneser–Ney {NGRAM_ORDER}-gram"


# --- the numbers of each step --------------------------------------------------------------------------------
@st.cache_data(max_entries=16, show_spinner=False)
def _word_probabilities(path: str, mtime_ns: int, text: str) -> pd.DataFrame:
    model, cfg, vocab, _ = cached_checkpoint(path, mtime_ns)
    return tour.word_probabilities(model, vocab, tokenize_line(text, cfg.corpus.tokenizer, cfg.corpus.lowercase))


def chain_step(m: TourModel):
    probs = _word_probabilities(*checkpoint_version(m.run.ref), ROSES)
    return probs, *tour.chain_says(probs, m.name)


@st.cache_data(max_entries=16, show_spinner=False)
def _agreement(path: str, mtime_ns: int, name: str) -> pd.DataFrame:
    model, _, vocab, _ = cached_checkpoint(path, mtime_ns)
    kept = readable(agreement_items("valid"), vocab)
    return accuracy_by_distance(kept, lm_margins(model, vocab, kept), name)


@st.cache_data(max_entries=4, show_spinner=False)
def _ngram_agreement(spec, order: int, name: str) -> pd.DataFrame:
    kn, vocab = cached_ngram(spec, order), cached_corpus(spec).vocab
    kept = readable(agreement_items("valid"), vocab)
    return accuracy_by_distance(kept, ngram_margins(kn, vocab, kept), name)


def markov_step(models: dict[str, TourModel]):
    """Agreement by distance for the n-gram (and the FFNN and LSTM beside it, faint in the text)."""
    spec = models["lstm"].run.cfg.corpus
    tables = [_ngram_agreement(spec, NGRAM_ORDER, ngram_name())]
    tables += [_agreement(*checkpoint_version(models[s].run.ref), models[s].name)
               for s in ("ffnn", "lstm") if s in models]
    table = pd.concat(tables, ignore_index=True)
    return table, *tour.markov_says(table, ngram_name())


def context_step(models: dict[str, TourModel], slots: tuple[str, ...]):
    """Context-use curves of these models and the n-gram's perplexity on the same targets."""
    curves = {models[s].name: context_curve(models[s].run.ref, CONTEXT_TARGETS) for s in slots if s in models}
    baseline = ngram_context_curve(models["lstm"].run.cfg.corpus, NGRAM_ORDER, CONTEXT_TARGETS)
    return curves, baseline


ROSE_ITEMS = tuple(replace(it, prefix=tuple("rose" if w == "roses" else w for w in it.prefix)) for it in LECTURE_ITEMS)


@st.cache_data(max_entries=16, show_spinner=False)
def _roses_margins(path: str, mtime_ns: int) -> list[list[float]]:
    model, _, vocab, _ = cached_checkpoint(path, mtime_ns)
    return [lm_margins(model, vocab, items).tolist() for items in (LECTURE_ITEMS, ROSE_ITEMS)]


@st.cache_data(max_entries=4, show_spinner=False)
def _ngram_roses(spec, order: int) -> list[list[float]]:
    kn, vocab = cached_ngram(spec, order), cached_corpus(spec).vocab
    return [ngram_margins(kn, vocab, items).tolist() for items in (LECTURE_ITEMS, ROSE_ITEMS)]


def roses_step(models: dict[str, TourModel]):
    """log P(are) − log P(is) at the verb of the lecture's four sentences, and of the same with "rose": the n-gram,
    the FFNN, the LSTM."""
    rows = {ngram_name(): _ngram_roses(models["lstm"].run.cfg.corpus, NGRAM_ORDER)}
    rows.update({models[s].name: _roses_margins(*checkpoint_version(models[s].run.ref)) for s in ("ffnn", "lstm")
                 if s in models})
    margins = pd.DataFrame([{"model": name, "subject": subject, "distance": it.distance, "margin": v}
                            for name, both in rows.items() for subject, values in zip(("roses", "rose"), both)
                            for it, v in zip(LECTURE_ITEMS, values)])
    return margins, *tour.roses_says(margins)


def bptt_step():
    tokens = ROSES.split()
    t = len(tokens) - 2
    walk = walkthrough(tokens, inspect_t=t, **BPTT)
    return walk, tour.bptt_says(walk, t, BPTT["tau"])


def decay_step(models: dict[str, TourModel]):
    curves = {models[s].name: decay_curves(models[s].run.ref.checkpoint, DECAY_K, DECAY_POSITIONS)[0]
              for s in ("rnn", "lstm") if s in models}
    said, q = tour.decay_says(curves, models["rnn"].name, models["lstm"].name)
    return curves, said, q


def lstm_step(m: TourModel):
    """Graves' Fig. 4.4 of the LSTM on the roses, up to "are", for the unit that shows the lecture's claim best
    (tour.holding_unit), and what it shows."""
    tokens = _tokens(m.run)
    verb = tokens.index("are")
    tr = run_trace(m.run.ref, tokens)
    at_verb = unit_sensitivity(m.run.model, m.run.vocab.encode(tokens[:verb + 1]), ROSES_SOURCE, verb, 0)
    unit = tour.holding_unit(at_verb, tr.layers[0]["f"], tr.layers[0]["i"], ROSES_SOURCE, verb)
    chain = gate_chain(m.run, tokens, ROSES_SOURCE, 0, verb + 1, 0, unit)
    gates = {g: tr.layers[0][g][:, unit] for g in "ifoc"}
    return tokens[:verb + 1], chain, *tour.lstm_says(chain.shading, tokens, gates, unit, verb)


@st.cache_data(max_entries=16, show_spinner=False)
def _valid_ppl(path: str, mtime_ns: int) -> float:
    model, cfg, vocab, _ = cached_checkpoint(path, mtime_ns)
    corpus = cached_corpus(cfg.corpus)
    ids = vocab.encode(corpus.vocab.decode(corpus.valid))
    return math.exp(evaluate(model, batchify(ids, EVAL_BATCH), cfg.train.bptt))


def size_table(models: dict[str, TourModel]) -> pd.DataFrame:
    """Every model of the tour and the n-gram: parameters and validation perplexity, on the tour's corpus."""
    spec = models["lstm"].run.cfg.corpus
    corpus = cached_corpus(spec)
    rows = [{"model": ngram_name(), "parameters": None, "run": "fitted on the training split",
             "valid ppl": cached_ngram(spec, NGRAM_ORDER).perplexity(corpus.valid)}]
    for m in models.values():
        rows.append({"model": m.name, "parameters": count_params(m.run.cfg.model, len(m.run.vocab)),
                     "run": m.run.ref.label, "valid ppl": _valid_ppl(*checkpoint_version(m.run.ref))})
    return pd.DataFrame(rows)


def gru_step(models: dict[str, TourModel]):
    table = size_table(models)
    rows = table[table["model"].isin([models["lstm"].name, models["gru"].name])].copy()
    rows["model"] = rows["model"].map({models["lstm"].name: "LSTM", models["gru"].name: "GRU"})
    return rows, tour.gru_says(rows)


def table_step(models: dict[str, TourModel]):
    table = size_table(models)
    return table, *tour.table_says(table)


# --- "try it": the page that shows the same thing, in the same state -------------------------------------------
def try_it(step: str, models: dict[str, TourModel]) -> tuple[str, dict[str, str]]:
    """(page, query parameters) that open the page a step's figure comes from with the step's runs and text."""
    key = {slot: m.run.ref.key for slot, m in models.items()}
    keys = lambda *slots: ",".join(key[s] for s in slots if s in key)
    roses = ROSES
    agreement = corpus_params(models["lstm"].run.cfg.corpus)
    links = {
        "chain": ("views/next_word.py", {"run": key["lstm"], "nw_source": "type my own", "nw_typed": roses,
                                         "nw_t": str(roses.split().index("are") - 1)}),
        "markov": ("views/memory.py", {"runs_view": keys("ffnn", "lstm"), "mem_order": str(NGRAM_ORDER),
                                       "mem_sentences": "the agreement corpus (validation split)"}),
        "ffnn": ("views/memory.py", {"runs_view": keys("ffnn"), "mem_context": "1",
                                     "mem_targets": str(CONTEXT_TARGETS)}),
        "rnn": ("views/memory.py", {"runs_view": keys("ffnn", "rnn", "lstm", "gru"), "mem_context": "1",
                                    "mem_targets": str(CONTEXT_TARGETS)}),
        "roses": ("views/memory.py", {"runs_view": keys("ffnn", "lstm"),
                                      "mem_sentences": "my own (prefix, correct, wrong, distance)"}),
        "bptt": ("views/bptt.py", {"text": roses, "tau": str(BPTT["tau"]), "hidden": str(BPTT["hidden"]),
                                   "seed": str(BPTT["seed"]), "t": str(len(roses.split()) - 2)}),
        "vanish": ("views/gradients.py", {"decay_runs": keys("rnn", "lstm"), "k": str(DECAY_K),
                                          "pos": str(DECAY_POSITIONS)}),
        "lstm": ("views/gates.py", {"gates_elman": key.get("rnn", ""), "gates_lstm": key["lstm"],
                                    "gates_gru": key.get("gru", ""), "text_source": "type my own",
                                    "text_typed": roses, "src": str(ROSES_SOURCE), "g_unit": "keeper unit"}),
        "gru": ("views/train.py", {**agreement, "n": "2", "preset1": "LSTM", "preset2": "GRU"}),
        "table": ("views/train.py", {**agreement, "n": "4", "preset1": "lecture RNN", "preset2": "LSTM",
                                     "preset3": "GRU", "preset4": "FFNN"}),
    }
    return links[step]


def ffnn_says(curves: dict, ffnn: TourModel, baseline: float):
    return tour.ffnn_says(curves, ffnn.name, ffnn.run.cfg.model.window, baseline, ngram_name())


def rnn_says(curves: dict, models: dict[str, TourModel]):
    recurrent = [models[s].name for s in ("rnn", "lstm", "gru") if s in models]
    ffnn = models.get("ffnn")
    return tour.rnn_says(curves, recurrent, ffnn.name if ffnn else None, ffnn.run.cfg.model.window if ffnn else 5)

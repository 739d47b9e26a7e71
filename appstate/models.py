"""The runs a page looks inside: choosing them (the choice kept in the URL), loading their checkpoints once, the
opening every page about one model shares (a run, its equations, a text), and its trace of that text.

Imports torch (through the checkpoints): only the pages about models import this module."""
from __future__ import annotations

from dataclasses import dataclass, field

import streamlit as st

from appstate.corpus import cached_corpus, example_text
from appstate.home import get_store
from appstate.text import MISSING, md
from appstate.widgets import URL, follow_default
from lmcore.corpus.tokenize import UNK, tokenize, tokenize_line
from lmcore.corpus.vocab import Vocab
from lmcore.inspect.texts import unknown_tokens
from lmcore.inspect.trace import trace
from lmcore.lecture import notation
from lmcore.nn.architectures import RECURRENT
from lmcore.nn.model import RNNLM
from lmcore.runs.catalog import RunRef, inspectable_runs, newest_finished, newest_lineup
from lmcore.training.checkpoints import CheckpointError, load_checkpoint
from lmcore.training.config import RunConfig


# What a page about the state through time says about the runs its choosers leave out (one caption line).
NOT_LISTED = ("The feedforward model (FFNN) is not listed: it carries no state through time, so it has no {what}; "
              "its context is the fixed window of the n − 1 previous words (see Markov vs memory).")


def not_listed(what: str, container=st) -> None:
    """The caption of a page whose choosers list only RECURRENT runs: why the FFNN is not among them."""
    container.caption(NOT_LISTED.format(what=what))


@dataclass
class ModelRun:
    """A run a page looks inside: the chooser's choice, its loaded model, config and vocabulary, and (once the
    page has asked for one) the tokens of the text it reads."""
    ref: RunRef
    model: RNNLM
    cfg: RunConfig
    vocab: Vocab
    tokens: list[str] = field(default_factory=list)


@st.cache_resource(max_entries=16)
def cached_checkpoint(path: str, mtime_ns: int):
    """(model, cfg, vocab, meta) of a checkpoint file, loaded once per version of it for all sessions."""
    return load_checkpoint(path)


def checkpoint_version(ref: RunRef) -> tuple[str, int]:
    """The arguments of cached_checkpoint (and of the caches keyed like it) for a run's checkpoint."""
    return str(ref.checkpoint), ref.checkpoint.stat().st_mtime_ns


def load_run(ref: RunRef) -> ModelRun:
    """A run's latest checkpoint, loaded once per file version. One that is gone, truncated or damaged stops
    the page with a message."""
    try:
        model, cfg, vocab, _ = cached_checkpoint(*checkpoint_version(ref))
    except (CheckpointError, OSError) as err:
        st.error(f"Run {md(ref.label)} cannot be loaded: {md(err)}")
        st.stop()
    return ModelRun(ref, model, cfg, vocab)


def pick_run(label: str = "Run", key: str = "run", archs: tuple[str, ...] | None = None,
             default: str | None = None, fallback: str | None = None, container=st) -> RunRef | None:
    """A run chooser over the store's runs and the demo runs; the choice is kept in the URL.

    Without a choice in the URL: `default`, else the user's newest finished run (of these architectures),
    else `fallback` (a demo), else the newest run."""
    refs = [r for r in inspectable_runs(get_store()) if archs is None or r.arch in archs]
    if not refs:
        container.info("No run to inspect yet: train one on the Train page.")
        return None
    keys = [r.key for r in refs]
    newest = newest_finished(refs)
    wanted = st.query_params.get(key) or default or (newest.key if newest else fallback)
    index = keys.index(wanted) if wanted in keys else 0
    chosen = container.selectbox(label, keys, index=index, format_func=lambda k: refs[keys.index(k)].label,
                                 key=f"pick_{key}")
    st.query_params[key] = chosen
    ref = refs[keys.index(chosen)]
    if ref == newest:
        kind = "" if not archs else " recurrent" if set(archs) == set(RECURRENT) else f" {md(label)}"
        container.caption(f"Showing {md(ref.name)} ({md(ref.corpus_name)}), your newest finished{kind} run; "
                          "pick another above.")
    return ref


def pick_model(label: str = "Run", key: str = "run", archs: tuple[str, ...] | None = None,
               default: str | None = None, fallback: str | None = None, container=st) -> ModelRun | None:
    """pick_run, then its model loaded; None when there is no run to choose."""
    ref = pick_run(label, key, archs, default, fallback, container)
    return None if ref is None else load_run(ref)


def pick_runs(label: str = "Runs", key: str = "runs_view", max_runs: int = 4, archs: tuple[str, ...] | None = None,
              container=st) -> list[RunRef]:
    """Several runs (of these architectures) to compare on one figure; the choice is kept in the URL.

    Without one: the user's newest finished runs on one corpus (up to 3, those trained side by side),
    else the agreement demos (as many as fit: Markov vs memory compares FFNN, σ-RNN, GRU and LSTM)."""
    refs = [r for r in inspectable_runs(get_store()) if archs is None or r.arch in archs]
    keys = [r.key for r in refs]
    lineup = newest_lineup(refs, min(3, max_runs))
    wanted = [k for k in st.query_params.get(key, "").split(",") if k in keys]
    default = wanted or [r.key for r in lineup] \
        or [r.key for r in agreement_demos(refs, max_runs)] or keys[:2]  # the LSTM among them
    chosen = container.multiselect(label, keys, default=default, max_selections=max_runs,
                                   format_func=lambda k: refs[keys.index(k)].label, key=f"pick_{key}")
    st.query_params[key] = ",".join(chosen)
    if lineup and chosen == [r.key for r in lineup]:
        runs = "newest finished run" if len(lineup) == 1 else f"{len(lineup)} newest finished runs"
        container.caption(f"Showing your {runs} on {md(lineup[0].corpus_name)}; pick others above.")
    return [refs[keys.index(k)] for k in chosen]


def agreement_demos(refs: list[RunRef] | None = None, max_runs: int = 4) -> list[RunRef]:
    """The demo runs on the agreement corpus (shipped with the app), of these refs or of every inspectable run."""
    refs = inspectable_runs(get_store()) if refs is None else refs
    return [r for r in refs if r.is_demo and "agreement" in r.key][:max_runs]


def open_run(label: str = "Run", key: str = "run", text_key: str | None = None, equations: bool = True,
             too_short: str = "Type at least two tokens.", archs: tuple[str, ...] | None = None) -> ModelRun | None:
    """The opening of a page about one model: the run chooser (over these architectures), the run loaded, its
    equations (unless the page shows them elsewhere), then, with a text_key, the text to read (pick_text). None
    when the page should stop: no run to inspect, or a text of fewer than two tokens (each said on the page)."""
    run = pick_model(label, key, archs)
    if run is None:
        return None
    if equations:
        show_equations(run.cfg)
    if text_key is not None:
        run.tokens = pick_text(run.cfg, run.vocab, key=text_key)
        if len(run.tokens) < 2:
            st.info(too_short)
            return None
    return run


def example_text_for(runs: list[ModelRun]) -> str:
    """The default text of a figure over several runs: from the corpus most of the user's own runs among them
    were trained on (of the demos' when none is the user's)."""
    specs = [r.cfg.corpus for r in runs if not r.ref.is_demo] or [r.cfg.corpus for r in runs]
    return example_text(max(specs, key=specs.count)) if specs else ""


def tokens_of(text: str, cfg: RunConfig) -> list[str]:
    """A typed line as this run's tokenizer reads it."""
    return tokenize_line(text, cfg.corpus.tokenizer, cfg.corpus.lowercase)


def unknown_caption(tokens: list[str], vocab: Vocab, container=st) -> None:
    """How much of a typed text this run reads as <unk>, naming a few of those tokens."""
    count, total, words = unknown_tokens(tokens, vocab)
    if not total:
        return
    if not count:
        container.caption(f"All {total} tokens are in this run's vocabulary.")
        return
    shown = ", ".join(f"“{md(w[:30])}”" for w in words[:5]) + (", …" if len(words) > 5 else "")
    container.caption(f"{count} of {total} tokens ({count / total:.0%}) are not in this run's vocabulary and read "
                      f"as {md(UNK)}: {shown}")


def pick_text(cfg: RunConfig, vocab: Vocab, key: str = "text", default_length: int = 200, max_length: int = 2000,
              container=st, typed_first: bool = False) -> list[str]:
    """Tokens to look at: a stretch of the run's validation text, or text the user types (its sentence at first).
    Its fields are in the URL (parameters {key}_source, {key}_typed, {key}_start, {key}_len)."""
    source = container.radio("Text", ["from the validation split", "type my own"], horizontal=True,
                             index=1 if typed_first else 0, key=f"{key}_source", bind=URL)
    if source == "type my own":
        follow_default(f"{key}_typed", example_text(cfg.corpus), fill=True)
        typed = container.text_area("Text", key=f"{key}_typed", max_chars=20_000, bind=URL)
        tokens = tokenize(typed.splitlines(), cfg.corpus.tokenizer, cfg.corpus.lowercase)
        unknown_caption(tokens, vocab, container)
        return tokens
    corpus = cached_corpus(cfg.corpus)
    valid = corpus.valid
    c1, c2 = container.columns(2)
    length = int(c2.number_input("Tokens", 2, max(2, min(max_length, valid.size)),
                                 min(default_length, valid.size), key=f"{key}_len", bind=URL))
    start = int(c1.number_input("Start at token", 0, max(0, valid.size - length), 0, step=50, key=f"{key}_start",
                                bind=URL))
    return corpus.vocab.decode(valid[start:start + length])


def show_equations(cfg: RunConfig, expanded: bool = False) -> None:
    """The lecture's equations for this run's model, and the PyTorch tensor behind each symbol."""
    with st.expander("Equations, in the lecture's notation", expanded=expanded):
        for eq in notation.equations(cfg.model):
            st.latex(eq)
        st.dataframe(notation.parameter_map(cfg.model), hide_index=True, width="stretch", placeholder=MISSING)


@st.cache_data(max_entries=32, show_spinner="Tracing…")
def _trace(path: str, mtime_ns: int, tokens: tuple[str, ...], top_k: int):
    model, cfg, vocab, _ = cached_checkpoint(path, mtime_ns)
    return trace(model, vocab.encode(list(tokens)), vocab, top_k)


def run_trace(ref: RunRef, tokens: list[str], top_k: int = 10):
    """The run's trace of these tokens, computed once per (checkpoint, text)."""
    return _trace(*checkpoint_version(ref), tuple(tokens), top_k)

"""The one module between the pages and lmcore: the run store, the chosen corpus, cached loaders,
and the URL (query parameters) that makes a view shareable. Pages import this, never each other."""
from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import threading
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import streamlit as st

from lmcore.corpus.builtin import BUILTIN_CORPORA, DEFAULT_CORPUS
from lmcore.corpus.dataset import BUILTIN_PREFIX, Corpus, CorpusSpec, spec_fingerprint
from lmcore.corpus.loading import load_corpus
from lmcore.corpus.reading import CorpusError, human_size, read_bytes
from lmcore.corpus.tokenize import UNK, detokenize, tokenize
from lmcore.corpus.vocab import Vocab
from lmcore.inspect.texts import example_sentence, unknown_tokens
from lmcore.limits import LimitError, Limits, load_limits
from lmcore.ngram import KneserNeyLM
from lmcore.runs.store import RunStore, default_home

if TYPE_CHECKING:
    from lmcore.runs.catalog import RunRef
    from lmcore.training.config import RunConfig
# Whatever needs torch (models, checkpoints, the job service) is imported where it is used: the first page a
# user opens (Corpus) needs none of it, and torch's import is most of a cold server's first paint.

CORPUS_KEY = "corpus_spec"
MISSING = "—"  # what a table shows in a cell with no value (never "None" or "nan")
# What Streamlit 1.67's markdown honours, measured in chromium (issue 14): markdown, LaTeX ($), HTML entities (&),
# Streamlit's directives (:red[…], :blue-badge[…], :help[…]), a line's list, heading, quote, rule and setext
# markers. A backslash makes each of these characters literal.
_MARKDOWN = re.compile(r"([\\`*_\[\]<>~$#|:!&])")
_LINE_START = re.compile(r"^([ \t]*\d*)([-+=.)])", re.MULTILINE)  # - item, + item, ---, ===, 1. item, 1) item
_INDENT = re.compile(r"^[ \t]+", re.MULTILINE)  # four would start a code block (in a widget's label)
# Some patterns are matched after the escapes are read (or before them, in the raw text), so no backslash stops
# them: GFM's bare links (http://, www., e-mail) and the :smile: / :material/icon: shortcodes. An invisible word
# joiner (U+2060) after the scheme, before www's dot, after an @ and after a shortcode's colon breaks each one.
_TEXT_PATTERN = re.compile(r"https?(?=:)|www(?=\.)|@|:(?=[\w/+-]+:|material/)", re.IGNORECASE)


def md(text) -> str:
    """Any text a user controls (a run or file name, a token, typed text, an error quoting them) made literal
    for everything Streamlit renders as markdown: st.markdown, st.caption, st.error/warning/info/success,
    st.toast, st.spinner, st.progress text, widget, expander, tab and popover labels, radio options and help=.
    Not for selectbox / multiselect options (format_func): those show plain text, backslashes included.
    Where a message is our own markdown with a user's string inside, escape only that string."""
    text = _TEXT_PATTERN.sub("\\g<0>\u2060", str(text).replace("\r\n", "\n").replace("\r", "\n"))
    text = _LINE_START.sub(r"\1\\\2", _MARKDOWN.sub(r"\\\1", text))
    return _INDENT.sub(lambda m: "\u00a0" * len(m.group(0)), text)  # no-break spaces: shown, never a code block


def _build_native() -> None:
    from lmcore.nn import native
    native.build_in_background()


@st.cache_resource
def _store(home: str) -> RunStore:
    # once per server, 5 s after the first page (on two cores the compiler would slow its paint): the first LSTM
    # job then finds the C++ loop built
    timer = threading.Timer(5.0, _build_native)
    timer.daemon = True
    timer.start()
    return RunStore(home)


def get_store() -> RunStore:
    """The store in $LMCORE_HOME (or ~/.lmcore), opened once per data folder.

    The first call in a session (the app's start for that user) marks runs whose job process died
    without reporting (killed, machine restarted) as interrupted. A data folder that cannot be used
    stops the page with a message instead of a traceback."""
    try:
        store = _store(str(default_home()))
        if not st.session_state.get("_interrupted_checked"):
            if store.list_runs(("starting", "running")):  # the job service (and torch) only when it has work
                from lmcore.runs.service import mark_interrupted
                mark_interrupted(store)
            st.session_state["_interrupted_checked"] = True
        return store
    except (OSError, sqlite3.Error) as err:
        st.error(f"The data folder {md(default_home())} cannot be used: {md(err)}. Point LMCORE_HOME at a "
                 "writable folder with free space, then reload.")
        st.stop()


@st.cache_data(ttl=10, show_spinner=False)
def _limits(home: str) -> Limits:
    return load_limits(home)


def limits() -> Limits:
    """The deployment's limits (lmcore.toml in the data folder, or $LMCORE_CONFIG), re-read every 10 s."""
    try:
        return _limits(str(default_home()))
    except LimitError as err:
        st.error(f"The limits file is not usable: {md(err)}")
        st.stop()


@st.cache_resource(max_entries=8)
def _load_corpus(spec_items: tuple, fingerprint: str) -> Corpus:
    return load_corpus(CorpusSpec(**dict(spec_items)))


def cached_corpus(spec: CorpusSpec) -> Corpus:
    """Loaded once per spec (and per upload's content) for all sessions."""
    return _load_corpus(tuple(sorted(asdict(spec).items())), spec_fingerprint(spec))


def uploads_dir() -> Path:
    path = get_store().home / "uploads"
    path.mkdir(exist_ok=True)
    return path


BIG_CORPUS_HINT = ("Train on a bigger file from the command line, which streams it from disk: "
                   "`python -m lmcore train --corpus FILE.txt`")


def save_upload(name: str, data: bytes) -> Path:
    """Check the bytes are text within the upload limit, then keep them under the data folder by content hash.

    The user's file name only contributes letters and digits, so it cannot point outside the folder.
    """
    cap = limits().max_upload_bytes
    if len(data) > cap:
        raise CorpusError(f"{name}: is {human_size(len(data))}, over this server's upload limit of "
                          f"{human_size(cap)} (max_upload_mb in {limits().where()}). {BIG_CORPUS_HINT}")
    read_bytes(data, name)  # raises CorpusError with the reason
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", Path(name).stem)[:40] or "upload"
    path = uploads_dir() / f"{hashlib.sha1(data).hexdigest()[:12]}-{stem}.txt"
    if not path.exists():
        tmp = path.with_suffix(".part")
        tmp.write_bytes(data)
        tmp.replace(path)
    return path


UPLOAD_PREFIX = "upload:"  # how a URL names a kept upload: by its file name, never by a server path
LAST_CORPUS = "last_corpus.json"  # the data folder's last chosen corpus, for a new tab or a bare URL


def allowed_source(source: str) -> bool:
    """Sources a URL may name: a built-in corpus or a file this app saved from an upload."""
    if source.startswith(BUILTIN_PREFIX):
        return source[len(BUILTIN_PREFIX):] in BUILTIN_CORPORA
    try:
        path = Path(source).resolve()
    except (OSError, ValueError):
        return False
    return path.parent == uploads_dir().resolve() and path.is_file()


def kept_uploads() -> list[Path]:
    """Files uploaded to this data folder, newest first."""
    return sorted(uploads_dir().glob("*.txt"), key=lambda p: p.stat().st_mtime, reverse=True)


def upload_label(path: Path | str) -> str:
    return Path(path).name.split("-", 1)[-1]  # drop the content hash


def _url_source(source: str) -> str:
    return source if source.startswith(BUILTIN_PREFIX) else UPLOAD_PREFIX + Path(source).name


def _local_source(value: str) -> str | None:
    """A URL's corpus value as a source this app may read, None when it names nothing kept here."""
    source = str(uploads_dir() / Path(value[len(UPLOAD_PREFIX):]).name) if value.startswith(UPLOAD_PREFIX) else value
    return source if allowed_source(source) else None


def corpus_params(spec: CorpusSpec) -> dict[str, str]:
    """The URL parameters naming a corpus (also for links that open another page on it)."""
    params = {"corpus": _url_source(spec.source), "tokenizer": spec.tokenizer,
              "lowercase": "1" if spec.lowercase else "0", "min_count": str(spec.min_count)}
    if spec.max_vocab:
        params["max_vocab"] = str(spec.max_vocab)
    return params


def _spec_from(params) -> CorpusSpec | None:
    """The spec named by URL parameters (or a saved copy of them), None when they name nothing usable here."""
    source = _local_source(str(params.get("corpus", "")))
    if source is None:
        return None
    default = CorpusSpec()
    try:
        spec = CorpusSpec(source=source, tokenizer=params.get("tokenizer", default.tokenizer),
                          lowercase=params.get("lowercase", "1") == "1",
                          min_count=int(params.get("min_count", default.min_count)),
                          max_vocab=int(params["max_vocab"]) if params.get("max_vocab") else None)
        spec.validate()
    except (ValueError, CorpusError):
        return None
    return spec


def _saved_spec() -> CorpusSpec | None:
    try:
        return _spec_from(json.loads((get_store().home / LAST_CORPUS).read_text()))
    except (OSError, ValueError, AttributeError):
        return None


def corpus_spec() -> CorpusSpec:
    """The chosen corpus: the URL's first (a link opens the view it names), then this tab's choice, then the
    data folder's last choice, then the default. Written back to the URL, so a reload or a copied link keeps it."""
    q = st.query_params
    spec = _spec_from(q) if "corpus" in q else None
    if spec is None and "corpus" in q:  # said once: the URL is rewritten below to the corpus shown
        st.warning(f"The corpus in this link ({md(q.get('corpus'))}) is not kept in this data folder; showing "
                   "another one.")
    spec = spec or st.session_state.get(CORPUS_KEY) or _saved_spec() or CorpusSpec(
        source=f"{BUILTIN_PREFIX}{DEFAULT_CORPUS}")
    st.session_state[CORPUS_KEY] = spec
    _write_url(spec)
    return spec


def _write_url(spec: CorpusSpec) -> None:
    params = corpus_params(spec)
    if "max_vocab" not in params:
        st.query_params.pop("max_vocab", None)
    if any(st.query_params.get(k) != v for k, v in params.items()):
        st.query_params.update(params)


def set_corpus_spec(spec: CorpusSpec) -> None:
    """Choose a corpus for this tab, its URL and (for new tabs) the data folder."""
    st.session_state[CORPUS_KEY] = spec
    _write_url(spec)
    params = corpus_params(spec)
    saved = get_store().home / LAST_CORPUS
    tmp = saved.with_suffix(".part")
    try:
        tmp.write_text(json.dumps(params))
        tmp.replace(saved)
    except OSError:
        pass  # a read-only data folder still works for this tab; only new tabs forget the choice


def corpus_label(spec: CorpusSpec) -> str:
    source = spec.source if spec.source.startswith(BUILTIN_PREFIX) else upload_label(spec.source)
    return f"{source} · {spec.tokenizer}{' · lowercased' if spec.lowercase else ''}"


def selected_run_ids(key: str = "show") -> list[int]:
    raw = st.query_params.get(key, "")
    return [int(x) for x in raw.split(",") if x.strip().isdigit()]


def set_selected_run_ids(ids: list[int], key: str = "show") -> None:
    st.query_params[key] = ",".join(str(i) for i in ids)


# --- models to inspect ------------------------------------------------------------------------
@st.cache_resource(max_entries=16)
def _load_model(path: str, mtime_ns: int):
    from lmcore.training.checkpoints import load_checkpoint
    return load_checkpoint(path)


def load_run(ref: RunRef):
    """(model, cfg, vocab, meta) of a run's latest checkpoint, loaded once per file version.

    A checkpoint that is gone, truncated or damaged stops the page with a message."""
    from lmcore.training.checkpoints import CheckpointError
    try:
        return _load_model(str(ref.checkpoint), ref.checkpoint.stat().st_mtime_ns)
    except (CheckpointError, OSError) as err:
        st.error(f"Run {md(ref.label)} cannot be loaded: {md(err)}")
        st.stop()


def pick_run(label: str = "Run", key: str = "run", archs: tuple[str, ...] | None = None,
             default: str | None = None, fallback: str | None = None, container=st) -> RunRef | None:
    """A run chooser over the store's runs and the demo runs; the choice is kept in the URL.

    Without a choice in the URL: `default`, else the user's newest finished run (of these architectures),
    else `fallback` (a demo), else the newest run."""
    from lmcore.runs.catalog import inspectable_runs, newest_finished
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
        kind = f" {label}" if archs else ""
        container.caption(f"Showing {md(ref.name)} ({md(ref.corpus_name)}), your newest finished{md(kind)} run; "
                          "pick another above.")
    return ref


def run_by_key(key: str) -> RunRef | None:
    """A store or demo run by its key ("run:12", "demo:agreement-lstm"), None when there is none."""
    from lmcore.runs.catalog import inspectable_runs
    return next((r for r in inspectable_runs(get_store()) if r.key == key), None)


DEFAULT_TEXTS = {"builtin:agreement": "the roses in the vase by the door to the kitchen are red ."}  # the lecture's


@st.cache_data(max_entries=16, show_spinner=False)
def _example_text(spec_items: tuple, fingerprint: str) -> str:
    corpus = _load_corpus(spec_items, fingerprint)
    return detokenize(example_sentence(corpus), corpus.spec.tokenizer)


def example_text(spec: CorpusSpec) -> str:
    """The text a page starts on for a run of this corpus: the lecture's sentence on the agreement corpus,
    else a validation line with the fewest <unk> (a sentence of its own corpus, which the run can read)."""
    if spec.source in DEFAULT_TEXTS:
        return DEFAULT_TEXTS[spec.source]
    try:
        return _example_text(tuple(sorted(asdict(spec).items())), spec_fingerprint(spec))
    except (CorpusError, OSError):
        return ""  # the corpus file is gone: the page asks for text


def example_text_for(runs: list[tuple[RunRef, RunConfig]]) -> str:
    """The default text of a figure over several runs: from the corpus most of the user's own runs among them
    were trained on (of the demos' when none is the user's)."""
    specs = [cfg.corpus for ref, cfg in runs if not ref.is_demo] or [cfg.corpus for _, cfg in runs]
    return example_text(max(specs, key=specs.count)) if specs else ""


def follow_default(key: str, default: str) -> None:
    """A text widget's value follows its default (the chosen run's sentence) until the user edits it.

    Call before the widget, which then takes no value: a keyed widget ignores a changed default."""
    marker = f"_default_of_{key}"
    if key not in st.session_state or st.session_state[key] == st.session_state.get(marker):
        st.session_state[key] = default
    st.session_state[marker] = default


def keep_across_pages(key: str) -> None:
    """A keyed widget's value comes back when the user returns to its page (Streamlit forgets the widgets of a
    page left behind); a value in the URL wins. Call before the widget, every run."""
    kept = f"_kept_{key}"
    if key in st.session_state:
        st.session_state[kept] = st.session_state[key]  # as of the end of the last run (the user's latest edit)
    elif kept in st.session_state and key not in st.query_params:
        st.session_state[key] = st.session_state[kept]


def track_default(key: str, default) -> None:
    """A keyed (URL-bound) widget follows a default that changes (the corpus's recipe, the preset's value) until
    the user edits it; on a fresh page the URL's value wins. Call before the widget, which takes value=default."""
    marker = f"_default_of_{key}"
    old = st.session_state.get(marker)
    if key in st.session_state and old is not None and st.session_state[key] == old and default != old:
        st.session_state[key] = default
    st.session_state[marker] = default


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
                             index=1 if typed_first else 0, key=f"{key}_source", bind="query-params")
    if source == "type my own":
        follow_default(f"{key}_typed", example_text(cfg.corpus))
        typed = container.text_area("Text", key=f"{key}_typed", max_chars=20_000, bind="query-params")
        tokens = tokenize(typed.splitlines(), cfg.corpus.tokenizer, cfg.corpus.lowercase)
        unknown_caption(tokens, vocab, container)
        return tokens
    corpus = cached_corpus(cfg.corpus)
    valid = corpus.valid
    c1, c2 = container.columns(2)
    length = int(c2.number_input("Tokens", 2, max(2, min(max_length, valid.size)),
                                 min(default_length, valid.size), key=f"{key}_len", bind="query-params"))
    start = int(c1.number_input("Start at token", 0, max(0, valid.size - length), 0, step=50, key=f"{key}_start",
                                bind="query-params"))
    return corpus.vocab.decode(valid[start:start + length])


@st.cache_data(max_entries=32, show_spinner="Tracing…")
def _trace(path: str, mtime_ns: int, tokens: tuple[str, ...], top_k: int):
    from lmcore.inspect.trace import trace
    model, cfg, vocab, _ = _load_model(path, mtime_ns)
    return trace(model, vocab.encode(list(tokens)), vocab, top_k)


def run_trace(ref: RunRef, tokens: list[str], top_k: int = 10):
    """The run's trace of these tokens, computed once per (checkpoint, text)."""
    return _trace(str(ref.checkpoint), ref.checkpoint.stat().st_mtime_ns, tuple(tokens), top_k)


def show_equations(cfg: RunConfig, expanded: bool = False) -> None:
    """The lecture's equations for this run's model, and the PyTorch tensor behind each symbol."""
    from lmcore.lecture.notation import equations, parameter_map
    with st.expander("Equations, in the lecture's notation", expanded=expanded):
        for eq in equations(cfg.model):
            st.latex(eq)
        st.dataframe(parameter_map(cfg.model), hide_index=True, width="stretch", placeholder=MISSING)


@st.cache_resource(max_entries=4, show_spinner="Fitting the Kneser–Ney baseline…")
def _ngram(spec_items: tuple, fingerprint: str, order: int):
    corpus = _load_corpus(spec_items, fingerprint)
    return KneserNeyLM(order).fit(corpus.train, len(corpus.vocab))


def cached_ngram(spec: CorpusSpec, order: int = 3) -> KneserNeyLM:
    """The n-gram baseline of a corpus, fitted once per spec and order."""
    return _ngram(tuple(sorted(asdict(spec).items())), spec_fingerprint(spec), order)


def pick_runs(label: str = "Runs", key: str = "runs_view", max_runs: int = 4, container=st) -> list[RunRef]:
    """Several runs to compare on one figure; the choice is kept in the URL.

    Without one: the user's newest finished runs on one corpus (up to 3, those trained side by side),
    else the agreement demos."""
    from lmcore.runs.catalog import inspectable_runs, newest_lineup
    refs = inspectable_runs(get_store())
    keys = [r.key for r in refs]
    lineup = newest_lineup(refs, min(3, max_runs))
    wanted = [k for k in st.query_params.get(key, "").split(",") if k in keys]
    default = wanted or [r.key for r in lineup] or [r.key for r in refs if r.is_demo and "agreement" in r.key][:3] \
        or keys[:2]
    chosen = container.multiselect(label, keys, default=default, max_selections=max_runs,
                                   format_func=lambda k: refs[keys.index(k)].label, key=f"pick_{key}")
    st.query_params[key] = ",".join(chosen)
    if lineup and chosen == [r.key for r in lineup]:
        runs = "newest finished run" if len(lineup) == 1 else f"{len(lineup)} newest finished runs"
        container.caption(f"Showing your {runs} on {md(lineup[0].corpus_name)}; pick others above.")
    return [refs[keys.index(k)] for k in chosen]


@st.cache_data(max_entries=64, show_spinner="Measuring gradients through time…")
def decay_curves(path: str, mtime_ns: int, K: int, positions: int):
    """(‖∂ℓ_t/∂h_{t−k}‖, ‖∂h_t/∂h_{t−k}‖_F) curves of one checkpoint on its corpus's validation text."""
    from lmcore.inspect.gradients import jacobian_decay, loss_gradient_decay
    model, cfg, vocab, _ = _load_model(path, mtime_ns)
    corpus = cached_corpus(cfg.corpus)
    ids = vocab.encode(corpus.vocab.decode(corpus.valid[:5000]))
    return (loss_gradient_decay(model, ids, K=K, positions=positions),
            jacobian_decay(model, ids, K=K, positions=min(positions, 8)))


# --- readable curves (issue 13, item 3): the same controls on every page that draws training curves ---
def curve_controls(key: str, log_default: bool = True, smoothing_default: float = 0.0, container=st) -> dict:
    """A log/linear switch and TensorBoard's smoothing slider, kept in the URL as `{key}scale` and
    `{key}smooth`; key is the page's prefix ("cmp_"), since a bound key names the value on every page.
    Returns keyword arguments for lmcore.viz.training.curves_figure (log_y, smoothing)."""
    left, right = container.columns(2)
    scale = left.radio("y axis", ["log", "linear"], index=0 if log_default else 1, horizontal=True,
                       key=f"{key}scale", bind="query-params",
                       help="log: a halving looks the same at 1,000 as at 100, so early and late training both show")
    smoothing = right.slider("Smoothing", 0.0, 0.99, smoothing_default, 0.01, key=f"{key}smooth",
                             bind="query-params",
                             help="TensorBoard's exponential moving average (0: off; 0.9: strong). The raw curve "
                                  "stays faint behind the smoothed one.")
    return {"log_y": scale == "log", "smoothing": float(smoothing)}


# --- Markov vs memory (issue 13, item 1): context use kept per checkpoint, so a link shows it again at once ---
@st.cache_data(max_entries=32, show_spinner=False)
def _context_curve(path: str, mtime_ns: int, max_targets: int):
    from lmcore.inspect.memory import context_perplexity  # only this page needs it
    model, cfg, vocab, _ = _load_model(path, mtime_ns)
    corpus = cached_corpus(cfg.corpus)
    return context_perplexity(model, vocab.encode(corpus.vocab.decode(corpus.valid)), max_targets=max_targets)


def context_curve(ref: RunRef, max_targets: int):
    """Perplexity of the run against the tokens of context it may read (its corpus's validation text)."""
    return _context_curve(str(ref.checkpoint), ref.checkpoint.stat().st_mtime_ns, max_targets)


# --- word maps (issue 13, item 6): t-SNE or PCA of the most frequent words, once per checkpoint version ---
@st.cache_data(max_entries=32, show_spinner=False)
def _word_map(path: str, mtime_ns: int, which: str, method: str, n: int, perplexity: float):
    from lmcore.inspect.embeddings import embedding_matrix, most_frequent_ids, word_map
    model, _, vocab, _ = _load_model(path, mtime_ns)
    return word_map(embedding_matrix(model, which), most_frequent_ids(vocab, n), method, perplexity)


def cached_word_map(ref: RunRef, which: str, method: str, n: int, perplexity: float):
    """The WordMap of a run's n most frequent words, with a spinner that says how long t-SNE takes
    (measured on 2 shared cores: about 1.5 s for 300 words, 6 s for 1,000, 14 s for 2,000)."""
    text = (f"t-SNE on {n:,} words: about {max(1, round(n / 200))} s on 2 cores…" if method == "t-SNE"
            else f"PCA on {n:,} words…")
    with st.spinner(text, show_time=True):
        return _word_map(str(ref.checkpoint), ref.checkpoint.stat().st_mtime_ns, which, method, n, float(perplexity))


# --- hidden states (issue 13, item 5): widgets whose default is proposed from what they depend on ---
def follow_context(key: str, context, default) -> None:
    """A widget's value goes back to its (proposed) default whenever `context`, what the default is computed
    from (the run, the text, …), changes; on the page's first run the URL's value, if any, stands.

    Call before the widget, which must take the same default as its value."""
    marker = f"_context_of_{key}"
    if marker in st.session_state and st.session_state[marker] != context:
        st.session_state[key] = default
    st.session_state[marker] = context


# --- a path through the app (issue 13, item 10): from trained runs to the pages that look inside them ---
def look_inside(runs: list[dict]) -> None:
    """Links to Hidden states (the best finished run), Gates and Gradients (the best run of each architecture)."""
    from lmcore.runs.reports import best_runs
    best = best_runs(runs)
    if not best:
        return
    top = best["all"]
    st.caption(f"Open the inspection pages on the best finished run here, #{top['id']} "
               f"{md(top.cfg.label())} "
               f"(validation perplexity {top['best_valid_ppl']:.1f}); Gates and Gradients side by side on the best run "
               "of each architecture.")
    gates = {f"gates_{family}": f"run:{best[family]['id']}" for family in ("elman", "lstm", "gru") if family in best}
    per_arch = sorted((r for k, r in best.items() if k != "all"), key=lambda r: r["best_valid_ppl"])
    c1, c2, c3 = st.columns(3)
    c1.page_link("views/hidden.py", label="Hidden states: what each unit tracks", icon=":material/grid_on:",
                 query_params={"run": f"run:{top['id']}"})
    c2.page_link("views/gates.py", label="Gates: how long the memory lasts", icon=":material/door_open:",
                 query_params=gates)
    c3.page_link("views/gradients.py", label="Gradients: how far back the error reaches",
                 icon=":material/trending_down:",
                 query_params={"decay_runs": ",".join(f"run:{r['id']}" for r in per_arch)})

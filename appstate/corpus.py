"""The chosen corpus: uploads kept in the data folder, the URL's corpus parameters, the corpus and its n-gram
baseline loaded once per spec, the sentence a model page starts on. No torch: the Corpus page lives on this."""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict
from pathlib import Path

import streamlit as st

from appstate.home import get_store, limits
from appstate.identity import current_person, shared_server
from appstate.text import md
from lmcore.corpus.builtin import BUILTIN_CORPORA, DEFAULT_CORPUS
from lmcore.corpus.dataset import BUILTIN_PREFIX, Corpus, CorpusSpec, spec_fingerprint
from lmcore.corpus.loading import load_corpus
from lmcore.corpus.reading import CorpusError, human_size, read_bytes
from lmcore.corpus.report import corpus_stats_table, preview_tokens, text_sizes
from lmcore.corpus.tokenize import TOKENIZERS, detokenize, tokenize_line
from lmcore.inspect.texts import example_sentence
from lmcore.ngram import KneserNeyLM

__all__ = [
    # the Corpus page's names from lmcore
    "BUILTIN_CORPORA", "BUILTIN_PREFIX", "CorpusError", "CorpusSpec", "TOKENIZERS", "corpus_stats_table",
    "detokenize", "preview_tokens", "tokenize_line",
    # this module's
    "BIG_CORPUS_HINT", "allowed_source", "cached_corpus", "cached_ngram", "corpus_label", "corpus_params",
    "corpus_spec", "example_text", "kept_uploads", "save_upload", "set_corpus_spec", "upload_label", "uploads_dir",
]

CORPUS_KEY = "corpus_spec"
UPLOAD_PREFIX = "upload:"  # how a URL names a kept upload: by its file name, never by a server path
LAST_CORPUS = "last_corpus.json"  # the data folder's last chosen corpus, for a new tab or a bare URL
BIG_CORPUS_HINT = ("Train on a bigger file from the command line, which streams it from disk: "
                   "`python -m lmcore train --corpus FILE.txt`")
DEFAULT_TEXTS = {"builtin:agreement": "the roses in the vase by the door to the kitchen are red ."}  # the lecture's


def _items(spec: CorpusSpec) -> tuple:
    return tuple(sorted(asdict(spec).items()))


@st.cache_resource(max_entries=8)
def _load_corpus(spec_items: tuple, fingerprint: str) -> Corpus:
    return load_corpus(CorpusSpec(**dict(spec_items)))


def cached_corpus(spec: CorpusSpec) -> Corpus:
    """Loaded once per spec (and per upload's content) for all sessions."""
    return _load_corpus(_items(spec), spec_fingerprint(spec))


@st.cache_data(max_entries=16, show_spinner=False)
def _text_sizes(spec_items: tuple, fingerprint: str) -> dict:
    return text_sizes(CorpusSpec(**dict(spec_items)))


def cached_text_sizes(spec: CorpusSpec) -> dict:
    """Each split's tokens, characters and words (bits per character from perplexity), once per corpus version."""
    return _text_sizes(_items(spec), spec_fingerprint(spec))


@st.cache_resource(max_entries=4, show_spinner="Fitting the Kneser–Ney baseline…")
def _ngram(spec_items: tuple, fingerprint: str, order: int):
    corpus = _load_corpus(spec_items, fingerprint)
    return KneserNeyLM(order).fit(corpus.train, len(corpus.vocab))


def cached_ngram(spec: CorpusSpec, order: int = 3) -> KneserNeyLM:
    """The n-gram baseline of a corpus, fitted once per spec and order."""
    return _ngram(_items(spec), spec_fingerprint(spec), order)


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
        return _example_text(_items(spec), spec_fingerprint(spec))
    except (CorpusError, OSError):
        return ""  # the corpus file is gone: the page asks for text


# --- uploads ------------------------------------------------------------------------------------------------------
def uploads_dir() -> Path:
    path = get_store().home / "uploads"
    path.mkdir(exist_ok=True)
    return path


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
    tag = person_tag()
    if tag and tag not in _uploaders(path):  # who uploaded it: "a file uploaded before" lists a person's own only
        with open(path.with_name(path.name + UPLOADERS), "a", encoding="utf-8") as f:
            f.write(tag + "\n")
    return path


UPLOADERS = ".by"  # beside an upload on a classroom server: the tags of the people who uploaded it, a line each


def person_tag() -> str | None:
    """On a classroom server, a short stable tag of who acts (their id, hashed), for what each person keeps apart:
    their uploads and their last corpus. None on a single laptop, where everything is the owner's."""
    return hashlib.sha1(current_person().id.encode()).hexdigest()[:16] if shared_server() else None


def _uploaders(path: Path) -> set[str]:
    try:
        return set(path.with_name(path.name + UPLOADERS).read_text(encoding="utf-8").split())
    except OSError:
        return set()


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
    """Files uploaded to this data folder, newest first: on a classroom server, those this person uploaded (a
    classmate's text is theirs; a run trained on it still shows it to those who open that run)."""
    tag = person_tag()
    kept = [p for p in uploads_dir().glob("*.txt") if tag is None or tag in _uploaders(p)]
    return sorted(kept, key=lambda p: p.stat().st_mtime, reverse=True)


def upload_label(path: Path | str) -> str:
    return Path(path).name.split("-", 1)[-1]  # drop the content hash


def without_server_path(text: str, spec: CorpusSpec) -> str:
    """A message about an uploaded corpus with its file named as the user named it: the reader names the path it
    read ("/srv/lmcore/uploads/6eede229912c-notes.txt: cleaned …"), which a class server must not show."""
    if spec.source.startswith(BUILTIN_PREFIX):
        return text
    return str(text).replace(spec.source, upload_label(spec.source))


def corpus_label(spec: CorpusSpec) -> str:
    source = spec.source if spec.source.startswith(BUILTIN_PREFIX) else upload_label(spec.source)
    return f"{source} · {spec.tokenizer}{' · lowercased' if spec.lowercase else ''}"


# --- the corpus in the URL, the tab and the data folder -----------------------------------------------------------
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


def _last_corpus_file() -> Path:
    """Where the last chosen corpus is kept for new tabs: the data folder's, or on a classroom server each
    person's own (one shared file had opened every student's bare URL on a classmate's upload)."""
    tag = person_tag()
    return get_store().home / (LAST_CORPUS if tag is None else f"last_corpus.{tag}.json")


def _saved_spec() -> CorpusSpec | None:
    try:
        return _spec_from(json.loads(_last_corpus_file().read_text()))
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
    saved = _last_corpus_file()
    tmp = saved.with_suffix(".part")
    try:
        tmp.write_text(json.dumps(params))
        tmp.replace(saved)
    except OSError:
        pass  # a read-only data folder still works for this tab; only new tabs forget the choice

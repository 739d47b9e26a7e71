"""Inspection follows the run: a sentence of the run's own corpus, the <unk> share of typed text, the agreement
probe only where it applies, and the user's newest finished run before the demos."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from lmcore.corpus.dataset import CorpusSpec, source_text
from lmcore.corpus.loading import load_corpus
from lmcore.corpus.tokenize import UNK, tokenize, tokenize_line
from lmcore.corpus.vocab import Vocab
from lmcore.inspect.memory import LECTURE_ITEMS, agreement_items, probe_applies, readable
from lmcore.inspect.texts import example_sentence, unknown_share, unknown_tokens
from lmcore.runs import service
from lmcore.runs.catalog import DEMO_DIR, RunRef, newest_finished, newest_lineup
from lmcore.runs.store import RunStore
from lmcore.training.checkpoints import load_checkpoint

from .conftest import REPO, tiny_config


def as_read(line: str, vocab: Vocab, spec: CorpusSpec) -> list[str]:
    return [t if t in vocab.stoi else UNK for t in tokenize_line(line, spec.tokenizer, spec.lowercase)]


def test_example_sentence_is_the_cleanest_validation_line_of_python_docs():
    spec = CorpusSpec(source="builtin:python-docs", tokenizer="words", lowercase=True, min_count=3)
    corpus = load_corpus(spec)
    tokens = example_sentence(corpus)
    assert 8 <= len(tokens) <= 25 and UNK not in tokens
    valid = [as_read(line, corpus.vocab, spec) for line in source_text(spec.source)["valid"]]
    assert tokens in valid  # one whole line of the validation split
    earlier = valid[:valid.index(tokens)]
    assert not any(8 <= len(line) <= 25 and unknown_share(line, corpus.vocab) == 0 for line in earlier)


def test_example_sentence_without_a_line_in_range_takes_the_nearest(grammar_file: Path):
    spec = CorpusSpec(source=str(grammar_file), tokenizer="word", lowercase=True, min_count=1)
    corpus = load_corpus(spec)
    first_valid = source_text(spec.source)["valid"][0].split()
    assert len(first_valid) == 6 and example_sentence(corpus) == first_valid  # the grammar's lines are short
    assert example_sentence(corpus, min_tokens=2, max_tokens=3) == first_valid[:3]


def test_unknown_tokens_counts_words_not_line_ends():
    vocab = Vocab.build("the cat sat on the mat".split())
    tokens = tokenize(["the dog sat on the rug", "a dog"], "word")
    assert unknown_tokens(tokens, vocab) == (4, 8, ["dog", "rug", "a"])
    assert unknown_tokens(tokenize(["the cat"], "word"), vocab) == (0, 2, [])


def test_agreement_probe_applies_to_the_agreement_demo_only():
    docs = load_checkpoint(DEMO_DIR / "python-docs-lstm.pt")[2]
    agreement = load_checkpoint(DEMO_DIR / "agreement-lstm.pt")[2]
    items = agreement_items("valid")
    assert probe_applies(items, agreement) and len(readable(items, agreement)) == len(items)
    assert not probe_applies(items, docs) and not probe_applies(list(LECTURE_ITEMS), docs)


def ref(key: str, status: str = "", arch: str = "lstm", corpus: str = "builtin:python-docs") -> RunRef:
    return RunRef(key, key, Path("x.pt"), arch, corpus, key, status)


def test_newest_finished_and_lineup_skip_unfinished_runs_and_demos():
    refs = [ref("run:5", "running"), ref("run:4", "done", "gru"), ref("run:3", "done", corpus="builtin:agreement"),
            ref("run:2", "done"), ref("run:1", "failed"), ref("demo:agreement-lstm")]
    assert newest_finished(refs).key == "run:4" and newest_finished(refs, ("lstm",)).key == "run:3"
    assert [r.key for r in newest_lineup(refs)] == ["run:4", "run:2"]  # the newest one's corpus
    assert newest_finished(refs[-1:]) is None and newest_lineup(refs[-1:]) == []


# --- the pages --------------------------------------------------------------------------------------------------
def open_page(page: str) -> AppTest:
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120).run()
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def captions(at: AppTest) -> str:
    return " ".join(c.value for c in at.caption)


@pytest.fixture
def finished_run(lmcore_home: Path, grammar_file: Path) -> int:
    """A tiny LSTM trained to the end in this process, recorded in a fresh store as a job would."""
    store = RunStore(lmcore_home)
    run_id = store.create_run(tiny_config(grammar_file, max_steps=10).to_dict(), status="starting")
    assert service.run_job(store, run_id, threads=1) == "done"
    return run_id


def test_hidden_page_defaults_to_the_newest_finished_run_and_its_sentence(finished_run: int, grammar_file: Path):
    at = open_page("views/hidden.py")
    assert at.selectbox(key="pick_run").value == f"run:{finished_run}"
    assert "your newest finished recurrent run" in captions(at) and f"\\#{finished_run} tiny lstm" in captions(at)
    at.radio(key="hidden_text_source").set_value("type my own").run()
    first_valid = source_text(str(grammar_file))["valid"][0]
    assert at.text_area(key="hidden_text_typed").value == first_valid
    assert "All 6 tokens are in this run's vocabulary" in captions(at)
    at.text_area(key="hidden_text_typed").set_value("the cat <b>purrs</b> .").run()
    assert not at.exception, [e.value for e in at.exception]
    assert "1 of 4 tokens (25%) are not in this run's vocabulary" in captions(at)
    assert "“\\<b\\>purrs\\</b\\>”" in captions(at)  # escaped markdown


def test_memory_page_says_why_the_agreement_probe_does_not_apply(lmcore_home: Path):
    at = open_page("views/memory.py")
    at.multiselect[0].set_value(["demo:python-docs-lstm"]).run()
    assert not at.exception, [e.value for e in at.exception]
    assert len(at.info) == 1 and "agreement probe does not apply" in at.info[0].value
    assert "14 of 1,600" in at.info[0].value and "agreement" in at.info[0].value
    # rather than an empty section: the probe on the agreement demos, and the note says whose curves they are
    assert "Below, meanwhile: the demo runs" in at.info[0].value
    charts = at.get("plotly_chart")
    assert len(charts) == 1  # agreement only: context use waits for its button
    names = {trace.get("name") for trace in json.loads(charts[0].proto.spec)["data"]}
    assert {"demo · LSTM 1×128 · agreement", "demo · GRU 1×128 · agreement"} <= names, names
    assert not any("python-docs" in (name or "") for name in names) and any("gram" in (n or "") for n in names)


def test_memory_page_without_runs_compares_every_agreement_demo_the_lstm_included(lmcore_home: Path):
    """It showed the first three (σ-RNN, FFNN, GRU): Markov vs memory without the LSTM."""
    at = open_page("views/memory.py")
    assert not at.exception, [e.value for e in at.exception]
    assert at.multiselect[0].value == ["demo:agreement-elman", "demo:agreement-ffnn", "demo:agreement-gru",
                                       "demo:agreement-lstm"]


def test_memory_page_defaults_to_the_newest_finished_runs(finished_run: int):
    at = open_page("views/memory.py")
    assert at.multiselect[0].value == [f"run:{finished_run}"]
    assert "Showing your newest finished run on grammar.txt" in captions(at)
    assert "agreement probe does not apply" in at.info[0].value  # the grammar has no "are" or "is"

"""The demo runs in assets/ load, stay small, and still have the perplexity recorded when they were made."""
from __future__ import annotations

import json
import math

import pytest

from lmcore.cli.main import main
from lmcore.corpus.batching import batchify
from lmcore.corpus.loading import load_corpus
from lmcore.paths import DEMO_DIR
from lmcore.runs.catalog import demo_runs
from lmcore.training.checkpoints import load_checkpoint
from lmcore.training.demos import demo_configs
from lmcore.training.trainer import EVAL_BATCH, evaluate


def test_every_demo_is_shipped_and_small():
    names = {p.stem for p in DEMO_DIR.glob("*.pt")}
    assert names == set(demo_configs())
    assert sum(p.stat().st_size for p in DEMO_DIR.glob("*.pt")) < 5e6
    archs = {r.arch for r in demo_runs()}
    assert archs == {"elman", "lstm", "gru", "ffnn"}  # the FFNN on agreement only (demos.SKIPPED)


@pytest.mark.parametrize("name", sorted(demo_configs()))
def test_demo_perplexity_matches_its_record(name):
    model, cfg, vocab, meta = load_checkpoint(DEMO_DIR / f"{name}.pt")
    corpus = load_corpus(cfg.corpus)
    assert corpus.vocab.itos == vocab.itos  # the built-in corpus still tokenizes the same way
    ppl = math.exp(evaluate(model, batchify(corpus.valid, EVAL_BATCH), cfg.train.bptt))
    assert ppl == pytest.approx(meta["valid_ppl"], rel=1e-4)
    assert ppl < len(vocab) / 4  # it learned something: far better than a uniform guess


def test_cli_inspect_trace_json(capsys):
    text = "the roses in the vase are red ."
    assert main(["inspect", "trace", "--run", "demo:agreement-lstm", "--text", text, "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["token"] for r in rows] == text.split()
    assert rows[-1]["p_next"] is None and all(0 < r["p_next"] <= 1 for r in rows[:-1])
    assert set(rows[0]["gates"][0]) == {"i", "f", "g", "o", "c"}
    assert all(0 < r["gates"][0]["f"] < 1 for r in rows)
    # after "are" the model has seen "red"-like adjectives; P(next) of the real next token is reported
    assert rows[5]["next"] == "red" and rows[5]["top"][0][1] >= rows[5]["p_next"]

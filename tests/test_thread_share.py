"""Cores that come free go to the runs still training (lmcore.training.thread_share), and no run's numbers change."""
from __future__ import annotations

import dataclasses
import hashlib
import os

import pytest
import torch

from lmcore.corpus.dataset import CorpusSpec
from lmcore.corpus.loading import load_corpus
from lmcore.nn import native
from lmcore.runs import jobs, service
from lmcore.runs.store import RunStore
from lmcore.training.checkpoints import read_payload
from lmcore.training.device import c_loop_measured_faster
from lmcore.training.presets import run_config
from lmcore.training.thread_share import SAME_UP_TO
from lmcore.training.trainer import TrainHooks, train
from tests.conftest import tiny_config


class Alternating(TrainHooks):
    """Asks for 1 thread and 2 by turns, before every step (2 before the even steps, where the evaluations come);
    notes the threads each step trained on."""

    def __init__(self):
        self.asked, self.stepped_on, self.ppl = 0, set(), []

    def threads(self):
        self.asked += 1
        return 1 if self.asked % 2 else 2

    def on_step(self, step, total_steps, epoch, loss):
        self.stepped_on.add(torch.get_num_threads())

    def on_eval(self, metrics):
        self.ppl.append(metrics["valid_ppl"])


def _trained(cfg, corpus, tmp_path, hooks):
    torch.set_num_threads(1)
    result = train(cfg, tmp_path, hooks, corpus)
    weights = read_payload(tmp_path / "last.pt")["state_dict"]
    digest = hashlib.sha1(b"".join(v.numpy().tobytes() for _, v in sorted(weights.items()))).hexdigest()
    return digest, result, torch.get_num_threads()


@pytest.fixture(scope="module")
def python_docs():
    return load_corpus(CorpusSpec())


# every preset of the Train page at its own size (the products big enough to be shared out between threads), and
# the LSTM with the adaptive softmax
CASES = [("lecture RNN", {}), ("tanh RNN", {}), ("IRNN", {}), ("LSTM", {}), ("GRU", {}), ("FFNN", {}),
         ("LSTM", {"output": "adaptive", "tied": False})]


@pytest.mark.parametrize("preset, model", CASES, ids=[p + (" adaptive" if m else "") for p, m in CASES])
def test_a_run_that_changes_its_threads_every_step_ends_as_one_on_a_single_thread(preset, model, python_docs,
                                                                                  tmp_path):
    """Weights to the bit, every valid perplexity and the test perplexity exactly: evaluation keeps the threads the
    run started with (the GRU's valid perplexity moves in its 8th digit between 1 and 2 threads)."""
    cfg = run_config(preset, CorpusSpec(), model=model, train=dict(max_steps=12, eval_every=6),
                     vocab_size=len(python_docs.vocab))
    hooks = Alternating()
    steady = _trained(cfg, python_docs, tmp_path / "steady", TrainHooks())
    shared = _trained(cfg, python_docs, tmp_path / "shared", hooks)
    assert shared[0] == steady[0]
    assert shared[1].best_valid_ppl == steady[1].best_valid_ppl and shared[1].test_ppl == steady[1].test_ppl
    assert len(hooks.ppl) == 2 and hooks.ppl[-1] == steady[1].best_valid_ppl
    assert shared[2] == 1  # the caller gets its threads back
    assert hooks.stepped_on == ({1, 2} if hooks.asked else {1})  # asked only where it changes the threads
    if native.built() and c_loop_measured_faster():  # every case trains through a path held to it on such a CPU
        assert hooks.asked


def test_a_run_whose_threads_could_change_its_numbers_keeps_them(python_docs, tmp_path):
    """An LSTM variant on the Python cells (FGR: not measured): the hooks are never asked."""
    cfg = run_config("LSTM", CorpusSpec(), model=dict(variant="fgr"), train=dict(max_steps=3),
                     vocab_size=len(python_docs.vocab))
    hooks = Alternating()
    _trained(cfg, python_docs, tmp_path, hooks)
    assert hooks.asked == 0 and hooks.stepped_on == {1}


def _widens() -> bool:
    """Whether runs widen here: only with the C++ softmax (same_on_any_threads), which .ci/run always builds. Without
    it (no compiler, LMCORE_NATIVE=0) the tests below hold that nothing widens."""
    if os.environ.get("LMCORE_REQUIRE_NATIVE") and native.enabled():
        assert native.built(), ".ci/run installed g++, yet lmcore's C++ is not built"
    return native.built()


def test_a_run_never_widens_past_the_threads_measured_equal(grammar_file, tmp_path):
    """MKL's products gave other bytes from 8 threads on: a run that may take 8 trains on SAME_UP_TO."""

    class Eight(Alternating):
        def threads(self):
            self.asked += 1
            return 8

    hooks = Eight()
    torch.set_num_threads(1)
    train(tiny_config(grammar_file, "ffnn", threads=0, max_steps=5), tmp_path, hooks)
    assert hooks.stepped_on == ({SAME_UP_TO} if _widens() else {1}) and torch.get_num_threads() == 1


def test_a_job_has_its_threads_while_every_slot_is_taken_and_the_free_cores_as_runs_end(lmcore_home, grammar_file,
                                                                                       monkeypatch):
    monkeypatch.setattr(jobs, "cores", lambda: 4)
    store = RunStore(lmcore_home)
    cfg = tiny_config(grammar_file).to_dict()
    me = store.create_run(cfg, status="running")
    assert jobs.threads_now(store, 1, 4) == 4  # alone: every core
    other = store.create_run(cfg, status="running")
    assert jobs.threads_now(store, 1, 4) == 2
    waiting = store.create_run(cfg, status="queued")  # a slot is free: it will start, and take its core
    assert jobs.threads_now(store, 1, 4) == 1
    assert jobs.threads_now(store, 2, 2) == 2  # never fewer than the job started with
    store.update_run(waiting, status="done")
    store.update_run(other, status="stopped")
    assert jobs.threads_now(store, 1, 4) == 4
    assert store.get_run(me).status == "running"


def test_a_job_alone_trains_on_every_core_and_says_so_in_its_log(lmcore_home, grammar_file, monkeypatch, capsys):
    """The job's own body (service.run_job, as `python -m lmcore worker` runs it): started on 1 thread of 2 slots, it
    finds no other run and takes both cores; a run whose config pins its threads keeps them."""
    monkeypatch.setattr(jobs, "cores", lambda: 2)
    store = RunStore(lmcore_home)
    cfg = tiny_config(grammar_file, "ffnn", threads=0, max_steps=20)  # the FFNN: its steps on any CPU
    free = store.create_run(cfg.to_dict(), status="starting")
    before = torch.get_num_threads()
    try:
        assert service.run_job(store, free, threads=1, max_parallel=2) == "done"
        widened = "training on 2 threads from here: cores came free" in capsys.readouterr().out
        assert widened == _widens()
        assert torch.get_num_threads() == 1  # the test evaluation and what follows on the job's own threads
        pinned = store.create_run(dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, threads=2)).to_dict(),
                                  status="starting")
        assert service.run_job(store, pinned, threads=1, max_parallel=2) == "done"
        assert "threads from here" not in capsys.readouterr().out
        assert torch.get_num_threads() == 2  # the config's 2, not the queue's 1 a slot
    finally:
        torch.set_num_threads(before)

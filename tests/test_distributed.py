"""DistributedDataParallel on the CPU: 2 ranks (gloo, launched by torchrun) train the same loss curve as
one process with the same global batch.

Why they agree, and to what tolerance: with dropout 0 and the same seed both start from the same weights
(DDP also broadcasts rank 0's); rank r trains columns [4r, 4r + 4) of the 8-stream grid, i.e. exactly the
streams of the single process; each rank's loss is the mean over its T × 4 tokens and DDP averages the
gradients, which is the gradient of the mean over all T × 8 tokens. Only the order of float32 sums differs
(two half sums and a /2 instead of one sum), ~1e-7 relative per step; 20 Adam steps of a tiny model grow
that to ~1e-7 (measured: ≤ 1.3e-7). Tolerance: rel 1e-5, a hundred times the measured gap and far below
any real difference (one step of training moves the loss by ~1e-2).
"""
from __future__ import annotations

import json
import socket
import subprocess

import pytest
import torch

from lmcore.runs.store import RunStore
from tests.conftest import PYTHON, subprocess_env

REL_TOL = 1e-5
FLAGS = ["--tokenizer", "word", "--emb", "16", "--hidden", "16", "--layers", "1", "--dropout", "0", "--bptt", "8",
         "--batch", "8", "--optimizer", "adam", "--lr", "0.01", "--max-steps", "20", "--eval-every", "2",
         "--seed", "7", "--device", "cpu", "--threads", "1", "--json",
         "--no-bf16"]  # float32: the ranks' sums must match one process's to the last digits


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(cmd: list[str], home) -> list[dict]:
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=subprocess_env(home))
    assert out.returncode == 0, out.stderr[-3000:]
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


@pytest.mark.skipif(not torch.distributed.is_available(), reason="this torch build has no torch.distributed")
def test_two_gloo_ranks_match_one_process_with_the_same_global_batch(grammar_file, tmp_path):
    single = run([PYTHON, "-m", "lmcore", "--home", str(tmp_path / "one"), "train", "--corpus", str(grammar_file),
                  *FLAGS], tmp_path / "one")
    ddp = run([PYTHON, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
               "--master_port", str(free_port()), "-m", "lmcore", "--home", str(tmp_path / "two"), "train",
               "--corpus", str(grammar_file), *FLAGS, "--distributed"], tmp_path / "two")
    # rank 0 alone prints and records: one line per evaluation and one "done", as in one process
    assert [r["step"] for r in ddp] == [r["step"] for r in single][:-1] + [20] and ddp[-1]["event"] == "done"
    for a, b in zip(single[:-1], ddp[:-1]):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=REL_TOL)
        assert b["valid_loss"] == pytest.approx(a["valid_loss"], rel=REL_TOL)
    # the store has the one run, its metrics and rank 0's checkpoints; the loss curve went down
    store = RunStore(tmp_path / "two")
    (r,) = store.list_runs()
    assert r["status"] == "done" and r["step"] == 20
    assert len(store.metrics(r["id"])) == 10
    ckpts = store.checkpoints(r["id"])
    assert {"init", "best", "last"} <= set(ckpts)
    # last.pt holds the whole batch's hidden state, gathered from both ranks: resumable in one process
    state = torch.load(ckpts["last"]["path"], weights_only=True)["train_state"]
    assert state["hidden"][0].shape == (1, 8, 16)
    one = torch.load(RunStore(tmp_path / "one").checkpoints(1)["last"]["path"], weights_only=True)["train_state"]
    assert torch.allclose(state["hidden"][0], one["hidden"][0], rtol=1e-4, atol=1e-5)
    # and the same weights after 20 steps
    w_two = torch.load(ckpts["last"]["path"], weights_only=True)["state_dict"]
    w_one = torch.load(RunStore(tmp_path / "one").checkpoints(1)["last"]["path"], weights_only=True)["state_dict"]
    for name, w in w_one.items():
        assert torch.allclose(w_two[name], w, rtol=1e-4, atol=1e-6), name
    assert single[-2]["train_loss"] < single[0]["train_loss"]


@pytest.mark.skipif(not torch.distributed.is_available(), reason="this torch build has no torch.distributed")
def test_an_adaptive_softmax_trains_on_two_ranks_when_a_rank_leaves_a_cluster_unused(tmp_path):
    """Chunks of 2 tokens × 2 streams per rank: most steps some rank has no target in the rarer words' cluster,
    whose weights then get no gradient there (DDP must be told, or it stops at the next step); the two ranks
    still train what one process does."""
    flags = ["--corpus", "builtin:agreement", "--tokenizer", "words", "--output", "adaptive", "--emb", "8",
             "--hidden", "16", "--layers", "1", "--dropout", "0", "--bptt", "2", "--batch", "4", "--optimizer", "adam",
             "--lr", "0.01", "--max-steps", "30", "--eval-every", "10", "--seed", "7", "--device", "cpu",
             "--threads", "1", "--json", "--no-bf16"]
    single = run([PYTHON, "-m", "lmcore", "--home", str(tmp_path / "one"), "train", *flags], tmp_path / "one")
    ddp = run([PYTHON, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
               "--master_port", str(free_port()), "-m", "lmcore", "--home", str(tmp_path / "two"), "train", *flags,
               "--distributed"], tmp_path / "two")
    assert ddp[-1]["event"] == "done" and ddp[-1]["step"] == 30
    for a, b in zip(single[:-1], ddp[:-1]):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=REL_TOL)
        assert b["valid_loss"] == pytest.approx(a["valid_loss"], rel=REL_TOL)

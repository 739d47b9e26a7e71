"""torch.compile of the hand-written cells: the cache and the fall-back, on the CPU.

The tests use dynamo with the "eager" backend: the same tracing, guards and cache as on a GPU, without
waiting for a C++ compiler; the CUDA tests (tests/test_gpu.py) compile for real with inductor.
"""
from __future__ import annotations

import warnings

import pytest
import torch

from lmcore.nn import cells, unroll
from lmcore.nn.architectures import ModelConfig
from lmcore.nn.model import RNNLM
from lmcore.training.trainer import train


@pytest.fixture
def eager_backend(monkeypatch):
    monkeypatch.setattr(unroll, "COMPILE_BACKEND", "eager")


def test_compile_modes():
    assert not unroll.compile_wanted("auto", "cpu") and unroll.compile_wanted("auto", "cuda")
    assert unroll.compile_wanted("on", "cpu") and not unroll.compile_wanted("off", "cuda")
    # auto leaves PyTorch's LSTM cell eager (its compiled step was slower on an H200), not the variants
    assert not unroll.compile_wanted("auto", "cuda", cells.LSTMCell("vanilla"))
    assert unroll.compile_wanted("auto", "cuda", cells.LSTMCell("peephole"))
    assert unroll.compile_wanted("on", "cuda", cells.LSTMCell("vanilla"))
    with pytest.raises(ValueError, match="compile mode"):
        unroll.compile_wanted("always", "cpu")


@pytest.mark.parametrize("arch, kwargs", [("lstm", {"variant": "cifg"}), ("gru", {"gru_convention": "cho"}),
                                          ("elman", {})])
def test_compiled_step_matches_eager_and_compiles_once_per_shape(arch, kwargs, eager_backend):
    torch.manual_seed(0)
    model = RNNLM(ModelConfig(arch=arch, emb=8, hidden=8, layers=2, vocab_size=30, dropout=0.0, **kwargs))
    x = torch.randint(0, 30, (6, 3))
    ref, _, _ = model(x, use_cells=True)
    model.compile = "on"
    out, _, _ = model(x, use_cells=True)
    assert torch.allclose(ref, out, atol=1e-6)
    seen = unroll.compile_stats()
    model(x, use_cells=True)  # same shape: the cached version
    assert unroll.compile_stats() == seen
    model(x[:, :2], use_cells=True)  # a new batch size: one new entry
    assert unroll.compile_stats()["compiled"] == seen["compiled"] + 1


def test_a_failing_compile_falls_back_to_eager_with_one_warning(monkeypatch):
    def broken_backend(gm, example_inputs):
        raise RuntimeError("no compiler on this machine")
    monkeypatch.setattr(unroll, "COMPILE_BACKEND", broken_backend)
    torch.manual_seed(0)
    model = RNNLM(ModelConfig(arch="gru", emb=8, hidden=8, layers=1, vocab_size=30, dropout=0.0))
    x = torch.randint(0, 30, (5, 2))
    with monkeypatch.context() as python_loop:  # the eager step's loop (the C++ loop rounds otherwise)
        python_loop.setenv("LMCORE_NATIVE", "0")
        ref, _, _ = model(x, use_cells=True)
    model.compile = "on"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out, _, _ = model(x, use_cells=True)
    assert torch.equal(ref, out) and any("running it eagerly" in str(w.message) for w in caught)


def test_bf16_without_native_arithmetic_trains_in_float32_with_a_warning(tiny_cfg, tmp_path, monkeypatch):
    import lmcore.training.trainer as trainer
    monkeypatch.setattr(trainer, "bf16_native", lambda device: False)  # a CPU without AVX-512 BF16 or AMX
    with pytest.warns(RuntimeWarning, match="no native bfloat16"):
        with_flag = train(tiny_cfg("lstm", max_steps=8, bf16=True), tmp_path / "a")
    plain = train(tiny_cfg("lstm", max_steps=8), tmp_path / "b")
    assert with_flag.best_valid_ppl == plain.best_valid_ppl  # float32, bit for bit


@pytest.mark.skipif(not __import__("lmcore.training.device", fromlist=["x"]).bf16_native(torch.device("cpu")),
                    reason="this CPU has no native bfloat16 arithmetic (AVX-512 BF16 or AMX)")
def test_bf16_on_a_cpu_that_has_it_trains_within_one_percent_of_float32(tiny_cfg, tmp_path):
    """Issue 19: --bf16 on the CPU as on CUDA; the same steps end within 1% of float32's validation perplexity."""
    cfg = lambda **kw: tiny_cfg("lstm", max_steps=40, **kw)
    half = train(cfg(bf16=True), tmp_path / "a")
    full = train(cfg(), tmp_path / "b")
    assert half.status == full.status == "done"
    assert half.best_valid_ppl != full.best_valid_ppl  # it did run in bf16
    assert half.best_valid_ppl == pytest.approx(full.best_valid_ppl, rel=0.01)


def test_training_with_compile_on_gives_the_eager_run(tiny_cfg, tmp_path, eager_backend):
    cfg = tiny_cfg("gru", max_steps=8)
    cfg.model.backend = "cells"
    a = train(cfg, tmp_path / "a")
    cfg.train.compile = "on"
    b = train(cfg, tmp_path / "b")
    assert b.best_valid_ppl == pytest.approx(a.best_valid_ppl, rel=1e-6)


def test_losses_read_every_few_steps_give_the_same_run_and_the_same_divergence(tiny_cfg, tmp_path, monkeypatch):
    """The GPU's way (losses kept on the device, read every LOSS_CHECK_EVERY steps) tried on the CPU: the same
    metrics, and a divergence reported at the same step with the same last finite loss as when read every step."""
    import lmcore.training.trainer as tr
    runs = {}
    for every in (1, 7):
        monkeypatch.setattr(tr, "CPU_LOSS_CHECK_EVERY", every)
        ok = train(tiny_cfg("gru", max_steps=20, eval_every=10), tmp_path / f"ok{every}")
        bad_cfg = tiny_cfg("elman", optimizer="sgd", lr=1e6, clip=0.0, max_steps=50)
        bad_cfg.model.activation = "relu"
        bad = train(bad_cfg, tmp_path / f"bad{every}")
        runs[every] = (ok, bad)
    (ok1, bad1), (ok7, bad7) = runs[1], runs[7]
    assert ok7.best_valid_ppl == ok1.best_valid_ppl and ok7.step == ok1.step == 20
    assert bad1.status == bad7.status == "diverged"
    assert bad7.message == bad1.message and bad7.step == bad1.step


@pytest.mark.parametrize("native", [True, False])
def test_bf16_is_the_default_only_where_it_pays(native, monkeypatch):
    """One function builds every run (page, CLI): unless told, the fused LSTM on a CPU with native bf16 trains in
    bf16; the GRU, the cells, and a CPU without it stay float32; an explicit choice wins either way."""
    import lmcore.training.device as device
    from lmcore.corpus.dataset import CorpusSpec
    from lmcore.training.presets import run_config
    monkeypatch.setattr(device, "bf16_native", lambda d: native)
    spec = CorpusSpec(source="builtin:python-docs", tokenizer="word")
    assert run_config("LSTM", spec, train={"device": "cpu"}).train.bf16 is native
    assert run_config("GRU", spec, train={"device": "cpu"}).train.bf16 is False
    assert run_config("LSTM", spec, model={"variant": "peephole"}, train={"device": "cpu"}).train.bf16 is False
    assert run_config("LSTM", spec, train={"device": "cpu", "bf16": False}).train.bf16 is False
    assert run_config("GRU", spec, train={"device": "cpu", "bf16": True}).train.bf16 is True


def test_the_cli_turns_bf16_off_and_on(monkeypatch):
    import lmcore.training.device as device
    from lmcore.cli.main import build_parser
    from lmcore.cli.train import train_config
    monkeypatch.setattr(device, "bf16_native", lambda d: True)
    parse = lambda *flags: train_config(build_parser().parse_args(["train", "--preset", "LSTM", *flags]))
    assert parse().train.bf16 is True
    assert parse("--no-bf16").train.bf16 is False
    assert parse("--preset", "GRU").train.bf16 is False
    assert parse("--preset", "GRU", "--bf16").train.bf16 is True

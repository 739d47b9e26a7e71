"""On the CPU in float32, training on backend auto takes lmcore's C++ time loop rather than PyTorch's fused module
where that measured faster (lmcore.training.device.native_pays): PyTorch's LSTM and GRU and the tanh or ReLU Elman
network.
Evaluation keeps the fused module; models without one (the LSTM variants, the σ-RNN) evaluate through the C++ loops
too. The C++ is built in CI (.ci/run installs g++)."""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from lmcore.nn import native
from lmcore.nn.architectures import ModelConfig
from lmcore.nn.model import RNNLM
from lmcore.training import device
from lmcore.training.device import c_loop_measured_faster, native_pays
from lmcore.training.trainer import train

from .conftest import require_compiler

REPO = Path(__file__).resolve().parents[1]
CPU = torch.device("cpu")


@pytest.fixture
def built(monkeypatch):
    """The C++ built, and taken as faster on this CPU whatever it is (c_loop_measured_faster has a test of its
    own), so that every machine checks how training takes it."""
    require_compiler("training keeps the fused module")
    assert native.lstm_steps() is not None, "the C++ time loop did not build"
    monkeypatch.setattr(device, "c_loop_measured_faster", lambda: True)


def test_native_pays_where_it_was_measured_and_nowhere_else(built, monkeypatch):
    assert native.built()
    for model in (ModelConfig(arch="lstm"), ModelConfig(arch="gru"), ModelConfig(arch="elman", activation="tanh"),
                  ModelConfig(arch="irnn")):
        assert native_pays(model, CPU, bf16=False), model
    lstm = ModelConfig(arch="lstm")
    assert not native_pays(ModelConfig(arch="gru", gru_convention="cho"), CPU, bf16=False)  # the cells anyway
    assert not native_pays(replace(lstm, backend="fused"), CPU, bf16=False)  # the user asked for it
    assert not native_pays(lstm, CPU, bf16=True)  # oneDNN's fused LSTM is the fast one in bf16
    assert not native_pays(lstm, torch.device("cuda"), bf16=False)
    assert not native_pays(replace(lstm, variant="peephole"), CPU, bf16=False)  # the cells anyway: nothing to choose
    assert not native_pays(ModelConfig(arch="elman", activation="sigmoid"), CPU, bf16=False)  # likewise
    assert not native_pays(ModelConfig(arch="ffnn", layers=1), CPU, bf16=False)  # no recurrent stack
    assert not native_pays(lstm, CPU, bf16=False, compile_mode="on")  # the cells would step through torch.compile
    monkeypatch.setenv("LMCORE_NATIVE", "0")
    assert not native.built() and not native_pays(lstm, CPU, bf16=False)


def test_the_c_loop_is_taken_only_where_it_measured_faster(monkeypatch):
    capability = torch.backends.cpu.get_cpu_capability()
    assert c_loop_measured_faster() == (capability == "AVX2" and bool(native.OPENMP)), capability
    monkeypatch.setattr(native, "OPENMP", ())  # a build without OpenMP runs its loop on one thread
    assert not c_loop_measured_faster()


def test_asking_whether_it_is_built_never_builds(tmp_path):
    """A job asks at its start; with no library on disk the answer is no, at once, and nothing is compiled."""
    script = "from lmcore.nn import native\nprint(native.built())\n"
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, TORCH_EXTENSIONS_DIR=str(tmp_path)))
    assert done.returncode == 0 and done.stdout.split() == ["False"], done.stderr[-2000:]
    assert not list(tmp_path.rglob("*.so")) and not list(tmp_path.rglob("*.o"))


def _trained(cfg, run_dir: Path) -> dict:
    result = train(cfg, run_dir)
    assert result.status == "done", result
    return torch.load(run_dir / "last.pt", weights_only=True)["state_dict"]


@pytest.mark.parametrize("arch, layers, dropout", [("lstm", 2, 0.3), ("gru", 2, 0.3), ("elman", 1, 0.0),
                                                   ("irnn", 2, 0.2)])
def test_auto_trains_through_the_c_loop(built, tiny_cfg, tmp_path, arch, layers, dropout):
    """Backend auto trains as backend cells does, to the bit (the same C++ loop, the same dropout masks), and
    differs from the fused module's run only by float32 rounding."""
    base = tiny_cfg(arch, max_steps=12)
    weights = {}
    for backend in ("auto", "cells", "fused"):
        cfg = replace(base, model=replace(base.model, backend=backend, layers=layers, dropout=dropout))
        weights[backend] = _trained(cfg, tmp_path / backend)
    gap = lambda a, b: max((weights[a][k] - weights[b][k]).abs().max().item() for k in weights[a])
    assert gap("auto", "cells") == 0.0
    assert 0.0 < gap("auto", "fused") < 1e-4  # were it 0, auto would have run the fused module


def test_evaluation_keeps_the_fused_module(built):
    torch.manual_seed(3)
    model = RNNLM(ModelConfig(arch="lstm", emb=12, hidden=12, layers=2, dropout=0.0, vocab_size=30))
    x = torch.randint(0, 30, (9, 4))
    model.native_training = True
    model.eval()
    with torch.no_grad():
        evaluated = model(x)[0]
        model.native_training = False
        assert torch.equal(evaluated, model(x)[0])
    model.train()
    trained = model(x)[0]
    model.native_training = True
    through_c = model(x)[0]
    assert not torch.equal(trained, through_c)  # training took the other loop
    torch.testing.assert_close(through_c, trained, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cfg, op", [
    (ModelConfig(arch="lstm", variant="peephole", emb=12, hidden=10, layers=2, vocab_size=30), "lmcore_lstm_steps::forward"),
    (ModelConfig(arch="lstm", variant="fgr", emb=12, hidden=10, layers=1, vocab_size=30), "lmcore_lstm_steps::forward"),
    (ModelConfig(arch="elman", activation="sigmoid", emb=12, hidden=10, layers=2, bias=False, vocab_size=30),
     "lmcore_elman_steps::forward"),
])
def test_evaluating_the_cells_steps_through_the_c_loop(built, cfg, op):
    """Models without a fused module (the LSTM variants, the σ-RNN) are evaluated through the C++ loops, as they
    train: the Python loop's dozen operations a step had made an evaluation pass 2.2-2.5× slower."""
    torch.manual_seed(4)
    model = RNNLM(cfg).eval()
    x = torch.randint(0, 30, (9, 4))
    with torch.no_grad(), torch.profiler.profile() as prof:
        out, hidden = model.features(x)
    assert op in {e.name for e in prof.events()}
    with torch.no_grad():  # keeping the gates runs the Python step loop: the reference
        ref, ref_hidden, _ = model.run_cells(model.encoder(x), model.init_hidden(4), keep_gates=True)
    torch.testing.assert_close(out, ref, rtol=2e-5, atol=2e-6)
    for got, want in zip(hidden if isinstance(hidden, tuple) else (hidden,),
                         ref_hidden if isinstance(ref_hidden, tuple) else (ref_hidden,)):
        torch.testing.assert_close(got, want, rtol=2e-5, atol=2e-6)
    model.train()
    with torch.profiler.profile() as prof:  # (training took it before this change: unchanged)
        model.features(x)[0].sum().backward()
    assert op in {e.name for e in prof.events()}


def test_compile_on_keeps_the_fused_module(built, tiny_cfg, tmp_path):
    """With compile on, the cells would step through torch.compile in Python rather than the C++ loop: training
    keeps the fused module, to the bit."""
    base = tiny_cfg("lstm", max_steps=6)
    on = replace(base, train=replace(base.train, compile="on"))
    fused = replace(base, model=replace(base.model, backend="fused"))
    a, b = _trained(on, tmp_path / "on"), _trained(fused, tmp_path / "fused")
    assert all(torch.equal(a[k], b[k]) for k in a)

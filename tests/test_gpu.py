"""The same model on a CUDA GPU: skipped on machines without one (CI), run where one is present."""
from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from lmcore.inspect.trace import trace
from lmcore.nn.architectures import ModelConfig
from lmcore.nn.model import RNNLM
from lmcore.training.checkpoints import load_checkpoint
from lmcore.training.trainer import train

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@cuda
@pytest.mark.parametrize("arch", ["elman", "irnn", "lstm", "gru"])
def test_fused_and_cells_agree_on_cuda(arch):
    torch.manual_seed(0)
    model = RNNLM(ModelConfig(arch=arch, activation="tanh", emb=32, hidden=32, layers=2, vocab_size=100)).cuda().eval()
    x = torch.randint(0, 100, (20, 4), device="cuda")
    fused, _, _ = model(x)
    cells, _, _ = model(x, use_cells=True)
    assert fused.device.type == "cuda"
    assert torch.allclose(fused, cells, atol=1e-4)


@cuda
def test_training_on_cuda_and_reloading_on_cpu(tiny_cfg, tmp_path):
    cfg = tiny_cfg("lstm", device="cuda", max_steps=40)
    result = train(cfg, tmp_path / "run")
    assert result.status == "done" and result.best_valid_ppl < 1e4
    model, loaded_cfg, vocab, meta = load_checkpoint(tmp_path / "run" / "best.pt", "cpu")
    assert next(model.parameters()).device.type == "cpu" and meta["step"] > 0


VARIANT_CASES = [("lstm", dict(variant=v)) for v in ("peephole", "nig", "nfg", "nog", "niaf", "noaf", "cifg", "fgr")] + \
                [("gru", dict(gru_convention="cho"))]


@cuda
@pytest.mark.parametrize("arch, kwargs", VARIANT_CASES, ids=[next(iter(k.values())) for _, k in VARIANT_CASES])
def test_cells_only_variants_on_cuda_match_cpu_and_train(arch, kwargs, tiny_cfg, tmp_path):
    torch.manual_seed(0)
    model = RNNLM(ModelConfig(arch=arch, emb=32, hidden=32, layers=2, vocab_size=100, **kwargs)).eval()
    x = torch.randint(0, 100, (20, 4))
    cpu, _, _ = model(x)
    model.cuda()
    gpu, _, _ = model(x.cuda())
    assert gpu.device.type == "cuda" and torch.allclose(gpu.cpu(), cpu, atol=1e-4)
    names = {"lstm": {"i", "f", "g", "o", "c", "h"}, "gru": {"r", "z", "n", "h"}}[arch]
    assert set(trace(model, x[:, 0].tolist()).layers[0]) == names  # the gate views run on the GPU too
    cfg = tiny_cfg(arch, device="cuda", max_steps=10, compile="off")  # compiled: test_compiled_cells_on_cuda
    cfg.model = replace(cfg.model, layers=2, **kwargs)
    result = train(cfg, tmp_path / "run")
    assert result.status == "done"
    loaded, *_ = load_checkpoint(tmp_path / "run" / "last.pt", "cpu")
    assert loaded.cfg == cfg.with_vocab(result.vocab).model and next(loaded.parameters()).device.type == "cpu"


@cuda
@pytest.mark.parametrize("arch, kwargs", [("lstm", {}), ("lstm", {"variant": "peephole"}), ("gru", {"gru_convention": "cho"})],
                         ids=["lstm", "peephole", "cho"])
def test_compiled_cells_on_cuda_match_eager_and_compile_once_per_shape(arch, kwargs):
    from lmcore.nn import unroll
    torch.manual_seed(0)
    model = RNNLM(ModelConfig(arch=arch, emb=32, hidden=32, layers=2, vocab_size=100, dropout=0.0, **kwargs)).cuda()
    x = torch.randint(0, 100, (20, 4), device="cuda")
    eager, loss_e, _ = model(x, None, x, use_cells=True)
    grads_e = torch.autograd.grad(loss_e, list(model.parameters()), allow_unused=True)
    model.compile = "on"
    compiled, loss_c, _ = model(x, None, x, use_cells=True)
    grads_c = torch.autograd.grad(loss_c, list(model.parameters()), allow_unused=True)
    assert torch.allclose(eager, compiled, atol=1e-4)
    for a, b in zip(grads_e, grads_c):
        assert (a is None) == (b is None) and (a is None or torch.allclose(a, b, atol=1e-4))
    seen = unroll.compile_stats()
    model(x, None, x, use_cells=True)  # the same shape again: reused, nothing new compiled
    assert unroll.compile_stats() == seen and seen["eager"] == 0


@cuda
def test_bf16_autocast_and_compile_train_on_cuda(tiny_cfg, tmp_path):
    cfg = tiny_cfg("lstm", device="cuda", max_steps=30, bf16=True, compile="auto")
    cfg.model = replace(cfg.model, backend="cells")
    result = train(cfg, tmp_path / "run")
    assert result.status == "done" and result.best_valid_ppl < 1e4


@cuda
def test_divergence_on_cuda_is_found_at_the_next_read_with_its_step(tiny_cfg, tmp_path):
    cfg = tiny_cfg("elman", device="cuda", optimizer="sgd", lr=1e6, clip=0.0, max_steps=60)
    cfg.model.activation = "relu"  # as tests/test_train.py's diverging run
    result = train(cfg, tmp_path / "run")
    assert result.status == "diverged" and "at step" in result.message
    assert result.step < 60 and (tmp_path / "run" / "init.pt").exists()

"""The same model on a CUDA GPU: skipped on machines without one (CI), run where one is present."""
from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from lmcore.checkpoint import load_checkpoint
from lmcore.inspect.trace import trace
from lmcore.model import ModelConfig, RNNLM
from lmcore.train import train

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
    cfg = tiny_cfg(arch, device="cuda", max_steps=10)
    cfg.model = replace(cfg.model, layers=2, **kwargs)
    assert train(cfg, tmp_path / "run").status == "done"
    loaded, *_ = load_checkpoint(tmp_path / "run" / "last.pt", "cpu")
    assert loaded.cfg == cfg.model and next(loaded.parameters()).device.type == "cpu"

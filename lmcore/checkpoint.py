"""Checkpoints: weights, the run's whole config and the vocabulary, in one file that loads with
`torch.load(weights_only=True)` (plain tensors, strings and numbers only; no pickled objects)."""
from __future__ import annotations

import os
from pathlib import Path

import torch

from .config import RunConfig
from .corpus.vocab import Vocab
from .model import RNNLM

FORMAT_VERSION = 1


def save_checkpoint(path: Path, model: RNNLM, cfg: RunConfig, vocab: Vocab, meta: dict) -> Path:
    """Write to a temporary file, then rename: a crash never leaves a half-written file under `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT_VERSION,
        "config": cfg.to_dict(),
        "vocab": list(vocab.itos),
        "meta": dict(meta),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(path: Path, device: str | torch.device = "cpu") -> tuple[RNNLM, RunConfig, Vocab, dict]:
    payload = torch.load(Path(path), map_location=device, weights_only=True)
    if payload.get("format") != FORMAT_VERSION:
        raise ValueError(f"{path}: checkpoint format {payload.get('format')!r} is not {FORMAT_VERSION}")
    cfg = RunConfig.from_dict(payload["config"])
    model = RNNLM(cfg.model).to(device)
    model.load_state_dict(payload["state_dict"])
    model.eval()
    return model, cfg, Vocab(payload["vocab"]), payload["meta"]


def read_config(path: Path) -> RunConfig:
    """The run config stored in a checkpoint, without building the model."""
    payload = torch.load(Path(path), map_location="cpu", weights_only=True)
    return RunConfig.from_dict(payload["config"])

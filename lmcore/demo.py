"""The demo runs shipped in assets/demos/, so every view has a model to show on first open.

Rebuilt by `python -m lmcore make-demo` (about two minutes on 2 cores). Small on purpose: one layer of
64 units with the output matrix tied to the embedding keeps each file under 1 MB.
"""
from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path

from .checkpoint import load_checkpoint, save_checkpoint
from .config import RunConfig, TrainConfig
from .corpus.dataset import CorpusSpec
from .model import ModelConfig
from .runs.catalog import DEMO_DIR
from .train import train

SMALL = ModelConfig(emb=64, hidden=64, layers=1, dropout=0.1, tied=True)
CORPORA = {"python-docs": (CorpusSpec("builtin:python-docs", "words", True), 8),
           "agreement": (CorpusSpec("builtin:agreement", "words", True), 2)}  # corpus, epochs
ARCHS = {"elman": (replace(SMALL, arch="elman", activation="sigmoid"), TrainConfig(lr=20.0)),
         "lstm": (replace(SMALL, arch="lstm"), TrainConfig(lr=20.0)),
         "gru": (replace(SMALL, arch="gru"), TrainConfig(lr=20.0))}


def demo_configs() -> dict[str, RunConfig]:
    configs = {}
    for corpus_name, (spec, epochs) in CORPORA.items():
        for arch, (model, train_cfg) in ARCHS.items():
            name = f"{corpus_name}-{arch}"
            configs[name] = RunConfig(name=f"{arch} demo", corpus=spec, model=replace(model),
                                      train=replace(train_cfg, epochs=epochs, seed=1234, device="cpu"))
    return configs


def make_demo(out_dir: Path = DEMO_DIR, only: list[str] | None = None, log=print) -> list[Path]:
    """Train every demo run and keep its best checkpoint as out_dir/NAME.pt."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, cfg in demo_configs().items():
        if only and name not in only:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            result = train(cfg, Path(tmp))
            model, saved_cfg, vocab, meta = load_checkpoint(Path(tmp) / "best.pt")
            meta = {**meta, "test_ppl": result.test_ppl, "demo": name}
            target = save_checkpoint(out_dir / f"{name}.pt", model, saved_cfg, vocab, meta)
        log(f"{name}: valid ppl {result.best_valid_ppl:.2f}, test ppl {result.test_ppl:.2f}, "
            f"{result.params:,} parameters -> {target} ({target.stat().st_size / 1e6:.2f} MB)")
        written.append(target)
    return written

"""The checkpoints one run writes into its folder, and carrying on from its last.pt (the file format itself is
lmcore.training.checkpoints)."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, fields
from pathlib import Path

import torch

from lmcore.corpus.vocab import Vocab
from lmcore.nn.model import RNNLM
from lmcore.training.checkpoints import CheckpointError, model_from_payload, read_payload, save_checkpoint
from lmcore.training.config import RunConfig
from lmcore.training.distributed import DistInfo, gather_columns, shard_columns
from lmcore.training.optimizers import Optimizer
from lmcore.training.run_state import TRAJECTORY_FIELDS, Position, rng_state, set_rng_state
from lmcore.training.stopping import Clock


class RunCheckpoints:
    """init.pt, best.pt, epoch_N.pt (the weights at an epoch's end or a cut) and last.pt (the weights and all it
    takes to carry on from there). Rank 0 alone writes; every rank takes part in last.pt, whose hidden state is
    gathered from all of them."""

    def __init__(self, run_dir: Path, model: RNNLM, optimizer: Optimizer, cfg: RunConfig, vocab: Vocab,
                 on_checkpoint: Callable[[str, Path, dict], None], info: DistInfo):
        self.run_dir, self.model, self.optimizer, self.cfg, self.vocab = run_dir, model, optimizer, cfg, vocab
        self.on_checkpoint, self.info = on_checkpoint, info
        self.last_at: tuple[int, int, int] | None = None  # (step, epoch, chunk) of the latest last.pt

    def write(self, kind: str, meta: dict, state: dict | None = None) -> None:
        if not self.info.main:
            return
        path = save_checkpoint(self.run_dir / f"{kind}.pt", self.model, self.cfg, self.vocab, meta, state)
        self.on_checkpoint(kind, path, meta)

    def write_last(self, pos: Position, hidden, meta: dict, clock: Clock) -> None:
        """last.pt, once per position: the weights and everything needed to carry on from exactly here."""
        where = (pos.step, pos.epoch, pos.chunk)
        if where == self.last_at:
            return
        pos.elapsed = clock.wall()
        parts = list(hidden) if isinstance(hidden, tuple) else [hidden] if hidden is not None else []
        parts = [gather_columns(h, self.info) for h in parts]  # every rank's streams: the whole (L, B, H) state
        state = {"position": asdict(pos), "optimizer": self.optimizer.state_dict(), "rng": rng_state(),
                 "hidden": parts}
        self.write("last", meta, state)
        self.last_at = where

    def restore(self, path: Path, device: torch.device) -> tuple[Position, object]:
        """Load weights, optimizer, position, hidden state and RNG states saved by a run with the same settings."""
        payload = read_payload(path, device)
        state = payload.get("train_state")
        if not isinstance(state, dict):
            raise CheckpointError(f"{path}: holds no training state to resume from (only last.pt does)")
        saved, saved_cfg, _ = model_from_payload(payload, path, device)
        cfg = self.cfg
        differ = [f"model.{f.name}" for f in fields(cfg.model)
                  if getattr(cfg.model, f.name) != getattr(saved_cfg.model, f.name)]
        differ += [f"train.{k}" for k in TRAJECTORY_FIELDS if getattr(cfg.train, k) != getattr(saved_cfg.train, k)]
        differ += ["corpus"] * (saved_cfg.corpus != cfg.corpus)
        if differ:
            raise CheckpointError(f"{path}: was saved with other settings ({', '.join(differ)}); a run resumes only "
                                  "with the settings it started with")
        self.model.load_state_dict(saved.state_dict())
        try:
            self.optimizer.load_state_dict(state["optimizer"])
            pos = Position(**{f.name: state["position"][f.name] for f in fields(Position)})
            hidden = [shard_columns(h.to(device), self.info) for h in state["hidden"]]  # (L, B, H): this rank's columns
            # an LSTM carries (h, c); every other model one tensor: h, or the FFNN's last n − 1 token ids
            hidden = tuple(hidden) if cfg.model.arch == "lstm" and hidden else hidden[0] if hidden else None
            set_rng_state(state["rng"])  # last: building the model above drew random numbers
        except (KeyError, TypeError, ValueError, RuntimeError) as err:
            raise CheckpointError(f"{path}: its training state is incomplete or damaged ({type(err).__name__}: "
                                  f"{err})") from None
        return pos, hidden

"""Checkpoints: weights, the run's whole config and the vocabulary, in one file that loads with
`torch.load(weights_only=True)` (plain tensors, strings and numbers only; no pickled objects).

A checkpoint written for resuming (`last.pt`) also holds the training state: optimizer state,
learning rate, step, position in the epoch, the hidden state carried to the next chunk and the
random number generators' states (see run_checkpoints.py).

Files are written to `NAME.tmp`, flushed to disk, then renamed over `NAME`: a crash or a full disk
never leaves a half-written file under a checkpoint's name, and a leftover `.tmp` is never read.
Every load goes through `read_payload`, which turns a truncated, corrupt or foreign file into a
CheckpointError with a readable message, and checks the tensors against the stored config.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from torch.overrides import TorchFunctionMode

from lmcore.corpus.vocab import Vocab
from lmcore.limits import LimitError, Limits, check_model
from lmcore.nn.architectures import count_params
from lmcore.nn.model import RNNLM, build_model
from lmcore.training.config import RunConfig

FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the file and says why."""


def _cpu(obj):
    """The same nested structure with every tensor detached and on the CPU."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_cpu(v) for v in obj)
    return obj


def save_checkpoint(path: Path, model: RNNLM, cfg: RunConfig, vocab: Vocab, meta: dict,
                    train_state: dict | None = None) -> Path:
    """Write to a temporary file, flush it to disk, then rename: `path` is whole or absent, never partial."""
    path = Path(path)
    payload = {
        "format": FORMAT_VERSION,
        "config": cfg.to_dict(),
        "vocab": list(vocab.itos),
        "meta": dict(meta),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    if train_state is not None:
        payload["train_state"] = _cpu(train_state)
    tmp = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as err:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        raise OSError(err.errno, f"cannot write checkpoint {path}: {err.strerror or err}") from None
    return path


def read_payload(path: Path, device: str | torch.device = "cpu") -> dict:
    """The checkpoint's contents, checked for shape; raises CheckpointError for anything unusable."""
    path = Path(path)
    if path.name.endswith(".tmp"):
        raise CheckpointError(f"{path}: is an unfinished write (a .tmp file), not a checkpoint")
    try:
        with open(path, "rb"):
            pass
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint") from None
    except IsADirectoryError:
        raise CheckpointError(f"{path}: is a folder, not a checkpoint file") from None
    except OSError as err:
        raise CheckpointError(f"{path}: cannot be read ({err.strerror or err})") from None
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
    except Exception as err:  # noqa: BLE001 -- torch raises many types for a truncated or foreign file
        raise CheckpointError(f"{path}: is not a readable checkpoint: truncated, corrupt, or not written by "
                              f"lmcore ({type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''})"
                              ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT_VERSION:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(f"{path}: checkpoint format {found!r} is not {FORMAT_VERSION}")
    for key, kind in (("config", dict), ("vocab", list), ("meta", dict), ("state_dict", dict)):
        if not isinstance(payload.get(key), kind):
            raise CheckpointError(f"{path}: checkpoint lacks its {key}")
    if not all(isinstance(s, str) for s in payload["vocab"]):
        raise CheckpointError(f"{path}: checkpoint vocabulary holds something other than strings")
    return payload


def model_from_payload(payload: dict, path: Path, device: str | torch.device = "cpu",
                       limits: Limits | None = None) -> tuple[RNNLM, RunConfig, Vocab]:
    """Build the model the config describes and load the weights into it.

    The config is checked against the file's tensors and the limits before anything is allocated: sizes come
    from the file, so a crafted one could otherwise ask for terabytes, or a τ of -5 (a perplexity of 1.00)."""
    cfg = _checked_config(payload, Path(path), limits)
    got = payload["state_dict"]
    with torch.device("meta"), _ShapesOnly():  # the shapes the config implies, with no memory behind them
        expected = build_model(cfg.model).state_dict()
    _check_tensors(got, expected, Path(path))  # so the model built next is no bigger than the file
    model = build_model(cfg.model)
    model.load_state_dict(got)
    return model.to(device), cfg, Vocab(payload["vocab"])


class _ShapesOnly(TorchFunctionMode):
    """Inside torch.device("meta"): skip what only writes values into a tensor (in-place ops, out=), which a meta
    tensor has none of. PyTorch's meta kernels for random fills and eye import torch._dynamo, 2 s of every
    training process that reads back its best.pt."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if kwargs.get("out") is not None:
            return kwargs["out"]
        name = getattr(func, "__name__", "")
        if name.endswith("_") and not name.endswith("__"):
            return args[0] if args else kwargs.get("tensor")
        return func(*args, **kwargs)


def _checked_config(payload: dict, path: Path, limits: Limits | None) -> RunConfig:
    """The stored config, every field valid and its sizes those of the tensors the file holds."""
    tensors = payload["state_dict"]
    try:
        cfg = RunConfig.from_dict(payload["config"])
        cfg.corpus.validate()
        cfg.train.validate()
        cfg.model.validate()
        if cfg.model.vocab_size != len(payload["vocab"]):
            raise ValueError(f"config says {cfg.model.vocab_size} words, the vocabulary has {len(payload['vocab'])}")
        if cfg.model.layers > len(tensors):  # every layer has tensors of its own; also keeps the count below short
            raise ValueError(f"config says {cfg.model.layers} layers, the file holds {len(tensors)} tensors")
    except (TypeError, ValueError, AttributeError) as err:
        raise CheckpointError(f"{path}: checkpoint config is not usable ({err})") from None
    if limits is not None:  # asked for by a caller; viewing a run never depends on today's training limits (the
        try:                # shape check below compares sizes on the meta device, which allocates nothing)
            check_model(count_params(cfg.model), limits)
        except LimitError as err:
            raise CheckpointError(f"{path}: {err}") from None
    return cfg


def _check_tensors(got: dict, expected: dict, path: Path) -> None:
    """Every tensor present, of the config's shape, and finite: NaN weights (a diverged run) only make NaN."""
    if set(got) != set(expected):
        raise CheckpointError(f"{path}: checkpoint tensors {sorted(set(got) ^ set(expected))} do not match its config")
    for name, tensor in got.items():
        if not isinstance(tensor, torch.Tensor) or tensor.shape != expected[name].shape:
            shape = tuple(tensor.shape) if isinstance(tensor, torch.Tensor) else type(tensor).__name__
            raise CheckpointError(f"{path}: tensor {name} has shape {shape}, its config needs "
                                  f"{tuple(expected[name].shape)}")
        if tensor.dtype != expected[name].dtype:
            raise CheckpointError(f"{path}: tensor {name} is {tensor.dtype}, the model needs {expected[name].dtype}")
        if not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(f"{path}: tensor {name} holds NaN or infinite weights (the run diverged?); "
                                  "it cannot make predictions")


def load_checkpoint(path: Path, device: str | torch.device = "cpu",
                    limits: Limits | None = None) -> tuple[RNNLM, RunConfig, Vocab, dict]:
    payload = read_payload(path, device)
    model, cfg, vocab = model_from_payload(payload, path, device, limits)
    model.eval()
    return model, cfg, vocab, payload["meta"]


def read_config(path: Path) -> RunConfig:
    """The run config stored in a checkpoint, checked against its tensors, without building the model."""
    return _checked_config(read_payload(path), Path(path), None)

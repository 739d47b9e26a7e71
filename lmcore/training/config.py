"""One run's whole configuration: stored with the run and in every checkpoint (nanoGPT style)."""
from __future__ import annotations

import math
import numbers
import re
from dataclasses import asdict, dataclass, field, fields, replace

from lmcore.corpus.dataset import CorpusSpec
from lmcore.nn.architectures import ModelConfig, model_name
from lmcore.values import MAX_SEED, check_finite, check_whole

OPTIMIZERS = ("sgd", "adam")
DEFAULT_LR = {"sgd": 20.0, "adam": 0.002}  # an optimizer chosen without an lr gets this one
# A fixed bound, the same on every machine that checks a stored config (app, queue, Ray node): far above what an
# RNN's small matrices gain from, far below the thousands of threads that crashed (5000 killed, 100000 segfault).
MAX_THREADS = 256
DEVICE_PATTERN = re.compile(r"auto|cpu|mps|cuda(:\d{1,3})?")
INT_FIELDS = ("bptt", "batch", "epochs", "max_steps", "eval_every", "seed", "threads")
FLOAT_FIELDS = ("lr", "clip", "time_budget", "lr_decay")


def check_threads(threads) -> None:
    check_whole("threads", threads)
    if not 0 <= threads <= MAX_THREADS:
        raise ValueError(f"threads must be between 0 (chosen by the job queue) and {MAX_THREADS}, not {threads}")


def check_device(device) -> None:
    if not isinstance(device, str) or not DEVICE_PATTERN.fullmatch(device):
        raise ValueError(f"unknown device {device!r}; choose auto, cpu, cuda, cuda:N or mps")


@dataclass
class TrainConfig:
    bptt: int = 35             # τ: truncation length of backprop through time
    batch: int = 20
    optimizer: str = "sgd"     # the lecture's plain SGD, or Adam
    lr: float = 20.0
    clip: float = 0.25         # max gradient norm; 0 switches clipping off
    epochs: int = 6
    max_steps: int = 0         # 0: no bound
    time_budget: float = 0.0   # seconds; 0: no bound
    eval_every: int = 0        # steps between evaluations inside an epoch; 0: at epoch end only
    lr_decay: float = 4.0      # lr ÷ this when an epoch ends no better (valid) than the best earlier epoch end
    seed: int = 1111
    device: str = "auto"       # auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:1, mps
    threads: int = 0           # torch threads in a job process; 0: chosen by the job queue
    compile: str = "auto"      # torch.compile of the hand-written cells' step: auto (CUDA only), on, off
    bf16: bool = False         # bfloat16 autocast where native (CUDA; AVX-512 BF16 / AMX CPUs); else fp32, warned

    def validate(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; choose sgd or adam")
        for name in INT_FIELDS:
            check_whole(name.replace("_", "-"), getattr(self, name))
        if isinstance(self.lr, numbers.Real) and math.isnan(self.lr):
            raise ValueError("lr must be positive (a finite number), not nan")
        for name in FLOAT_FIELDS:
            check_finite(name.replace("_", "-"), getattr(self, name))
        for name in ("bptt", "batch", "epochs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, not {self.lr!r}")
        if self.clip < 0 or self.max_steps < 0 or self.time_budget < 0 or self.eval_every < 0:
            raise ValueError("clip, max-steps, time-budget and eval-every cannot be negative")
        if self.lr_decay < 1:
            raise ValueError("lr-decay must be at least 1")
        if not 0 <= self.seed <= MAX_SEED:
            raise ValueError(f"seed must be between 0 and {MAX_SEED} (2**32 - 1), not {self.seed}")
        check_threads(self.threads)
        check_device(self.device)
        if self.compile not in ("auto", "on", "off"):
            raise ValueError(f"unknown compile mode {self.compile!r}; choose auto, on or off")
        if not isinstance(self.bf16, bool):
            raise ValueError(f"bf16 must be true or false, not {self.bf16!r}")


@dataclass
class RunConfig:
    name: str = ""
    corpus: CorpusSpec = field(default_factory=CorpusSpec)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "RunConfig":
        def build(kind, values):
            known = {f.name for f in fields(kind)}
            return kind(**{k: v for k, v in (values or {}).items() if k in known})
        return cls(name=d.get("name", ""), corpus=build(CorpusSpec, d.get("corpus")),
                   model=build(ModelConfig, d.get("model")), train=build(TrainConfig, d.get("train")))

    def label(self) -> str:
        """The run's name, else its model's: "LSTM-NIG 2×200"."""
        return self.name or model_name(self.model, size=True)

    def with_vocab(self, vocab_size: int) -> RunConfig:
        """A copy for a corpus with this vocabulary: the model's size is fixed where the corpus is loaded, and the
        config a run started with is never changed."""
        return replace(self, model=replace(self.model, vocab_size=vocab_size))

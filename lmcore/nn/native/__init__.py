"""C++ for the few loops where Python's or PyTorch's cost per operation is the bottleneck, built on first use.

`lstm_steps()` returns the ops of lstm_steps.cpp (torch.ops.lmcore_lstm_steps: forward, backward), `elman_steps()`
those of elman_steps.cpp (torch.ops.lmcore_elman_steps: forward, backward), `gru_steps()` those of gru_steps.cpp
(torch.ops.lmcore_gru_steps: forward, backward), `context_use()` those of
context_use.cpp (torch.ops.lmcore_context_use: lstm_windows, gru_windows, nll_sum), `softmax_loss()` that of softmax_loss.cpp
(torch.ops.lmcore_softmax_loss: softmax_xent_), `dropout_mask()` that of dropout_mask.cpp (torch.ops.lmcore_dropout:
keep_mask) and `optimizer_steps()` those of optimizer_steps.cpp (torch.ops.lmcore_optimizer: sum_squares, sgd_,
adam_); one library holds them all, compiled once per machine and PyTorch installation with PyTorch's extension builder (a C++ compiler and ninja; some 10–40 s, then cached
under ~/.cache/torch_extensions or $TORCH_EXTENSIONS_DIR in a folder named by the source's hash, and reused
by every process and checkout). Where that cannot be done — no compiler, a failed build — it returns None
once and for all in this process, and the callers keep their Python loops, which compute the same thing.
LMCORE_NATIVE=0 turns the C++ off.
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import subprocess
import sys
import threading
import warnings
from contextlib import contextmanager
from functools import cache
from pathlib import Path

import torch

SOURCE_DIR = Path(__file__).parent
SOURCE_NAMES = ("activations.h", "row_softmax.h", "step_product.h", "lstm_steps.cpp", "elman_steps.cpp",
                "context_use.cpp", "softmax_loss.cpp", "dropout_mask.cpp", "optimizer_steps.cpp", "gru_steps.cpp")  # the headers first: the .cpp files include them
# -fno-trapping-math, -fno-math-errno (as PyTorch's own build): without them GCC keeps the branch-free σ and tanh
# of the loops over units scalar; neither changes a result. -fopenmp: at::parallel_for is OpenMP's in headers, so
# without it a parallel loop runs on one thread (correct, slower). Only where PyTorch itself runs on OpenMP and on
# Linux, where the process then shares PyTorch's libgomp (already loaded); Apple's clang refuses the flag, and a
# failed build would take the training loops down with it.
OPENMP = ("-fopenmp",) if sys.platform.startswith("linux") and torch.backends.openmp.is_available() else ()
CFLAGS = ("-O3", "-fno-trapping-math", "-fno-math-errno", *OPENMP)
LDFLAGS = OPENMP


def enabled() -> bool:
    return os.environ.get("LMCORE_NATIVE", "1") != "0"


def _build_dir(cpp_extension) -> Path:
    """One build per source text and PyTorch installation/Python, shared by every checkout that uses that PyTorch.

    Named by a hash rather than by the source's path: PyTorch's builder keys on the path, so two clones
    sharing the cache rebuilt over each other's library, and an edited source got no new folder."""
    root = Path(os.environ.get("TORCH_EXTENSIONS_DIR") or cpp_extension.get_default_build_root())
    stamps = []
    for path in (SOURCE_DIR / name for name in SOURCE_NAMES):
        stat = path.stat()
        stamps.append((path, stat.st_mtime_ns, stat.st_size))
    return root / f"lmcore_lstm_steps_{_source_hash(tuple(stamps), _torch_dir())}"


@cache
def _torch_dir() -> str:
    """The PyTorch installation the build compiles against. Its headers' path is written into the build's commands,
    so two virtual environments sharing the cache (two checkouts, each with its .venv) rebuilt the one library over
    each other at every switch: a minute each time, in place under any process that had it loaded."""
    return str(Path(torch.__file__).resolve().parent)


@cache
def _source_hash(stamps: tuple, torch_dir: str) -> str:
    """The hash of the sources' text and the build's settings, read again only when a source's (path, mtime,
    size) changes: `built()` asks on every dropout mask, and reading and hashing the sources took 2 ms."""
    abi = f"{sys.version_info.major}.{sys.version_info.minor}{getattr(sys, 'abiflags', '')}"
    key = b"\0".join([*(path.name.encode() + b":" + path.read_bytes() for path, *_ in stamps), torch_dir.encode(),
                       " ".join(CFLAGS + LDFLAGS).encode(), _compiler().encode(), torch.__version__.encode(), abi.encode(),
                       str(torch.version.cuda or torch.version.hip or "cpu").encode()])
    return hashlib.sha256(key).hexdigest()[:16]


@cache
def _compiler() -> str:
    """The compiler PyTorch's builder will call ($CXX or c++) and its version line: a new compiler compiles other
    clones (GCC 12 added x86-64-v4's), so it gets a build of its own. Empty where it cannot be run."""
    cxx = os.environ.get("CXX", "c++")
    try:
        done = subprocess.run([cxx, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return cxx
    return f"{cxx} {done.stdout.splitlines()[0] if done.stdout else ''}"


def _place_sources(build_dir: Path) -> list[Path]:
    """Copy the sources into the build folder once; never rewritten, so ninja sees no newer file later."""
    return [_place(SOURCE_DIR / name, build_dir) for name in SOURCE_NAMES]


def _place(original: Path, build_dir: Path) -> Path:
    source = build_dir / original.name
    if not source.is_file():
        build_dir.mkdir(parents=True, exist_ok=True)
        tmp = build_dir / f".{original.name}.{os.getpid()}.{threading.get_ident()}"
        try:
            tmp.write_bytes(original.read_bytes())  # a failed write (disk full) is raised: the build fails
            try:
                os.link(tmp, source)  # fails if another process placed it first: theirs is the same text
            except FileExistsError:
                pass
            except OSError:  # a filesystem without hard links: a rename, unless someone placed it meanwhile
                if not source.is_file():
                    os.replace(tmp, source)
        finally:
            tmp.unlink(missing_ok=True)
    return source


def _build():
    from torch.utils import cpp_extension  # here: 0.14 s of every model import, for a build that happens once

    build_dir = _build_dir(cpp_extension)
    sources = [str(p) for p in _place_sources(build_dir) if p.suffix == ".cpp"]
    if not any(build_dir.glob("*.so")):  # a job's log and the CLI's output say why the start waits
        print("note: building the C++ time loops (once per machine, some 10-60 s)", file=sys.stderr, flush=True)
    with warnings.catch_warnings(), _machine_lock(build_dir):
        warnings.simplefilter("ignore")  # the builder's notes about compiler versions
        cpp_extension.load(name=build_dir.name, sources=sources, build_directory=str(build_dir),
                           extra_cflags=list(CFLAGS), extra_ldflags=list(LDFLAGS),  # copies: the builder extends them
                           is_python_module=False, verbose=False)
    return torch.ops


@contextmanager
def _machine_lock(build_dir: Path):
    """One build at a time on the machine, under a lock the kernel frees when its holder dies. PyTorch's own lock
    is a file that a killed build leaves behind, and every later start then waited for it for ever; holding ours,
    any such file is a dead build's, so it goes."""
    with open(build_dir / ".lmcore-build.lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        (build_dir / "lock").unlink(missing_ok=True)
        yield


_building = threading.Lock()  # the app's background build and a first caller may overlap


@cache
def _build_or_none():
    try:
        with _building:
            return _build()
    except Exception as error:  # no compiler, no ninja, a failed build: the Python loops stand in
        warnings.warn(f"the C++ time loops could not be built ({type(error).__name__}: {error}); training on the "
                      "cells, the output layer's loss and context use take their slower Python and PyTorch paths",
                      RuntimeWarning, stacklevel=3)
        return None


def built() -> bool:
    """Whether the C++ loops are on and built, without building them: a choice of how to train, which must not make
    a job wait for the compiler, asks this. Built on disk, the library is loaded at once, so that the answer holds
    for the rest of the process."""
    if not enabled():
        return False
    if not _build_or_none.cache_info().currsize:  # not tried in this process yet
        from torch.utils import cpp_extension
        if not any(_build_dir(cpp_extension).glob("*.so")):
            return False
    return _build_or_none() is not None


def _ops(namespace: str):
    ops = _build_or_none() if enabled() else None
    return None if ops is None else getattr(ops, namespace)


def lstm_steps():
    """torch.ops.lmcore_lstm_steps, or None where C++ is turned off or cannot be built."""
    return _ops("lmcore_lstm_steps")


def elman_steps():
    """torch.ops.lmcore_elman_steps, or None where C++ is turned off or cannot be built."""
    return _ops("lmcore_elman_steps")


def gru_steps():
    """torch.ops.lmcore_gru_steps, or None where C++ is turned off or cannot be built."""
    return _ops("lmcore_gru_steps")


def context_use():
    """torch.ops.lmcore_context_use, or None where C++ is turned off or cannot be built."""
    return _ops("lmcore_context_use")


def softmax_loss():
    """torch.ops.lmcore_softmax_loss, or None where C++ is turned off or cannot be built."""
    return _ops("lmcore_softmax_loss")


def dropout_mask():
    """torch.ops.lmcore_dropout, or None where C++ is turned off or cannot be built."""
    return _ops("lmcore_dropout")


def optimizer_steps():
    """torch.ops.lmcore_optimizer (sum_squares, sgd_, adam_), or None where C++ is turned off or cannot be built."""
    return _ops("lmcore_optimizer")


def _quiet_build() -> None:
    try:  # nice 19 for this thread, and so for the compiler processes it starts (they inherit it)
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
    except (OSError, AttributeError):
        pass
    lstm_steps()


def build_in_background() -> threading.Thread:
    """Build (or load) the C++ loop in a daemon thread at low priority, so that no training job waits for the
    compiler and no page waits for it either."""
    thread = threading.Thread(target=_quiet_build, name="lmcore-native-build", daemon=True)
    thread.start()
    return thread

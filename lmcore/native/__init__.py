"""C++ for the few loops where Python's cost per operation is the bottleneck, built on first use.

`lstm_steps()` returns the ops of lstm_steps.cpp (torch.ops.lmcore_lstm_steps: forward, backward), compiling
them once per machine with PyTorch's extension builder (a C++ compiler and ninja; some 20–40 s, then cached
under ~/.cache/torch_extensions or $TORCH_EXTENSIONS_DIR and reused by every process). Where that cannot
be done — no compiler, a failed build — it returns None once and for all in this process, and the callers
keep their Python loops, which compute the same thing. LMCORE_NATIVE=0 turns the C++ off.
"""
from __future__ import annotations

import os
import sys
import threading
import warnings
from functools import cache
from pathlib import Path

import torch

SOURCE = Path(__file__).with_name("lstm_steps.cpp")


def enabled() -> bool:
    return os.environ.get("LMCORE_NATIVE", "1") != "0"


def _build():
    from torch.utils import cpp_extension  # imported here: it is slow to import and rarely needed

    root = Path(os.environ.get("TORCH_EXTENSIONS_DIR") or cpp_extension.get_default_build_root())
    built = [*root.glob("lmcore_lstm_steps*/*.so"), *root.glob("*/lmcore_lstm_steps*/*.so")]
    if not built:  # a job's log and the CLI's output say why the start waits
        print("note: building the C++ LSTM time loop (once per machine, some 20-40 s)", file=sys.stderr, flush=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the builder's notes about compiler versions
        cpp_extension.load(name="lmcore_lstm_steps", sources=[str(SOURCE)], extra_cflags=["-O3"],
                           is_python_module=False, verbose=False)
    return torch.ops.lmcore_lstm_steps


_building = threading.Lock()  # the app's background build and a first caller may overlap


@cache
def _build_or_none():
    try:
        with _building:
            return _build()
    except Exception as error:  # no compiler, no ninja, a failed build: the Python loops stand in
        warnings.warn(f"the C++ LSTM time loop could not be built ({type(error).__name__}: {error}); "
                      f"training uses the Python loop, which is slower", RuntimeWarning, stacklevel=3)
        return None


def lstm_steps():
    """torch.ops.lmcore_lstm_steps, or None where C++ is turned off or cannot be built."""
    return _build_or_none() if enabled() else None


def build_in_background() -> threading.Thread:
    """Build (or load) the C++ loop in a daemon thread, so that no training job waits for the compiler."""
    thread = threading.Thread(target=lstm_steps, name="lmcore-native-build", daemon=True)
    thread.start()
    return thread

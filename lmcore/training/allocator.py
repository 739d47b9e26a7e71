"""Keep freed memory in the process while it trains.

glibc's malloc hands a freed block of more than 128 KB straight back to the system, and trims the top of its heap
once 128 KB there are free. A training step frees and allocates the same few megabytes every step (logits, the
gradients of the output layer, PyTorch's own workspaces), so each step faulted them in afresh from the kernel:
about 300 page faults and a millisecond of system time a step for the Train page's LSTM preset (`python -m lmcore
train --preset LSTM --max-steps 400`: 125–205 thousand faults, 55 thousand of them the start-up's). With blocks up to
32 MB taken from the heap and up to 256 MB of free top kept, the process holds on to its peak instead. For the whole
process and for good (glibc's own adjustment stays off): every process that trains keeps its peak, a run's job as
a Ray worker or the demo builder; the app's server never trains.

Huge pages for big tensors: PyTorch asks the kernel to back each CPU tensor of 2 MB or more with 2 MB pages when
THP_MEM_ALLOC_ENABLE is set before its first allocation, which lmcore's entry points (`python -m lmcore`, so every
run's job, and the app) do. A step's logits and activations then take a few TLB entries instead of thousands and
fault in by the 2 MB: on a Zen 3 VM, the 2×200 LSTM's step 4–7% faster, the gradient-decay curve 22%."""
from __future__ import annotations

import ctypes
import os
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
MMAP_THRESHOLD = 32 << 20  # glibc's largest (DEFAULT_MMAP_THRESHOLD_MAX on 64-bit)
TRIM_THRESHOLD = 256 << 20


def keep_freed_memory() -> bool:
    """Tell glibc's malloc to keep what a step frees (this process only); False where there is no glibc to tell."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # a libc without mallopt (musl has one that does nothing)
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))


HUGE_PAGES_ENV = "THP_MEM_ALLOC_ENABLE"  # read once by PyTorch's CPU allocator (c10's alloc_cpu), at its first use


def ask_for_huge_pages() -> None:
    """Big CPU tensors in transparent huge pages, unless the environment says otherwise (THP_MEM_ALLOC_ENABLE=0).
    Only where called before the process's first tensor: the entry points call it before importing anything else."""
    os.environ.setdefault(HUGE_PAGES_ENV, "1")

"""A training process keeps the memory a step frees (lmcore/training/allocator.py), read from glibc's own
accounts (mallinfo2) in a fresh process, against a process that was not told."""
from __future__ import annotations

import ctypes
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# a 1 MB block: mapped from the system (hblkhd) or taken from the heap; then 16 MB freed: kept at the heap's top
# (keepcost) or handed back
SCRIPT = """
import ctypes, sys
from lmcore.training.allocator import keep_freed_memory
class Info(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                     "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL(None)
libc.mallinfo2.restype = Info
libc.malloc.restype, libc.malloc.argtypes, libc.free.argtypes = ctypes.c_void_p, [ctypes.c_size_t], [ctypes.c_void_p]
told = sys.argv[1] == "keep" and keep_freed_memory()
before = libc.mallinfo2().hblkhd  # blocks the imports left mapped
block = libc.malloc(1 << 20)
mapped = libc.mallinfo2().hblkhd - before
libc.free(block)
block = libc.malloc(16 << 20)
libc.free(block)
print(told, mapped, libc.mallinfo2().keepcost)
"""


def _accounts(mode: str) -> tuple[str, int, int]:
    done = subprocess.run([sys.executable, "-c", SCRIPT, mode], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    told, mapped, kept = done.stdout.split()
    return told, int(mapped), int(kept)


def test_a_training_process_keeps_what_a_step_frees():
    if not sys.platform.startswith("linux") or not hasattr(ctypes.CDLL(None), "mallinfo2"):
        pytest.skip("needs glibc 2.33+ (mallinfo2) to read malloc's accounts")
    told, mapped, kept = _accounts("keep")
    assert told == "True"
    assert mapped == 0 and kept >= 16 << 20  # the 1 MB came from the heap; the freed 16 MB stayed
    told, mapped, kept = _accounts("default")  # the control: glibc's defaults map and hand back
    assert told == "False" and mapped >= 1 << 20 and kept < 16 << 20


def test_training_asks_for_it(tiny_cfg, tmp_path, monkeypatch):
    from lmcore.training import trainer
    asked = []
    monkeypatch.setattr(trainer, "keep_freed_memory", lambda: asked.append(True))
    trainer.train(tiny_cfg("lstm", max_steps=2), tmp_path)
    assert asked == [True]

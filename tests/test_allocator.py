"""A training process keeps the memory a step frees (lmcore/training/allocator.py), read from glibc's own
accounts (mallinfo2) in a fresh process, against a process that was not told."""
from __future__ import annotations

import ctypes
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lmcore.training.allocator import HUGE_PAGES_ENV

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


# Huge pages: 16 MB tensors in a fresh process, PyTorch told (or not) before its first allocation
HUGE = """
import sys
if sys.argv[1] == "ask":
    from lmcore.training.allocator import ask_for_huge_pages
    ask_for_huge_pages()
import torch
blocks = [torch.ones(4 << 20) for _ in range(4)]
print(next(int(line.split()[1]) for line in open("/proc/self/smaps_rollup") if line.startswith("AnonHugePages")))
"""


def _huge_kb(mode: str, told: str | None = None) -> int:
    env = {k: v for k, v in os.environ.items() if k != HUGE_PAGES_ENV}
    if told is not None:
        env[HUGE_PAGES_ENV] = told
    done = subprocess.run([sys.executable, "-c", HUGE, mode], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    return int(done.stdout)


def test_big_tensors_live_in_huge_pages_when_asked():
    thp = Path("/sys/kernel/mm/transparent_hugepage/enabled")
    if not thp.is_file() or "[never]" in thp.read_text() or not Path("/proc/self/smaps_rollup").is_file():
        pytest.skip("this kernel gives no transparent huge pages")
    assert _huge_kb("ask") >= 32 << 10  # at least half of the 64 MB in 2 MB pages
    if "[madvise]" in thp.read_text():  # (with [always] every big block gets them, asked or not)
        assert _huge_kb("default") == 0
        assert _huge_kb("ask", told="0") == 0  # the environment's word wins


# The entry points ask before torch is imported (so before its first tensor): the variable as torch's import begins
FIRST_IMPORT = """
import os, sys, runpy
class Watch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" and "seen" not in globals():
            globals()["seen"] = os.environ.get("THP_MEM_ALLOC_ENABLE")
sys.meta_path.insert(0, Watch())
if sys.argv[1] == "cli":
    sys.argv = ["lmcore", "--help"]
    try:
        runpy.run_module("lmcore", run_name="__main__")
    except SystemExit:
        pass
else:
    import appstate
    import appstate.models
print("\\nTHP at torch's import:", globals().get("seen"))
"""


@pytest.mark.parametrize("entry", ["cli", "app"])
def test_entry_points_ask_before_torch_is_imported(entry):
    env = {k: v for k, v in os.environ.items() if k != HUGE_PAGES_ENV}
    done = subprocess.run([sys.executable, "-c", FIRST_IMPORT, entry], cwd=REPO, capture_output=True, text=True,
                          timeout=120, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith("THP at torch's import: 1"), done.stdout[-500:]

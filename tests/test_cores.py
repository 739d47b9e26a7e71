"""The cores the job queue counts (lmcore.limits.cores): those this process may run on, within its CPU quota."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lmcore.limits import Limits, cores, cpu_quota

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="CPU affinity is Linux's")
def test_a_process_pinned_to_one_cpu_counts_one_core_and_one_slot():
    """As under `taskset -c 0` or a container's cpuset: os.cpu_count() would still say every CPU of the host."""
    one_cpu = (
        "import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})\n"
        "from lmcore.limits import Limits, cores\n"
        "print(cores(), Limits().max_parallel_jobs, os.cpu_count())")
    out = subprocess.run([sys.executable, "-c", one_cpu], cwd=ROOT, capture_output=True, text=True, check=True)
    counted, slots, host = map(int, out.stdout.split())
    assert (counted, slots) == (1, 1) and host >= 1


@pytest.mark.parametrize("files, quota", [
    ({"cpu.max": "200000 100000\n"}, 2),        # cgroup v2, --cpus=2
    ({"cpu.max": "150000 100000\n"}, 2),        # --cpus=1.5: a second core for the half
    ({"cpu.max": "50000 100000\n"}, 1),
    ({"cpu.max": "max 100000\n"}, None),        # v2 without a quota
    ({"cpu/cpu.cfs_quota_us": "300000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 3),  # cgroup v1
    ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),   # v1 without a quota
    ({"cpu.max": "garbled"}, None),
    ({}, None),                                 # no cgroup files (macOS, a bare chroot)
])
def test_the_cpu_quota_read_from_cgroup_v1_and_v2(tmp_path, files, quota):
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert cpu_quota(tmp_path) == quota


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="CPU affinity is Linux's")
def test_a_quota_below_the_cpus_bounds_the_cores_and_one_above_them_does_not(tmp_path):
    (tmp_path / "cpu.max").write_text("100000 100000\n")
    assert cores(tmp_path) == 1
    (tmp_path / "cpu.max").write_text(f"{1000 * 100000} 100000\n")
    assert cores(tmp_path) == len(os.sched_getaffinity(0))
    assert Limits().max_parallel_jobs == cores()  # the default slots: one a core

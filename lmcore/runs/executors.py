"""Where a queued run's job runs: a local OS process (the default) or a task on a Ray cluster.

    local   jobs.start_process: `python -m lmcore worker RUN` in its own session, as always
    ray     a `ray.remote` task that calls the same body, service.run_job(RunStore(home), run_id), on any
            node of the cluster. The store is one SQLite file and checkpoints are written beside it, so
            every Ray node must see the data folder at the same path (a shared filesystem: NFS, a
            cluster's home directories, or one machine).

Chosen by `python -m lmcore --executor ray --address ADDR ...` (any command that queues runs), or by
$LMCORE_EXECUTOR / $LMCORE_RAY_ADDRESS. With Ray, the driver (`sweep --wait`, `service.wait_for`) pumps the
queue: a Ray task does not start the next run itself. A Ray job records its pid negated, which tells
`mark_interrupted` that the process lives on another machine and is Ray's to watch: the driver that started
the task asks Ray how it ended (`reap`, on every pump), and a task that died without reporting (its worker
killed, its node lost) leaves its run `interrupted`, resumable like a killed local job.
"""
from __future__ import annotations

import os
from pathlib import Path

from lmcore.runs.jobs import start_process
from lmcore.runs.store import RunStore
from lmcore.training.allocator import HUGE_PAGES_ENV

EXECUTOR_ENV, ADDRESS_ENV = "LMCORE_EXECUTOR", "LMCORE_RAY_ADDRESS"
EXECUTORS = ("local", "ray")
REPO = Path(__file__).resolve().parents[2]


class LocalExecutor:
    name = "local"

    def start(self, store, run_id: int, threads: int, max_parallel: int, body=None) -> None:
        """body: unused here; the process it starts runs `python -m lmcore worker`, which calls the same body."""
        start_process(store, run_id, threads, max_parallel)

    def reap(self, store) -> list[tuple[int, str]]:
        return []  # a local job's death is seen from its pid (service.mark_interrupted)


class RayExecutor:
    """Hands each job to Ray; ray.init(address) on first use (None or "local": a local instance)."""
    name = "ray"

    def __init__(self, address: str | None = None):
        self.address = address
        self.refs: list = []  # ObjectRefs of the tasks started here (ray.get them to wait)
        self._running: dict = {}  # ObjectRef -> run id, for the tasks not yet reaped

    def _remote(self):
        try:
            import ray
        except ImportError:
            raise ValueError("the ray executor needs Ray: pip install -r requirements-dev.txt") from None
        if not ray.is_initialized():
            address = None if self.address in (None, "", "local") else self.address
            ray.init(address=address, include_dashboard=False, ignore_reinit_error=True, log_to_driver=False)
        return ray.remote(num_cpus=1, max_retries=0)(_ray_job)

    def start(self, store, run_id: int, threads: int, max_parallel: int, body=None) -> None:
        """body(store, run_id, threads, max_parallel, remote=True): the job body the task runs (service.run_job)."""
        env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
               "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
               HUGE_PAGES_ENV: os.environ.get(HUGE_PAGES_ENV, "1")}  # as a local job's (allocator.py), unless told 0
        task = self._remote().options(runtime_env={"env_vars": env})
        store.update_run(run_id, pid=-1)  # not a local process: mark_interrupted leaves it to Ray
        ref = task.remote(body, str(store.home), run_id, threads, max_parallel)
        self.refs.append(ref)
        self._running[ref] = run_id

    def reap(self, store) -> list[tuple[int, str]]:
        """(run id, why) of the tasks that ended with an error (worker killed, node lost): the service marks
        those of them that never recorded an end `interrupted`."""
        if not self._running:
            return []
        import ray
        ended, _ = ray.wait(list(self._running), num_returns=len(self._running), timeout=0)
        failed = []
        for ref in ended:
            try:
                ray.get(ref)  # the job body recorded its own end
            except Exception as error:  # noqa: BLE001 -- Ray's errors for a crashed worker or a lost node vary
                failed.append((self._running[ref], type(error).__name__))
            del self._running[ref]
        return failed


def _ray_job(body, home: str, run_id: int, threads: int, max_parallel: int) -> str:
    """The body of a Ray task: the same job body as a local worker process, against the same store."""
    return body(RunStore(home), run_id, threads, max_parallel, remote=True)


_current = None


def set_executor(name: str = "local", address: str | None = None):
    """Choose the executor for this process and the processes it starts; returns it."""
    global _current
    if name not in EXECUTORS:
        raise ValueError(f"unknown executor {name!r}; choose one of {', '.join(EXECUTORS)}")
    os.environ[EXECUTOR_ENV] = name
    if address:
        os.environ[ADDRESS_ENV] = address
    _current = RayExecutor(address) if name == "ray" else LocalExecutor()
    return _current


def current_executor():
    """The executor set in this process, else the one $LMCORE_EXECUTOR names (default local)."""
    if _current is None or _current.name != os.environ.get(EXECUTOR_ENV, "local"):
        return set_executor(os.environ.get(EXECUTOR_ENV, "local"), os.environ.get(ADDRESS_ENV))
    return _current

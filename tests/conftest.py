"""Shared fixtures for the lmcore unit tests: small real corpora and tiny run configurations."""
from __future__ import annotations

import base64
import os
import random
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from lmcore.corpus.dataset import CorpusSpec
from lmcore.nn.architectures import ModelConfig
from lmcore.training.config import RunConfig, TrainConfig

REPO = Path(__file__).resolve().parents[1]

# The tests' tensors are tiny: a second thread only adds contention on a shared 2-core machine.
torch.set_num_threads(1)

# The files that take longest (measured with a timeline of one suite run on the 2-core Zen 3, seconds of a worker):
# handed out first, so that under --dist loadfile neither worker starts a minute-long file while the other is idle
# near the end. pytest.ini turns off xdist's own order (files with the most tests first), which had put the
# one-test files (the classroom, the agreement recipe: a minute each) last; one worker then ran alone for 120 s.
LONGEST_FILES_FIRST = ("test_browser.py", "test_hostile_files.py", "test_classroom_browser.py", "test_distributed.py",
                       "test_agreement_probe.py", "test_ray.py", "test_lecture_defaults.py", "test_bad_input.py",
                       "test_interventions_page.py", "test_lifecycle_property.py", "test_reliability.py",
                       "test_no_run_lost.py", "test_ffnn.py", "test_sweeps.py", "test_store_jobs.py")


def has_compiler() -> bool:
    return shutil.which(os.environ.get("CXX", "c++")) is not None  # PyTorch's builder compiles with $CXX or c++


def require_compiler(without: str) -> None:
    """Skip a test of lmcore's C++ where no compiler is found; under .ci/run, which installs g++ and sets
    LMCORE_REQUIRE_NATIVE, fail it instead. without: what runs in the C++'s place."""
    if not has_compiler():
        assert not os.environ.get("LMCORE_REQUIRE_NATIVE"), ".ci/run installed g++, yet no C++ compiler is found"
        pytest.skip(f"needs a C++ compiler (.ci/run installs g++); without one {without}")


def graph_node_names(tensor: torch.Tensor) -> set[str]:
    """The names of the autograd nodes behind a tensor (which loop a forward went through)."""
    names, seen, stack = set(), set(), [tensor.grad_fn]
    while stack:
        node = stack.pop()
        if node is not None and id(node) not in seen:
            seen.add(id(node))
            names.add(type(node).__name__)
            stack.extend(f for f, _ in node.next_functions)
    return names


def pytest_configure(config):
    """Build lmcore's C++ loops once, before any test runs (in xdist's controller, not in each worker): whether a
    run trains through them (lmcore.training.device.native_pays asks whether they are built) must not change in
    the middle of a test that trains twice and compares. Without a compiler nothing is built, as before."""
    if hasattr(config, "workerinput"):
        return
    from lmcore.nn import native
    if native.enabled() and has_compiler():
        native.lstm_steps()


def pytest_collection_modifyitems(config, items):
    rank = {name: k for k, name in enumerate(LONGEST_FILES_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: each file keeps its own order


def docs_lines(n: int = 400) -> list[str]:
    """The first n prose lines of Python's own documentation (pydoc topics), in a fixed order."""
    from pydoc_data.topics import topics
    lines = []
    for key in sorted(topics):
        for line in topics[key].splitlines():
            line = line.strip()
            # prose only: skip underlines (*****, =====) and blank lines
            if line and re.search(r"[A-Za-z]{3}", line):
                lines.append(line)
                if len(lines) == n:
                    return lines
    return lines


def grammar_lines(n: int = 600, seed: int = 0) -> list[str]:
    """Seeded sentences from a tiny grammar: a small vocabulary a tiny model learns in a few steps."""
    rng = random.Random(seed)
    subjects = ["the cat", "the dog", "a bird", "the roses", "my friend"]
    verbs = ["sees", "likes", "chases", "hears"]
    objects = ["the ball", "a tree", "the door", "the vase", "some bread"]
    return [f"{rng.choice(subjects)} {rng.choice(verbs)} {rng.choice(objects)} ." for _ in range(n)]


@pytest.fixture
def docs_file(tmp_path: Path) -> Path:
    """A UTF-8 text file of 400 lines of documentation prose (split 320/40/40)."""
    path = tmp_path / "docs.txt"
    path.write_text("\n".join(docs_lines(400)) + "\n", encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def start_on_the_corpus_page(monkeypatch: pytest.MonkeyPatch) -> None:
    """AppTest runs app.py's start page before switching to the page under test: the Corpus page, not the Lecture
    tour a new data folder opens on (tests/test_lecture_tour.py and the browser test check that landing)."""
    monkeypatch.setenv("LMCORE_START_PAGE", "corpus")


@pytest.fixture
def grammar_file(tmp_path: Path) -> Path:
    """A UTF-8 text file of 600 seeded grammar sentences (split 480/60/60)."""
    path = tmp_path / "grammar.txt"
    path.write_text("\n".join(grammar_lines(600)) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def lmcore_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh data folder, also exported as LMCORE_HOME (job processes inherit it)."""
    home = tmp_path / "home"
    monkeypatch.setenv("LMCORE_HOME", str(home))
    return home


def tiny_config(source: str | Path, arch: str = "lstm", **train) -> RunConfig:
    """A model small enough to train a few dozen steps in well under a second."""
    train_kw = dict(bptt=8, batch=4, optimizer="adam", lr=0.01, clip=0.25, epochs=1, max_steps=30, seed=7,
                    device="cpu", threads=1)
    train_kw.update(train)
    return RunConfig(
        name=f"tiny {arch}",
        corpus=CorpusSpec(source=str(source), tokenizer="word", lowercase=True),
        model=ModelConfig(arch=arch, activation="tanh", emb=16, hidden=16, layers=1, dropout=0.0),
        train=TrainConfig(**train_kw),
    )


@pytest.fixture
def tiny_cfg(grammar_file: Path):
    """A factory of tiny run configs on the grammar corpus: tiny_cfg(arch="gru", max_steps=10)."""
    def make(arch: str = "lstm", source: str | Path | None = None, **train) -> RunConfig:
        return tiny_config(source or grammar_file, arch, **train)
    return make


def subprocess_env(home: Path | None = None) -> dict:
    """Environment for `python -m lmcore` children: the repo importable, one thread, a private store."""
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    if home is not None:
        env["LMCORE_HOME"] = str(home)
    return env


PYTHON = sys.executable


def submit(store, cfg, max_parallel: int | None = None, start: bool = True, limits=None) -> int:
    """One run queued through the run service, then the queue pumped with this many slots (as the pages do)."""
    from lmcore.runs import service
    [run_id] = service.queue(store, [cfg], limits, start=False)
    if start:
        service.pump(store, max_parallel)
    return run_id


def stored_run(home, cfg: RunConfig, **columns):
    """A run as the store hands it out (a `Run`), recorded in a real store in `home` with these columns set."""
    from lmcore.runs.store import RunStore
    store = RunStore(home)
    run_id = store.create_run(cfg.to_dict())
    if columns:
        store.update_run(run_id, **columns)
    return store.get_run(run_id)


def wait_for_streamlit(url: str, proc, log) -> None:
    """Until a `streamlit run` answers its health check; fails with the end of its log if it dies or takes 90 s."""
    import urllib.request
    deadline = time.monotonic() + 90
    while True:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                return
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            log.seek(0)
            pytest.fail(f"streamlit did not start:\n{log.read()[-3000:]}")
        time.sleep(0.3)


def figure_values(data) -> np.ndarray:
    """A figure's array as written in its JSON: a list, or Plotly's typed array {dtype, bdata}."""
    if isinstance(data, dict):
        return np.frombuffer(base64.b64decode(data["bdata"]), dtype=data["dtype"])
    return np.asarray(data)


def dead_pid() -> int:
    """The pid of a process that has ended (and been reaped): a job killed without a word."""
    proc = subprocess.Popen([PYTHON, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture
def end_job_processes():
    """Job processes a test started and left running are killed, then reaped (modules that start jobs use it)."""
    from lmcore.runs import jobs
    before = set(id(p) for p in jobs._children)
    yield
    for proc in list(jobs._children):
        if id(proc) not in before and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)

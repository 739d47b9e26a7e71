"""The life of a run, decided in one place: every check before a run is recorded, the training slot and the
row claimed in one transaction, then start, resume, stop and delete, and a job's own start and end.

The Train and Sweeps pages, the CLI (train, train --resume, sweep, stop, delete, worker) and the queue change a
run's status only through this module: nothing else calls RunStore.create_run, claim or claim_slot (a test reads
the sources to hold that). Nothing is written to the store before a config is accepted, and an error once a run
is claimed leaves it resumable (`interrupted`, with the reason) whenever its last.pt is there to go on from.

The checks (`check`): every field of the config, the deployment's limits (epochs, parameters, queue, corpus
size), the device, the corpus readable and long enough for batch × τ, and the output folder. They run for
every run of a batch (the Train page's lineup, a sweep's grid) before any is recorded.

Who (`person`, lmcore.runs.people): a run records the person who made it as its owner (the machine's owner when
no one is named). Stop, resume and delete given a person check that they may change the run before anything
is written (NotYours); a person who is not an instructor is also held to the per-person limits. A caller that
names no one keeps the single-laptop behaviour: anyone may change anything, and only the global limits hold.
"""
from __future__ import annotations

import json
import os
import shutil
import time
import traceback
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from lmcore.corpus.dataset import Corpus, spec_fingerprint
from lmcore.corpus.loading import load_corpus
from lmcore.corpus.reading import CorpusError
from lmcore.limits import LimitError, Limits, check_epochs, check_model, check_source_size, load_limits
from lmcore.nn.architectures import count_params
from lmcore.runs import jobs
from lmcore.runs.executors import current_executor
from lmcore.runs.fairshare import fair_order, training_counts
from lmcore.runs.people import Person, changeable, machine_owner, mine
from lmcore.runs.store import ACTIVE, NoFreeSlot, RunStore
from lmcore.training.config import RunConfig
from lmcore.training.device import resolve_device
from lmcore.training.trainer import TrainResult, check_fits, train

RESUMABLE = ("stopped", "interrupted", "done")


# --- checks: nothing is recorded before they pass -------------------------------------------------------
def validate(cfg: RunConfig) -> None:
    """Every field in range (the vocabulary size may not be known yet: any size ≥ 3 passes here)."""
    cfg.corpus.validate()
    cfg.train.validate()
    replace(cfg.model, vocab_size=max(cfg.model.vocab_size, 3)).validate()


def check(store: RunStore, configs: list[RunConfig], limits: Limits | None = None, corpus: Corpus | None = None,
          queueing: bool = True, person: Person | None = None) -> dict[str, Corpus]:
    """Refuse, naming the run and the rule, any run of the batch that cannot train here; returns the corpora
    read (by source) so a caller that trains at once need not read them again. corpus: one already read
    for these configs (the pages have it); otherwise each distinct corpus is read here. person: who adds
    them, held to the per-person limits unless an instructor."""
    limits = limits or load_limits(store.home)
    per_person = person is not None and not person.instructor
    corpora: dict[str, Corpus] = {}
    for i, cfg in enumerate(configs):
        try:
            validate(cfg)
            check_epochs(cfg.train.epochs, limits)
            if per_person:
                check_epochs(cfg.train.epochs, limits, per_person=True)
            check_device(cfg.train.device)
            key = spec_fingerprint(cfg.corpus)
            if key not in corpora:
                check_source_size(cfg.corpus.source, limits)
                corpora[key] = corpus if corpus is not None else load_corpus(cfg.corpus)
            params = count_params(cfg.with_vocab(len(corpora[key].vocab)).model)
            check_model(params, limits)
            if per_person:
                check_model(params, limits, per_person=True)
            check_fits(corpora[key], cfg.train)
        except ValueError as err:
            which = f"run {i + 1}" + (f" ({cfg.name})" if cfg.name else "")  # as the Train page numbers its runs
            raise type(err)(f"{which}: {err}" if len(configs) > 1 else str(err)) from None
    if queueing:
        check_queue_room(store, len(configs), limits)
    if per_person:
        check_person_room(store, person, len(configs), limits)
    return corpora


def check_device(device: str) -> None:
    """The device exists on this machine (a run for `cuda` queued on a CPU-only one would only fail in its job);
    jobs on a Ray cluster run on other machines and are checked there."""
    if current_executor().name == "local":
        resolve_device(device)


def check_queue_room(store: RunStore, adding: int, limits: Limits) -> None:
    waiting = len(store.list_runs(("queued",)))
    if waiting + adding > limits.max_queued_runs:
        what = f"{adding} more runs do" if adding > 1 else "another run does"
        raise LimitError(f"{waiting} runs are already waiting for a slot and {what} not fit (max_queued_runs = "
                         f"{limits.max_queued_runs} in {limits.where()}); try again when some have finished")


def check_person_room(store: RunStore, person: Person, adding: int, limits: Limits) -> None:
    """The person's runs queued, starting and training, with these, within max_active_runs_per_person."""
    active, allowed = len(mine(store.list_runs(ACTIVE), person)), limits.max_active_runs_per_person
    if adding > allowed:  # no wait helps: say what does (no server path: a student reads this)
        raise LimitError(f"{adding} runs at once are more than this server lets one person queue or train "
                         f"(max_active_runs_per_person = {allowed}, set in its lmcore.toml): start {allowed} or "
                         "fewer at a time, or ask the instructor to raise it")
    if active + adding > allowed:
        what = f"{adding} more do" if adding > 1 else "another does"
        raise LimitError(f"you have {active} runs queued or training and {what} not fit (max_active_runs_per_person"
                         f" = {allowed}, set in this server's lmcore.toml); wait for one to end or stop one")


def check_out_folder(out: Path) -> None:
    """A folder for checkpoints (train --out): a directory we can write, or one we can make."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out}: exists and is not a folder")
    parent = next((p for p in [out, *out.parents] if p.exists()), None)
    if parent is None or not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"--out {out}: cannot write there")


def _slots_full(full: NoFreeSlot, limits: Limits) -> LimitError:
    return LimitError(f"{full.active} runs are training already (max_parallel_jobs = {full.allowed} in "
                      f"{limits.where()}); wait for one to end or stop one")


# --- start ----------------------------------------------------------------------------------------------
def queue(store: RunStore, configs: list[RunConfig], limits: Limits | None = None, corpus: Corpus | None = None,
          sweep: tuple[str, dict] | None = None, start: bool = True, person: Person | None = None) -> list[int]:
    """Check every run, then queue them all (as one sweep, named and specified by `sweep`), owned by `person`
    (None: the machine's owner); returns their ids. The queue starts them as slots free up (pump)."""
    limits = limits or load_limits(store.home)
    corpora = check(store, configs, limits, corpus, person=person)
    owner = _owner(person)
    sweep_id = store.create_sweep(*sweep, **owner) if sweep else None
    ids = [store.create_run(cfg.with_vocab(len(corpora[spec_fingerprint(cfg.corpus)].vocab)).to_dict(),
                            sweep_id=sweep_id, **owner) for cfg in configs]
    if start:
        pump(store)
    return ids


def start_here(store: RunStore, cfg: RunConfig, limits: Limits | None = None,
               out: Path | None = None, person: Person | None = None) -> tuple[int, Corpus]:
    """A run trained in this process (the CLI's train), owned by `person` (None: the machine's owner): checked,
    then its row created `running` with this pid in the same transaction as the slot check, so processes
    started together cannot all pass it."""
    limits = limits or load_limits(store.home)
    if out is not None:
        check_out_folder(out)
    corpus = next(iter(check(store, [cfg], limits, queueing=False, person=person).values()))
    cfg = cfg.with_vocab(len(corpus.vocab))
    try:
        run_id = store.create_run(cfg.to_dict(), status="running", max_training=limits.max_parallel_jobs,
                                  pid=os.getpid(), **_owner(person))
    except NoFreeSlot as full:
        raise _slots_full(full, limits) from None
    return run_id, corpus


def _owner(person: Person | None) -> dict:
    """The owner columns of a new run or sweep: the person's, or the machine owner's when no one is named."""
    person = person or machine_owner()
    return {"owner": person.id, "owner_name": person.name}


def pump(store: RunStore, max_parallel: int | None = None, executor=None) -> list[int]:
    """Start queued runs while fewer than max_parallel are training, people in turn (fairshare.fair_order);
    returns the ids started.

    executor: where the jobs run (runs.executors; default: local processes, or $LMCORE_EXECUTOR)."""
    executor = executor or current_executor()
    jobs.reap_children()
    for run_id, why in executor.reap(store):
        _mark_lost(store, run_id, f"the Ray task ended without reporting ({why})")
    mark_interrupted(store)
    max_parallel = max_parallel or load_limits(store.home).max_parallel_jobs
    started = []
    active = store.list_runs(ACTIVE)
    for run in fair_order([r for r in active if r.status == "queued"], training_counts(active)):
        try:
            # started_at now: a resumed run's old one would make its new process look like a reused pid
            if not store.claim(run.id, "queued", "starting", max_training=max_parallel, started_at=time.time()):
                continue  # another process started (or stopped) it first
        except NoFreeSlot:
            break
        executor.start(store, run.id, jobs.threads_per_job(max_parallel), max_parallel, body=run_job)
        started.append(run.id)
    return started


def mark_interrupted(store: RunStore) -> list[int]:
    """Runs whose process is gone without saying so (killed, machine restarted) become `interrupted`."""
    lost = []
    for run in store.list_runs(("starting", "running")):
        if run.pid is not None and run.pid < 0:
            continue  # a Ray task on some node: its driver asks Ray how it ended (executors.RayExecutor.reap)
        # a run just claimed has no pid until its process is started: give that a moment, not a dead one
        grace = run.pid is None and run.status == "starting" and time.time() - run.updated_at < 30
        if not grace and not jobs.job_alive(run.pid, run.started_at):
            if _mark_lost(store, run.id, "the job's process ended without reporting (killed?)"):
                lost.append(run.id)
    return lost


def _mark_lost(store: RunStore, run_id: int, why: str) -> bool:
    run = store.get_run(run_id)
    if run is None or run.status not in ("starting", "running"):
        return False
    jobs.sync_checkpoint_rows(store, run_id)  # before the claim: once interrupted, it may be resumed
    return store.claim(run_id, run.status, "interrupted", finished_at=time.time(), message=why)


# --- a job: the body of the process (or Ray task) that trains a queued run --------------------------------
def run_job(store: RunStore, run_id: int, threads: int = 0, max_parallel: int | None = None,
            remote: bool = False) -> str:
    """Train the run, record how it ended, start the next queued run.

    remote: a Ray task (runs.executors): its pid is recorded negated and the driver pumps the queue."""
    run = store.get_run(run_id)
    if run.cfg.train.threads or threads:  # a config that pins its threads has them, whatever the queue's share
        torch.set_num_threads(run.cfg.train.threads or threads)
    # a local job's threads follow the free cores, unless its config pins them
    share = (threads, max_parallel) if threads and max_parallel and not remote and not run.cfg.train.threads else None
    store.claim(run_id, "starting", "running", pid=-os.getpid() if remote else os.getpid(), started_at=time.time())
    try:
        corpus = load_corpus(run.cfg.corpus)
        cfg = run.cfg.with_vocab(len(corpus.vocab))
        check_model(count_params(cfg.model), load_limits(store.home))
        resume_from = last_checkpoint(store, run_id)
        begin_training(store, run_id)
        result = train(cfg, resume_from.parent if resume_from else store.run_dir(run_id),
                       jobs.StoreHooks(store, run_id, share), corpus=corpus, resume_from=resume_from)
        status = record_result(store, run_id, result)
    except Exception as err:  # noqa: BLE001 -- every failure is recorded; an unexpected one with its trace in log.txt
        if not isinstance(err, (CorpusError, ValueError, OSError)):
            traceback.print_exc()
        status = end_with_error(store, run_id, err)
    if share:  # the job's own threads again (train gives them back itself unless it raised)
        torch.set_num_threads(threads)
    if not remote:
        pump(store, max_parallel)
    return status


def record_result(store: RunStore, run_id: int, result: TrainResult) -> str:
    """How a run ended (done, stopped, diverged) and its final numbers; returns the status."""
    store.update_run(run_id, status=result.status, message=result.message, step=result.step,
                     best_valid_ppl=result.best_valid_ppl, test_ppl=result.test_ppl,
                     tokens_per_s=result.tokens_per_s, wall_time=result.wall_time, finished_at=time.time())
    return result.status



def end_with_error(store: RunStore, run_id: int, err: BaseException) -> str:
    """How a claimed run ends on an error: `interrupted` with the reason while its last.pt is there to go on
    from (a full disk, a lost device), `failed` otherwise, `stopped` on Ctrl-C. Returns the status."""
    expected = isinstance(err, (CorpusError, ValueError, OSError)) or not isinstance(err, Exception)
    message = str(err) if expected and str(err) else f"{type(err).__name__}: {err}".rstrip(": ")
    status = "stopped" if not isinstance(err, Exception) else \
        "interrupted" if last_checkpoint(store, run_id) else "failed"
    if status == "interrupted":
        message += " (resume carries on from its last checkpoint)"
    store.update_run(run_id, status=status, message=message, finished_at=time.time())
    return status


def begin_training(store: RunStore, run_id: int) -> int | None:
    """Where a run's job (or the CLI's own process) starts training: the metric rows past its last.pt dropped and
    the step it starts from recorded, so that the ETA counts this job's steps alone. Returns that step."""
    step = rewind_metrics(store, run_id)
    store.update_run(run_id, started_step=step or 0)
    return step


def rewind_metrics(store: RunStore, run_id: int) -> int | None:
    """Drop the metric rows past the run's last.pt (a resumed run logs those steps again); returns its step."""
    last = store.checkpoints(run_id).get("last")
    if not last or not Path(last["path"]).is_file():
        return None
    store.delete_metrics_after(run_id, last["step"])
    return last["step"]


def last_checkpoint(store: RunStore, run_id: int) -> Path | None:
    last = store.checkpoints(run_id).get("last")
    return Path(last["path"]) if last and Path(last["path"]).is_file() else None


def wait_for(store: RunStore, run_ids: list[int], timeout: float = 600.0, poll: float = 0.2) -> list:
    """Block until every run has left the queued/starting/running states (for the CLI and tests)."""
    deadline = time.monotonic() + timeout
    while True:
        pump(store)
        runs = [store.get_run(i) for i in run_ids]
        if all(r.status not in ACTIVE for r in runs):
            return runs
        if time.monotonic() > deadline:
            raise TimeoutError(f"runs {run_ids} still active after {timeout:.0f} s")
        time.sleep(poll)


# --- resume -----------------------------------------------------------------------------------------------
def resumable(store: RunStore, run) -> bool:
    """Stopped, interrupted and finished runs; a failed one too when its last.pt is there to go on from."""
    return run.status in RESUMABLE or (run.status == "failed" and last_checkpoint(store, run.id) is not None)


@dataclass
class Resumed:
    """What a resumed run goes on with: its config, the corpus read to check it, and where it carries on."""
    cfg: RunConfig
    corpus: Corpus
    resume_from: Path | None  # its last.pt, or None: it starts again from step 0
    folder: Path


def resume(store: RunStore, run_id: int, epochs: int | None = None, max_steps: int | None = None,
           time_budget: float | None = None, device: str | None = None, start: bool = True,
           limits: Limits | None = None, here: bool = False, person: Person | None = None) -> Resumed:
    """Queue a stopped, interrupted or finished run again (here: claim it `running` for this process, with
    a training slot, in one transaction); its job carries on from last.pt.

    epochs: the new total; by default the run's own, or one more when it has trained them all (or none
    more when it was killed in its final test evaluation). max_steps, time_budget, device: the run's own
    unless given (a run recorded on a GPU may go on on the CPU). person: who asks (NotYours unless they may
    change the run); it stays its owner's."""
    run = _changeable(store, run_id, person, "resume")
    if not resumable(store, run):
        what = "is still active" if run.status in ACTIVE else f"is {run.status}"
        hint = "; train it again with a smaller learning rate" if run.status == "diverged" else ""
        raise ValueError(f"run {run_id} {what}: only stopped, interrupted or finished runs (or failed ones with a "
                         f"last checkpoint) can be resumed{hint}")
    position = jobs.resume_point(store, run_id)
    cfg = _resumed_config(run, position, epochs, max_steps, time_budget, device)
    limits = limits or load_limits(store.home)  # read once: the checks and the slot claim below
    corpus = next(iter(check(store, [cfg], limits, queueing=not here, person=person).values()))
    at = f"step {position['step']}" if position else "the start (it had no checkpoint to resume from)"
    _claim_resumed(store, run, cfg, limits, here, message=f"resumed from {at}")
    if position is None:  # only once the resume is accepted
        store.delete_metrics_after(run_id, -1)  # it starts again from step 0: the old curve would be drawn twice
    if start and not here:
        pump(store)
    resume_from = last_checkpoint(store, run_id)
    return Resumed(cfg, corpus, resume_from, resume_from.parent if resume_from else store.run_dir(run_id))


def _resumed_config(run, position: dict | None, epochs, max_steps, time_budget, device) -> RunConfig:
    """The run's config with the bounds it goes on to: its own unless new ones are given."""
    t, done_epochs = run.cfg.train, position["epoch"] - 1 if position else 0
    steps = t.max_steps if max_steps is None else max_steps
    trained = bool(position) and (done_epochs >= t.epochs or bool(steps and position["step"] >= steps))
    # killed during its final test evaluation: it resumes to that evaluation only, not to one more epoch
    only_test = trained and epochs is None and max_steps is None and run.test_ppl is None
    if epochs is None:
        epochs = t.epochs if done_epochs < t.epochs or only_test else done_epochs + 1
    cfg = replace(run.cfg, train=replace(t, epochs=epochs, max_steps=steps,
                                         time_budget=t.time_budget if time_budget is None else time_budget,
                                         device=t.device if device is None else device))
    validate(cfg)
    if epochs <= done_epochs and not only_test:
        raise ValueError(f"run {run.id} has trained {done_epochs} epochs already; ask for more than that")
    if steps and position and steps <= position["step"] and not only_test:
        raise ValueError(f"run {run.id} is at step {position['step']} already; ask for more max-steps than that")
    return cfg


def _claim_resumed(store: RunStore, run, cfg: RunConfig, limits: Limits, here: bool, message: str) -> None:
    # archived=0: a run that trains again is shown again (an archived one is hidden from where it is stopped)
    fields = dict(config=json.dumps(cfg.to_dict()), stop_requested=0, message=message, finished_at=None, pid=None,
                  archived=0)
    if here:
        fields.update(pid=os.getpid(), started_at=time.time())
    try:
        claimed = store.claim(run.id, run.status, "running" if here else "queued",
                              max_training=limits.max_parallel_jobs if here else None, **fields)
    except NoFreeSlot as full:
        raise _slots_full(full, limits) from None
    if not claimed:
        raise ValueError(f"run {run.id} changed status meanwhile; look again")


def requeue_failed(store: RunStore, run_id: int, why: str) -> bool:
    """A failed run queued again as it was (a sweep's resume); its job resumes from last.pt if it has one."""
    return store.claim(run_id, "failed", "queued", stop_requested=0, finished_at=None, pid=None, message=why,
                       archived=0)


# --- stop and delete -----------------------------------------------------------------------------------------
def _changeable(store: RunStore, run_id: int, person: Person | None, action: str):
    return changeable(store.get_run(run_id), f"run {run_id}", store.home, person, action)


def stop(store: RunStore, run_id: int, person: Person | None = None) -> str:
    """A queued run is stopped at once; a running one finishes its step, saves and stops. Returns what happened.
    person: who asks (NotYours unless they may change the run)."""
    run = _changeable(store, run_id, person, "stop")
    if run.status not in ACTIVE:
        raise ValueError(f"run {run_id} is {run.status}, not training")
    if store.claim(run_id, "queued", "stopped", message="stopped before it started", finished_at=time.time()):
        return "stopped"
    store.update_run(run_id, stop_requested=1)
    return "stop requested; it saves its checkpoint and ends after this step"


def delete(store: RunStore, run_id: int, person: Person | None = None) -> list[Path]:
    """Remove a run that is not training: its checkpoint files, its folder and its rows. Returns what was removed.
    person: who asks (NotYours unless they may change the run)."""
    run = _changeable(store, run_id, person, "delete")
    if run.status in ACTIVE:
        raise ValueError(f"run {run_id} is {run.status}: stop it first")
    own, removed = store.run_dir(run_id), []
    if own.is_dir():
        shutil.rmtree(own)
        removed.append(own)
    for c in store.checkpoints(run_id).values():  # a --out folder may hold the user's other files: only these go
        path = Path(c["path"])
        if path.parent != own and path.is_file():
            path.unlink()
            removed.append(path)
    store.delete_run(run_id)
    return removed

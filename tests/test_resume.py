"""Resuming: a run cut by max-steps, a stop request or SIGKILL carries on from last.pt and ends with the
metrics of a run that was never interrupted (same seed, CPU); damaged, half-written and foreign checkpoints
are refused with a clear message, and a full disk never leaves a bad checkpoint behind."""
from __future__ import annotations

import errno
import json
import math
import pickle
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from lmcore.cli.main import main
from lmcore.runs import jobs, service
from lmcore.runs.catalog import store_runs
from lmcore.runs.store import RunStore
from lmcore.training.checkpoints import CheckpointError, load_checkpoint, read_payload, save_checkpoint
from lmcore.training.trainer import train

from .conftest import PYTHON, REPO, subprocess_env, tiny_config
from .test_train import Recorder, _shifted_corpus, _untimed

REL = 1e-4  # the bound; on one CPU thread the runs agree exactly


def _config(source, arch, optimizer, max_steps=0):
    cfg = tiny_config(source, arch, optimizer=optimizer, lr=2.0 if optimizer == "sgd" else 0.01, epochs=3,
                      max_steps=max_steps, eval_every=25)
    cfg.model.dropout = 0.3  # dropout draws random numbers: the RNG state must be restored too
    return cfg


def _close(a: float, b: float) -> bool:
    return a == b or abs(a - b) <= REL * max(abs(a), abs(b))


def _assert_same_ending(uninterrupted: Recorder, ra, resumed: Recorder, rb, first_step: int):
    rows_a = {r["step"]: r for r in _untimed(uninterrupted.rows)}
    rows_b = _untimed(resumed.rows)
    assert [r["step"] for r in rows_b] == [s for s in rows_a if s > first_step]
    for r in rows_b:
        for key in ("valid_loss", "train_loss", "lr", "epoch"):
            assert _close(r[key], rows_a[r["step"]][key]), (r["step"], key, r[key], rows_a[r["step"]][key])
    assert rb.status == ra.status == "done" and rb.step == ra.step
    assert _close(rb.best_valid_ppl, ra.best_valid_ppl) and _close(rb.test_ppl, ra.test_ppl)


# arch, optimizer, corpus, how the first session ends and at which step
CASES = [
    ("lstm", "sgd", "grammar", "max_steps", 37),     # off the evaluation schedule, mid-epoch
    ("gru", "adam", "grammar", "stop", 50),           # a stop request, on the schedule
    ("elman", "sgd", "grammar", "max_steps", 105),    # exactly at an epoch's end
    ("lstm", "adam", "shifted", "max_steps", 25),     # the lr is divided at every epoch end here
]


@pytest.mark.parametrize("arch, optimizer, corpus, cut, at", CASES, ids=[f"{c[0]}-{c[1]}-{c[2]}-{c[3]}{c[4]}" for c in CASES])
def test_resumed_run_ends_like_an_uninterrupted_one(arch, optimizer, corpus, cut, at, grammar_file, tmp_path):
    source = grammar_file if corpus == "grammar" else _shifted_corpus(tmp_path / "shift")
    a_hooks = Recorder()
    ra = train(_config(source, arch, optimizer), tmp_path / "a", a_hooks)

    first = _config(source, arch, optimizer, max_steps=at if cut == "max_steps" else 0)
    stopper = Recorder(stop_after=at if cut == "stop" else None)
    r1 = train(first, tmp_path / "b", stopper)
    assert r1.step == at and r1.status == ("stopped" if cut == "stop" else "done")
    assert read_payload(tmp_path / "b" / "last.pt")["train_state"]["position"]["step"] == at
    b_hooks = Recorder()
    rb = train(_config(source, arch, optimizer), tmp_path / "b", b_hooks, resume_from=tmp_path / "b" / "last.pt")
    assert b_hooks.start["resumed_at"] == at and "init" not in [k for k, *_ in b_hooks.checkpoints]
    _assert_same_ending(a_hooks, ra, b_hooks, rb, at)
    if corpus == "shifted":
        assert len({r["lr"] for r in b_hooks.rows}) > 1  # the lr schedule was carried across the cut
    wa, wb = load_checkpoint(tmp_path / "a" / "last.pt")[0], load_checkpoint(tmp_path / "b" / "last.pt")[0]
    assert all(torch.equal(p, q) for p, q in zip(wa.state_dict().values(), wb.state_dict().values()))


def test_an_evaluation_made_by_a_cut_never_changes_the_course(tmp_path):
    """Cut off the schedule, the run evaluates once more (so a stopped run shows where it got to). That extra
    evaluation may give best.pt, but the lr schedule only follows scheduled evaluations: the weights, the lr
    and every scheduled row stay those of the uninterrupted run."""
    source = _shifted_corpus(tmp_path / "shift")  # valid only gets worse: the extra evaluation is the best
    a_hooks, b_hooks = Recorder(), Recorder()
    ra = train(_config(source, "lstm", "adam"), tmp_path / "a", a_hooks)
    train(_config(source, "lstm", "adam", max_steps=20), tmp_path / "b", Recorder())
    rb = train(_config(source, "lstm", "adam"), tmp_path / "b", b_hooks, resume_from=tmp_path / "b" / "last.pt")
    rows_a = {r["step"]: r for r in _untimed(a_hooks.rows)}
    assert [(r["step"], r["lr"], r["valid_loss"]) for r in _untimed(b_hooks.rows)] == \
        [(s, r["lr"], r["valid_loss"]) for s, r in rows_a.items() if s > 20]
    assert [r["lr"] for r in b_hooks.rows if r["epoch"] == int(r["epoch"])] == [0.01, 0.01, 0.0025]  # epoch ends
    assert rb.best_valid_ppl < ra.best_valid_ppl  # best.pt holds the step-20 weights
    assert load_checkpoint(tmp_path / "b" / "best.pt")[3]["step"] == 20
    wa, wb = load_checkpoint(tmp_path / "a" / "last.pt")[0], load_checkpoint(tmp_path / "b" / "last.pt")[0]
    assert all(torch.equal(p, q) for p, q in zip(wa.state_dict().values(), wb.state_dict().values()))


def test_resume_refuses_other_settings_and_a_checkpoint_without_state(tiny_cfg, tmp_path):
    cfg = tiny_cfg("gru", max_steps=20, eval_every=10)
    train(cfg, tmp_path / "run")
    other = tiny_cfg("gru", max_steps=40, eval_every=10, batch=8)
    with pytest.raises(CheckpointError, match=r"other settings \(train\.batch\)"):
        train(other, tmp_path / "run", resume_from=tmp_path / "run" / "last.pt")
    with pytest.raises(CheckpointError, match="no training state"):
        train(tiny_cfg("gru", max_steps=40, eval_every=10), tmp_path / "run", resume_from=tmp_path / "run" / "best.pt")


# --- the CLI ----------------------------------------------------------------------------------

TINY = ["--tokenizer", "word", "--arch", "lstm", "--emb", "16", "--hidden", "16", "--layers", "1", "--dropout", "0.2",
        "--bptt", "8", "--batch", "4", "--optimizer", "adam", "--threads", "1", "--seed", "5", "--eval-every", "10"]


def _cli(*args, home):
    return subprocess.run([PYTHON, "-m", "lmcore", "--home", str(home), *map(str, args)], cwd=REPO,
                          env=subprocess_env(home), capture_output=True, text=True, timeout=120)


def test_cli_resume_by_id_and_by_folder_matches_an_uninterrupted_run(grammar_file, tmp_path):
    home = tmp_path / "home"
    whole = _cli("train", "--corpus", grammar_file, *TINY, "--max-steps", 40, "--json", home=home)
    half = _cli("train", "--corpus", grammar_file, *TINY, "--max-steps", 20, "--json", home=home)
    assert whole.returncode == 0 and half.returncode == 0, whole.stderr + half.stderr
    run_id = json.loads(half.stdout.splitlines()[-1])["run_id"]
    resumed = _cli("train", "--resume", run_id, "--max-steps", 40, "--json", home=home)
    assert resumed.returncode == 0, resumed.stderr
    a = [json.loads(line) for line in whole.stdout.splitlines()]
    b = [json.loads(line) for line in resumed.stdout.splitlines()]
    assert [r["step"] for r in b[:-1]] == [30, 40] and b[-1]["run_id"] == run_id and b[-1]["step"] == 40
    for ra, rb in zip(a[2:4], b[:2]):
        assert _close(ra["valid_ppl"], rb["valid_ppl"]) and _close(ra["train_loss"], rb["train_loss"])
    assert _close(a[-1]["valid_ppl"], b[-1]["valid_ppl"]) and _close(a[-1]["test_ppl"], b[-1]["test_ppl"])
    store = RunStore(home)
    assert [m["step"] for m in store.metrics(run_id)] == [10, 20, 30, 40]  # one curve, no duplicated steps
    assert store.get_run(run_id)["status"] == "done" and store.get_run(run_id)["step"] == 40

    # by its folder, in this process
    assert main(["--home", str(home), "train", "--resume", str(store.run_dir(run_id)), "--max-steps", "50"]) == 0
    assert store.get_run(run_id)["step"] == 50 and store.metrics(run_id)[-1]["step"] == 50


def test_a_relative_out_folder_is_recorded_so_that_the_run_resumes_from_anywhere(grammar_file, tmp_path, monkeypatch,
                                                                                  capsys):
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path)
    assert main(["--home", "home", "train", "--corpus", str(grammar_file), *TINY, "--max-steps", "10",
                 "--out", "mine"]) == 0
    rows = RunStore("home").checkpoints(1)
    assert rows["last"]["path"] == str(tmp_path / "mine" / "last.pt")
    assert all(Path(r["path"]).is_absolute() for r in rows.values())
    monkeypatch.chdir(tmp_path / "elsewhere")
    capsys.readouterr()
    assert main(["--home", str(tmp_path / "home"), "train", "--resume", "1", "--max-steps", "20"]) == 0
    assert "resuming from step 10" in capsys.readouterr().err
    assert [m["step"] for m in RunStore(tmp_path / "home").metrics(1)] == [10, 20]


@pytest.mark.parametrize("args, message", [
    (["--resume", "999"], "no run 999"),
    (["--resume", "/nowhere/at/all"], "no run in"),
    (["--resume", "1", "--out", "x"], "--out does not go with --resume"),
    (["--resume", "1", "--max-steps", "5"], "at step 10 already"),
])
def test_cli_resume_refusals_are_one_line(args, message, grammar_file, tmp_path, capsys):
    home = tmp_path / "home"
    assert main(["--home", str(home), "train", "--corpus", str(grammar_file), *TINY, "--max-steps", "10"]) == 0
    capsys.readouterr()
    assert main(["--home", str(home), "train", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert RunStore(home).get_run(1)["status"] == "done"  # a refusal changes nothing


def test_diverged_and_active_runs_are_not_resumed(tiny_cfg, lmcore_home):
    store = RunStore()
    run_id = store.create_run(tiny_cfg("elman").to_dict(), status="diverged")
    with pytest.raises(ValueError, match="is diverged.*smaller learning rate"):
        service.resume(store, run_id)
    run_id = store.create_run(tiny_cfg("elman").to_dict(), status="queued")
    with pytest.raises(ValueError, match="is still active"):
        service.resume(store, run_id)


# --- checkpoints on disk ------------------------------------------------------------------------

@pytest.fixture
def trained_run(tiny_cfg, lmcore_home):
    store = RunStore()
    cfg = tiny_cfg("lstm", max_steps=20, eval_every=10)
    run_id = store.create_run(cfg.to_dict(), status="running")
    result = train(cfg, store.run_dir(run_id), jobs.StoreHooks(store, run_id))
    service.record_result(store, run_id, result)
    return store, run_id


def test_leftover_tmp_is_ignored_and_never_loaded(trained_run, capsys):
    store, run_id = trained_run
    folder = store.run_dir(run_id)
    (folder / "last.pt.tmp").write_bytes(b"half a checkpoint")
    (folder / "best.pt.tmp").write_bytes((folder / "best.pt").read_bytes()[:100])
    [ref] = store_runs(store)
    assert ref.checkpoint == folder / "last.pt"
    assert main(["--home", str(store.home), "eval", str(folder), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["step"] == 20
    with pytest.raises(CheckpointError, match=r"unfinished write \(a \.tmp file\)"):
        load_checkpoint(folder / "last.pt.tmp")
    assert jobs.resume_point(store, run_id)["step"] == 20


def test_truncated_checkpoint_is_a_clear_error(trained_run, capsys):
    store, run_id = trained_run
    best = store.run_dir(run_id) / "best.pt"
    best.write_bytes(best.read_bytes()[: best.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated, corrupt, or not written by lmcore"):
        load_checkpoint(best)
    assert main(["eval", str(best)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {best}: is not a readable checkpoint"), err
    # the job that resumes from a damaged last.pt fails with the same words, and nothing else is lost
    last = store.run_dir(run_id) / "last.pt"
    last.write_bytes(b"")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        service.resume(store, run_id)
    assert store.get_run(run_id)["status"] == "done" and len(store.metrics(run_id)) == 2


def test_a_pickled_object_never_runs_and_shapes_are_checked(trained_run, tmp_path):
    store, run_id = trained_run
    evil = tmp_path / "evil.pt"
    marker = tmp_path / "pwned"

    class Boom:
        def __reduce__(self):
            return (Path.touch, (marker,))

    torch.save({"format": 1, "payload": Boom()}, evil)
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(evil)
    assert not marker.exists()  # weights_only=True refused the object before building it
    with open(tmp_path / "plain.pt", "wb") as f:
        pickle.dump({"format": 1}, f, protocol=2)
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "plain.pt")

    payload = torch.load(store.run_dir(run_id) / "best.pt", weights_only=True)
    payload["state_dict"]["decoder.weight"] = torch.zeros(3, 3)
    torch.save(payload, tmp_path / "shapes.pt")
    with pytest.raises(CheckpointError, match=r"tensor decoder\.weight has shape \(3, 3\)"):
        load_checkpoint(tmp_path / "shapes.pt")
    payload["config"]["model"]["hidden"] = -4
    torch.save(payload, tmp_path / "config.pt")
    with pytest.raises(CheckpointError, match="config is not usable"):
        load_checkpoint(tmp_path / "config.pt")


def test_full_disk_keeps_the_last_good_checkpoint(tiny_cfg, tmp_path, monkeypatch):
    cfg = tiny_cfg("gru", max_steps=40, eval_every=10)
    run = tmp_path / "run"
    real_save, calls = torch.save, {"n": 0}

    def save_until_full(obj, f, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 3:  # init, last at 10 and at 20 (live evaluations give no best.pt); then the disk is full
            f.write(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save_until_full)
    with pytest.raises(OSError, match=r"cannot write checkpoint .*last\.pt: No space left on device"):
        train(cfg, run)
    monkeypatch.setattr(torch, "save", real_save)
    assert sorted(p.name for p in run.iterdir()) == ["init.pt", "last.pt"]  # no .tmp left behind
    assert load_checkpoint(run / "last.pt")[3]["step"] == 20


def test_full_disk_in_a_job_fails_the_run_with_the_reason(tiny_cfg, lmcore_home, monkeypatch):
    store = RunStore()
    run_id = store.create_run(tiny_cfg("elman", max_steps=10).to_dict())
    store.claim(run_id, "queued", "starting")

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full)
    monkeypatch.setattr(service, "pump", lambda *a, **k: [])
    assert service.run_job(store, run_id) == "failed"  # nothing saved yet: nothing to go on from
    run = store.get_run(run_id)
    assert run["status"] == "failed" and "cannot write checkpoint" in run["message"]
    assert "No space left on device" in run["message"]


def test_error_after_a_checkpoint_leaves_the_run_interrupted_and_resumable(tiny_cfg, lmcore_home, monkeypatch):
    """A disk that fills once a run has its last.pt left it `failed`, and failed runs were never resumed."""
    store = RunStore()
    run_id = store.create_run(tiny_cfg("elman", max_steps=10).to_dict())
    store.claim(run_id, "queued", "starting")
    monkeypatch.setattr(service, "pump", lambda *a, **k: [])
    assert service.run_job(store, run_id) == "done"
    service.resume(store, run_id, max_steps=20, start=False)
    store.claim(run_id, "queued", "starting")
    saves = torch.save
    monkeypatch.setattr(torch, "save", lambda *a, **k: (_ for _ in ()).throw(OSError(errno.ENOSPC, "No space")))
    assert service.run_job(store, run_id) == "interrupted"
    run = store.get_run(run_id)
    assert "No space" in run["message"] and "resume carries on from its last checkpoint" in run["message"]
    assert service.resumable(store, run)
    monkeypatch.setattr(torch, "save", saves)
    service.resume(store, run_id, start=False)
    store.claim(run_id, "queued", "starting")
    assert service.run_job(store, run_id) == "done" and store.get_run(run_id)["step"] == 20


def test_unwritable_data_folder_is_one_error_line(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert main(["--home", str(blocker / "home"), "train", "--corpus", "builtin:agreement", "--max-steps", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: cannot use data folder") and "Not a directory" in err[0]
    with pytest.raises(OSError, match="cannot use data folder"):
        RunStore(blocker / "home")


def test_save_checkpoint_replaces_atomically(trained_run, tmp_path):
    store, run_id = trained_run
    model, cfg, vocab, meta = load_checkpoint(store.run_dir(run_id) / "best.pt")
    target = tmp_path / "x.pt"
    save_checkpoint(target, model, cfg, vocab, meta)
    before = target.read_bytes()
    real = torch.save

    def crash(obj, f, *a, **k):
        f.write(b"garbage")
        raise OSError(errno.EIO, "Input/output error")

    torch.save = crash
    try:
        with pytest.raises(OSError, match="cannot write checkpoint"):
            save_checkpoint(target, model, cfg, vocab, {"step": 99})
    finally:
        torch.save = real
    assert target.read_bytes() == before and not (tmp_path / "x.pt.tmp").exists()
    shutil.copy(target, tmp_path / "copy.pt")
    assert load_checkpoint(tmp_path / "copy.pt")[3] == meta
    assert math.isfinite(meta["valid_ppl"])


def test_a_finished_run_resumes_for_one_more_epoch(tiny_cfg, lmcore_home):
    store = RunStore()
    cfg = tiny_cfg("elman", epochs=1, max_steps=0)
    run_id = store.create_run(cfg.to_dict(), status="running")
    result = train(cfg, store.run_dir(run_id), jobs.StoreHooks(store, run_id))
    service.record_result(store, run_id, result)
    assert jobs.resume_point(store, run_id)["epoch"] == 2  # epoch 1 done: the next would be 2
    resumed = service.resume(store, run_id, start=False)
    run = store.get_run(run_id)
    assert resumed.cfg.train.epochs == 2 and run["status"] == "queued" and run["config"]["train"]["epochs"] == 2
    assert run["message"] == f"resumed from step {result.step}" and run["finished_at"] is None
    with pytest.raises(ValueError, match="is still active"):
        service.resume(store, run_id)

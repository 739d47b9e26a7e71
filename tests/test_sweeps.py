"""Sweeps: grid expansion, the sweeps table and its migration, resume, the summaries, and one real sweep of
tiny models through the job queue (real processes) shown on the Sweeps page."""
from __future__ import annotations

import dataclasses
import json
import math
import sqlite3
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from lmcore.cli.main import main
from lmcore.limits import LimitError
from lmcore.runs import service, sweeps
from lmcore.runs.reports import change_from_reference, sweep_summary, sweep_table
from lmcore.runs.store import SCHEMA, RunStore
from lmcore.runs.sweeps import SweepSpec, expand
from lmcore.viz.sweeps import change_figure, params_figure, sweep_box_figure

from .conftest import REPO, stored_run, tiny_config


@pytest.fixture
def store(lmcore_home) -> RunStore:
    return RunStore()


pytestmark = pytest.mark.usefixtures("end_job_processes")  # see conftest.py


def tiny_spec(variants=("vanilla", "nig"), seeds=(1, 2), **kw) -> SweepSpec:
    base = tiny_config("builtin:agreement", "lstm", max_steps=20)
    return SweepSpec(base=base, archs=["lstm"], variants=list(variants), hidden=[12], seeds=list(seeds), **kw)


# --- the grid ---------------------------------------------------------------------------------

def test_grid_expansion_crosses_every_axis_and_applies_variants_to_their_architecture():
    spec = tiny_spec(variants=["vanilla", "nfg"], seeds=[1, 2])
    spec.archs, spec.gru_conventions, spec.hidden, spec.lr = ["lstm", "gru", "elman"], ["pytorch", "cho"], [8, 16], [0.01, 0.1]
    configs = expand(spec)
    assert len(configs) == 2 * 2 * (2 + 2 + 1) * 2  # hidden × lr × (lstm variants + gru conventions + elman) × seeds
    points = [(c.model.hidden, c.train.lr, c.model.arch, c.model.variant, c.model.gru_convention, c.train.seed)
              for c in configs]
    assert len(set(points)) == len(points)
    assert points[:4] == [(8, 0.01, "lstm", "vanilla", "pytorch", 1), (8, 0.01, "lstm", "vanilla", "pytorch", 2),
                          (8, 0.01, "lstm", "nfg", "pytorch", 1), (8, 0.01, "lstm", "nfg", "pytorch", 2)]
    assert {p[3] for p in points if p[2] != "lstm"} == {"vanilla"}
    assert {p[4] for p in points if p[2] != "gru"} == {"pytorch"}
    assert all(c.model.emb == c.model.hidden for c in configs)
    assert all(c.train.max_steps == 20 and c.corpus.source == "builtin:agreement" for c in configs)
    names = [c.name for c in configs]
    assert len(set(names)) == len(names) and "LSTM-NFG 1×8 seed 2 lr 0.01" in names
    for cfg in configs:
        cfg.model.vocab_size = 10
        cfg.model.validate()


def test_grid_spec_round_trips_and_refuses_bad_grids():
    spec = tiny_spec()
    assert SweepSpec.from_dict(json.loads(json.dumps(spec.to_dict()))).to_dict() == spec.to_dict()
    for change, message in [(dict(seeds=[]), "seeds"), (dict(seeds=[1, 1]), "twice"),
                            (dict(archs=["transformer"]), "unknown architecture"), (dict(variants=[]), "variant")]:
        bad = tiny_spec(**{k: v for k, v in change.items() if k in ("variants", "seeds")})
        for k, v in change.items():
            setattr(bad, k, v)
        with pytest.raises(ValueError, match=message):
            expand(bad)


# --- the store ----------------------------------------------------------------------------------

def test_an_existing_store_gains_the_sweeps_table_and_the_sweep_id_column(lmcore_home):
    lmcore_home.mkdir(parents=True)
    old = sqlite3.connect(lmcore_home / "runs.sqlite")  # a store from before sweeps: no table, no column
    old.executescript(SCHEMA.split("CREATE TABLE IF NOT EXISTS sweeps")[0])
    old.execute("INSERT INTO runs (name, created_at, updated_at, status, config, corpus_source, arch) "
                "VALUES ('old', 0, 0, 'done', ?, 'x', 'lstm')", (json.dumps(tiny_config("builtin:agreement").to_dict()),))
    old.commit()
    old.close()
    store = RunStore(lmcore_home)
    RunStore(lmcore_home)  # opening again migrates nothing twice
    assert store.list_runs()[0]["sweep_id"] is None and store.list_sweeps() == []
    sid = store.create_sweep("s", {"a": 1})
    run = store.create_run(tiny_config("builtin:agreement").to_dict(), sweep_id=sid)
    assert store.get_run(run)["sweep_id"] == sid
    assert store.get_sweep(sid)["spec"] == {"a": 1} and store.get_sweep(sid)["status"] == "running"


def test_a_sweep_over_the_queue_limit_is_refused_whole(store, lmcore_home):
    (lmcore_home / "lmcore.toml").write_text("[limits]\nmax_queued_runs = 3\n")
    with pytest.raises(LimitError, match="max_queued_runs"):
        sweeps.submit_sweep(store, tiny_spec(), start=False)
    assert store.list_sweeps() == [] and store.list_runs() == []


def test_resume_requeues_only_the_runs_that_did_not_finish(store):
    sid = sweeps.submit_sweep(store, tiny_spec(variants=["vanilla"], seeds=[1, 2, 3, 4, 5, 6]), start=False)
    runs = sweeps.sweep_runs(store, sid)
    assert len(runs) == 6 and all(r["status"] == "queued" for r in runs)
    statuses = ["done", "diverged", "failed", "interrupted", "stopped", "queued"]
    for run, status in zip(runs, statuses):
        store.update_run(run["id"], status=status, finished_at=123.0)
    p = sweeps.progress(store, sid)
    assert (p["done"], p["finished"], p["total"], p["active"], p["status"]) == (1, 2, 6, 1, "running")
    assert sweeps.progress_text(p).startswith("1/6 done")

    queued = sweeps.resume_sweep(store, sid, start=False)
    assert queued == [r["id"] for r in runs[2:5]]
    after = {r["id"]: r for r in sweeps.sweep_runs(store, sid)}
    assert [after[r["id"]]["status"] for r in runs] == ["done", "diverged", "queued", "queued", "queued", "queued"]
    assert after[runs[0]["id"]]["finished_at"] == 123.0  # a finished run is left exactly as it was
    assert all(after[r["id"]]["config"]["train"]["max_steps"] == 20 for r in runs)  # resumed to their own end
    with pytest.raises(ValueError, match="no sweep"):
        sweeps.resume_sweep(store, sid + 1)


# --- the summaries ----------------------------------------------------------------------------------

def hand_made_table() -> pd.DataFrame:
    rows = [  # model, seed, test ppl, status, parameters
        ("LSTM", 1, 100.0, "done", 1000), ("LSTM", 2, 110.0, "done", 1000),
        ("LSTM-NIG", 1, 105.0, "done", 900), ("LSTM-NIG", 2, 120.0, "done", 900),
        ("LSTM-NFG", 1, 130.0, "done", 900), ("LSTM-NFG", 2, None, "failed", 900),
        ("LSTM-NOAF", 3, 200.0, "done", 1000)]  # no LSTM run with seed 3
    return pd.DataFrame([{"run": i, "model": m, "setting": "1×8 lr 20", "seed": s, "test ppl": p, "status": st,
                          "parameters": n, "best valid ppl": p} for i, (m, s, p, st, n) in enumerate(rows)])


def test_change_from_vanilla_is_per_seed_then_mean_and_std():
    change = change_from_reference(hand_made_table(), "test ppl", "LSTM").set_index("model")
    assert change.loc["LSTM", "mean Δ test ppl"] == 0.0
    assert change.loc["LSTM-NIG", "mean Δ test ppl"] == 7.5  # (105 − 100 + 120 − 110) / 2
    assert math.isclose(change.loc["LSTM-NIG", "std Δ test ppl"], math.sqrt(12.5))  # sample std of 5 and 10
    assert change.loc["LSTM-NFG", "mean Δ test ppl"] == 30.0 and change.loc["LSTM-NFG", "seeds"] == 1
    assert pd.isna(change.loc["LSTM-NFG", "std Δ test ppl"])
    assert change.loc["LSTM-NOAF", "seeds"] == 0 and pd.isna(change.loc["LSTM-NOAF", "mean Δ test ppl"])

    summary = sweep_summary(hand_made_table(), "test ppl").set_index("model")
    assert summary.loc["LSTM-NIG", "runs"] == 2 and summary.loc["LSTM-NIG", "mean test ppl"] == 112.5
    assert summary.loc["LSTM-NFG", "runs"] == 1  # the failed seed is not a result


def test_a_finite_blow_up_is_marked_and_kept_out_of_the_summaries(tmp_path):
    configs = expand(tiny_spec(variants=["vanilla", "noaf"], seeds=[1, 2]))
    ppl = {("vanilla", 1): 60.0, ("vanilla", 2): 70.0, ("noaf", 1): 90.0, ("noaf", 2): 1e240}  # vocabulary of 50
    runs = [stored_run(tmp_path, c, params=1000, status="done", vocab=50, test_ppl=ppl[key], best_valid_ppl=ppl[key])
            for c in configs for key in [(c.model.variant, c.train.seed)]]
    table = sweep_table(runs)
    assert table["status"].tolist().count("blew up") == 1
    assert table.loc[table["test ppl"] == 1e240, "status"].item() == "blew up"
    summary = sweep_summary(table).set_index("model")
    assert summary.loc["LSTM-NOAF", "runs"] == 1 and summary.loc["LSTM-NOAF", "mean test ppl"] == 90.0
    assert math.isfinite(summary["std test ppl"].fillna(0).max())
    change = change_from_reference(table).set_index("model")
    assert change.loc["LSTM-NOAF", "seeds"] == 1 and change.loc["LSTM-NOAF", "mean Δ test ppl"] == 30.0
    runs[0] = dataclasses.replace(runs[0], vocab=None)  # unknown vocabulary (a run from before it was recorded): nothing is judged
    assert (sweep_table(runs[:1])["status"] == "done").all()


def test_sweep_figures_from_the_tables():
    table = hand_made_table()
    box = sweep_box_figure(table)
    assert box.data[0].type == "box" and box.data[0].boxpoints == "all" and len(box.data[0].y) == 6
    change = change_figure(change_from_reference(table), reference="LSTM")
    assert list(change.data[0].x) == ["LSTM-NIG", "LSTM-NFG"] and list(change.data[0].y) == [7.5, 30.0]
    scatter = params_figure(table)
    assert {t.name for t in scatter.data} == {"LSTM", "LSTM-NIG", "LSTM-NFG", "LSTM-NOAF"}


# --- a real sweep -----------------------------------------------------------------------------------

def test_a_tiny_sweep_trains_through_the_queue_resumes_and_shows_on_the_page(store, capsys):
    sid = sweeps.submit_sweep(store, tiny_spec(), start=False)
    runs = sweeps.sweep_runs(store, sid)
    assert [(r["config"]["model"]["variant"], r["config"]["train"]["seed"]) for r in runs] == [
        ("vanilla", 1), ("vanilla", 2), ("nig", 1), ("nig", 2)]
    last = runs[-1]["id"]
    service.stop(store, last)  # stopped before it started
    p = sweeps.wait_sweep(store, sid, poll=0.2, timeout=240)
    assert (p["done"], p["total"], p["counts"].get("stopped"), p["status"]) == (3, 4, 1, "incomplete"), \
        [r["message"] for r in sweeps.sweep_runs(store, sid)]
    before = {r["id"]: (r["finished_at"], len(store.metrics(r["id"]))) for r in sweeps.sweep_runs(store, sid)
              if r["status"] == "done"}

    assert main(["sweep", "--resume", str(sid)]) == 0
    assert f"queued again runs {last}" in capsys.readouterr().err
    p = sweeps.wait_sweep(store, sid, poll=0.2, timeout=240)
    assert (p["done"], p["total"], p["status"]) == (4, 4, "done")
    assert store.get_sweep(sid)["status"] == "done"
    finished = sweeps.sweep_runs(store, sid)
    assert all(r["pid"] and r["best_valid_ppl"] > 1 and r["test_ppl"] > 1 and r["params"] for r in finished)
    assert {r["id"]: (r["finished_at"], len(store.metrics(r["id"]))) for r in finished if r["id"] in before} == before
    table = sweep_table(finished)
    assert table["model"].tolist() == ["LSTM", "LSTM", "LSTM-NIG", "LSTM-NIG"]

    assert main(["sweeps"]) == 0
    assert "4/4" in capsys.readouterr().out
    assert main(["sweeps", str(sid)]) == 0
    out = capsys.readouterr().out
    assert "LSTM-NIG" in out and "mean Δ test ppl" in out

    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120).run()
    at.switch_page("views/sweeps.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.query_params["sweep"] == str(sid)
    charts = at.get("plotly_chart")
    assert len(charts) == 3
    assert json.loads(charts[0].proto.spec)["data"][0]["type"] == "box"
    change = at.dataframe[0].value
    assert change["model"].tolist() == ["LSTM", "LSTM-NIG"] and change["seeds"].tolist() == [2, 2]
    assert at.get("download_button")


def test_sweep_cli_plans_a_grid_and_refuses_an_unknown_sweep(lmcore_home, capsys):
    assert main(["sweep", "--corpus", "builtin:agreement", "--tokenizer", "word", "--variants", "vanilla", "NFG",
                 "--seeds", "1", "2", "3", "--hidden", "8", "--plan", "--json"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert len(lines) == 6 and lines[3]["name"] == "LSTM-NFG 1×8 seed 1" and lines[3]["params"] < lines[0]["params"]
    assert main(["sweep", "--resume", "99"]) == 2
    assert "no sweep 99" in capsys.readouterr().err
    assert main(["sweeps"]) == 0
    assert "no sweeps" in capsys.readouterr().out


def test_a_relative_data_folder_names_the_same_store_for_the_cli_and_its_job_processes(tmp_path, monkeypatch,
                                                                                        grammar_file, capsys):
    """Job processes start in the repository: a relative --home or --corpus once sent them elsewhere."""
    monkeypatch.chdir(grammar_file.parent)
    assert main(["--home", "rel", "sweep", "--corpus", grammar_file.name, "--tokenizer", "word", "--arch", "elman",
                 "--hidden", "8", "--max-steps", "5", "--wait"]) == 0
    capsys.readouterr()
    store = RunStore("rel")
    assert store.home == tmp_path / "rel" and store.home.is_absolute() and grammar_file.parent == tmp_path
    runs = store.list_runs()
    assert runs and all(r["status"] == "done" and r["step"] == 5 for r in runs), [r["message"] for r in runs]
    rows = [c for r in runs for c in store.checkpoints(r["id"]).values()]
    assert rows and all(Path(c["path"]).is_absolute() and Path(c["path"]).is_file() for c in rows)
    assert not (REPO / "rel").exists()

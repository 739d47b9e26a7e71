"""A running sweep (issue 13, item 7): the same grid cannot be started twice, through the service, the CLI or
the page; the sweep's view reads progress and results from one snapshot of the store, so runs that finish
show up beside a count that agrees; the form's fields and the sweep shown are in the URL."""
from __future__ import annotations

import json

import pytest
from streamlit.testing.v1 import AppTest

from lmcore.cli.main import main
from lmcore.runs import sweeps
from lmcore.runs.reports import sweep_table
from lmcore.runs.store import RunStore
from lmcore.runs.sweeps import DuplicateSweepError, SweepSpec
from lmcore.viz.style import run_colour
from lmcore.viz.sweeps import params_figure

from .conftest import REPO, tiny_config

pytestmark = pytest.mark.usefixtures("end_job_processes")  # see conftest.py

# The page's form, filled through the URL: one tiny LSTM on the agreement corpus.
TINY_FORM = {"corpus": "builtin:agreement", "tokenizer": "word", "sw_variants": ["vanilla"], "sw_seeds": "1",
             "sw_hidden": "8", "sw_steps": "5", "sw_bptt": "8", "sw_batch": "4", "sw_epochs": "1"}


@pytest.fixture
def store(lmcore_home) -> RunStore:
    return RunStore()


def tiny_spec(variants=("vanilla", "nig"), seeds=(1, 2), max_steps=20, **kw) -> SweepSpec:
    base = tiny_config("builtin:agreement", "lstm", max_steps=max_steps)
    return SweepSpec(base=base, archs=["lstm"], variants=list(variants), hidden=[12], seeds=list(seeds), **kw)


def end_all(store: RunStore) -> None:
    for sweep in store.list_sweeps():
        sweeps.stop_sweep(store, sweep["id"])


def test_the_same_grid_is_refused_while_it_runs_naming_the_running_sweep(store):
    first = sweeps.submit_sweep(store, tiny_spec(), start=False)  # queued: running as far as a second start goes
    runs = len(store.list_runs())
    for same in (tiny_spec(name="another name"), tiny_spec(variants=["nig", "vanilla"], seeds=[2, 1])):
        with pytest.raises(DuplicateSweepError, match=f"sweep #{first} .*still running .*0/4 done") as refused:
            sweeps.submit_sweep(store, same, start=False)
        assert refused.value.sweep["id"] == first
    assert [s["id"] for s in store.list_sweeps()] == [first] and len(store.list_runs()) == runs

    other_seed = sweeps.submit_sweep(store, tiny_spec(seeds=[3]), start=False)
    other_base = sweeps.submit_sweep(store, tiny_spec(max_steps=21), start=False)
    assert len({first, other_seed, other_base}) == 3

    for run in sweeps.sweep_runs(store, first):  # the first sweep ends: its grid may be trained again
        store.update_run(run["id"], status="stopped")
    again = sweeps.submit_sweep(store, tiny_spec(), start=False)
    assert again not in (first, other_seed, other_base)


def test_the_cli_refuses_a_sweep_that_is_already_running(lmcore_home, capsys):
    grid = ["sweep", "--corpus", "builtin:agreement", "--tokenizer", "word", "--hidden", "8", "--seeds", "1",
            "--max-steps", "3", "--bptt", "8", "--batch", "4", "--json"]
    assert main(grid) == 0
    first = json.loads(capsys.readouterr().out.splitlines()[-1])["sweep_id"]
    assert main(grid) == 2
    assert f"sweep #{first}" in capsys.readouterr().err
    store = RunStore()
    assert len(store.list_sweeps()) == 1
    end_all(store)


def test_a_snapshot_shows_runs_that_finished_since_the_last_one_and_agrees_with_its_count(store):
    sid = sweeps.submit_sweep(store, tiny_spec(variants=["vanilla"], seeds=[1, 2], max_steps=5), start=False)
    p, runs = sweeps.snapshot(store, sid)
    assert (p["done"], p["active"]) == (0, 2) and not (sweep_table(runs)["status"] == "done").any()

    p = sweeps.wait_sweep(store, sid, poll=0.2, timeout=240)
    assert p["status"] == "done", [r["message"] for r in sweeps.sweep_runs(store, sid)]
    p, runs = sweeps.snapshot(store, sid)
    table = sweep_table(runs)
    assert p["done"] == 2 == int((table["status"] == "done").sum()) and table["test ppl"].notna().all()
    [points] = params_figure(table).data  # each run in its own colour, the one it has on every page
    assert list(points.marker.color) == [run_colour(r["id"]) for r in runs]


def open_sweeps(query: dict) -> AppTest:
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120).run()
    at.query_params.update(query)
    at.switch_page("views/sweeps.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_start_is_off_while_its_sweep_trains_a_second_tab_is_refused_and_the_results_appear(store):
    tab = open_sweeps(TINY_FORM)
    assert tab.text_input(key="sw_seeds").value == "1" and tab.number_input(key="sw_steps").value == 5  # from the URL
    assert not tab.button(key="sw_start").disabled
    tab.button(key="sw_start").click().run()
    assert not tab.exception, [e.value for e in tab.exception]
    [sweep] = store.list_sweeps()
    assert tab.query_params["sweep"] == str(sweep["id"])
    assert tab.button(key="sw_start").disabled  # a second click in this tab cannot queue the grid again
    assert "0/1 done" in tab.get("progress")[0].proto.text
    assert "no run of this sweep has a result yet" in tab.info[0].value.lower()

    newer = sweeps.submit_sweep(store, tiny_spec(variants=["nig"], seeds=[1]), start=False)  # another grid
    sweeps.stop_sweep(store, newer)
    other = open_sweeps(TINY_FORM)  # another tab (or a reload): Start is on, and the service refuses
    assert other.selectbox(key="sweep_pick").value == newer
    other.button(key="sw_start").click().run()
    refusal = other.error[0].value.replace("\\", "")  # as rendered: the markdown escapes gone
    assert f"sweep #{sweep['id']} ({sweep['name']})" in refusal and "still running" in refusal
    assert len(store.list_sweeps()) == 2 and len(sweeps.sweep_runs(store, sweep["id"])) == 1
    other.button(key="sw_show_twin").click().run()  # the refusal leads to the running sweep
    assert other.selectbox(key="sweep_pick").value == sweep["id"] and other.query_params["sweep"] == str(sweep["id"])

    p = sweeps.wait_sweep(store, sweep["id"], poll=0.2, timeout=240)
    assert p["status"] == "done", [r["message"] for r in sweeps.sweep_runs(store, sweep["id"])]
    tab.run()  # what the fragment draws on its next tick (AppTest cannot tick it by time)
    assert not tab.exception, [e.value for e in tab.exception]
    assert "1/1 done" in tab.get("progress")[0].proto.text and not tab.info
    assert json.loads(tab.get("plotly_chart")[0].proto.spec)["data"][0]["type"] == "box"
    assert not tab.button(key="sw_start").disabled  # the sweep has ended: the same grid may run again
    links = {link.proto.page: link.proto.query_string for link in tab.get("page_link")}
    [run] = sweeps.sweep_runs(store, sweep["id"])
    assert links["compare"] == f"compare={run['id']}"  # onward: the runs' curves on Compare


def test_the_sweep_shown_follows_the_url_and_a_choice_goes_back_into_it(store):
    first = sweeps.submit_sweep(store, tiny_spec(variants=["vanilla"], seeds=[1]), start=False)
    second = sweeps.submit_sweep(store, tiny_spec(variants=["nig"], seeds=[1]), start=False)
    end_all(store)  # nothing trains: the page only shows them
    assert open_sweeps({}).query_params["sweep"] == str(second)  # the newest, written to the URL
    at = open_sweeps({"sweep": str(first)})
    assert at.selectbox(key="sweep_pick").value == first
    at.selectbox(key="sweep_pick").set_value(second).run()
    assert at.query_params["sweep"] == str(second) and at.selectbox(key="sweep_pick").value == second

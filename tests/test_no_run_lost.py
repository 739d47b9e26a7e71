"""Nothing lost (issue 14): a run folder is never handed out twice, even when the store's database is deleted
or emptied and ids would start again at 1."""
from __future__ import annotations

from lmcore.runs.store import RunStore

from .conftest import tiny_config


def test_a_deleted_database_never_reuses_a_run_folder(lmcore_home, grammar_file):
    store = RunStore(lmcore_home)
    first = store.create_run(tiny_config(grammar_file).to_dict())
    folder = store.run_dir(first)
    folder.mkdir(parents=True)
    (folder / "best.pt").write_bytes(b"the old run's weights")
    store.path.unlink()  # the user deletes runs.sqlite (or it is lost); the run folders stay
    fresh = RunStore(lmcore_home)
    second = fresh.create_run(tiny_config(grammar_file).to_dict())
    assert second > first and not fresh.run_dir(second).exists()
    assert (folder / "best.pt").read_bytes() == b"the old run's weights"


def test_an_emptied_table_skips_past_the_highest_folder(lmcore_home, grammar_file):
    store = RunStore(lmcore_home)
    for run_id in (3, 12):
        store.run_dir(run_id).mkdir(parents=True)
    assert store.create_run(tiny_config(grammar_file).to_dict()) == 13
    assert store.create_run(tiny_config(grammar_file).to_dict()) == 14  # and on from there

"""Issue 12: the learning-rate schedule ignores live evaluations, runs that blow up say so, and the Train
page's default lineup (built by presets.run_config, as the CLI builds runs) ranks the models as the lecture does."""
from __future__ import annotations

import json
import math
import subprocess

import pytest

from lmcore.corpus.dataset import CorpusSpec
from lmcore.corpus.loading import load_corpus
from lmcore.runs.reports import compare_table
from lmcore.training.config import RunConfig
from lmcore.training.presets import DEFAULT_LINEUP, default_lineup, run_config
from lmcore.training.trainer import train

from .conftest import PYTHON, REPO, docs_lines, stored_run, subprocess_env, tiny_config
from .test_train import Recorder

EPOCH_END_KEYS = ("step", "epoch", "lr", "train_loss", "valid_loss")


def _epoch_ends(rows: list[dict]) -> list[tuple]:
    return [tuple(r[k] for k in EPOCH_END_KEYS) for r in rows if r["epoch"] == int(r["epoch"])]


@pytest.mark.parametrize("arch, optimizer, lr", [("lstm", "sgd", 10.0), ("gru", "adam", 0.03)])
def test_live_evaluations_change_nothing_but_the_curve(docs_file, tmp_path, arch, optimizer, lr):
    """The issue's bug: the epoch-end evaluation was compared with the best live one of the same epoch, so
    noise quartered the lr. Now the same seed gives the same epoch ends, lr and test ppl with or without them."""
    runs = {}
    for every in (0, 7):
        hooks = Recorder()
        cfg = tiny_config(docs_file, arch, optimizer=optimizer, lr=lr, epochs=6, max_steps=0, eval_every=every)
        runs[every] = (train(cfg, tmp_path / f"every{every}", hooks), hooks.rows)
    (plain, plain_rows), (live, live_rows) = runs[0], runs[7]
    assert len(live_rows) > 3 * len(plain_rows)  # the live run did evaluate inside its epochs
    assert _epoch_ends(live_rows) == _epoch_ends(plain_rows)
    assert len({r["lr"] for r in plain_rows}) > 1  # the schedule did divide the lr somewhere
    assert (live.best_valid_ppl, live.test_ppl, live.step) == (plain.best_valid_ppl, plain.test_ppl, plain.step)


def test_lr_is_divided_only_when_an_epoch_ends_no_better_than_an_earlier_end(docs_file, tmp_path):
    hooks = Recorder()
    train(tiny_config(docs_file, "lstm", optimizer="sgd", lr=10.0, epochs=6, max_steps=0, lr_decay=4.0),
          tmp_path / "run", hooks)
    ends = [(r["valid_loss"], r["lr"]) for r in hooks.rows]
    for k in range(1, len(ends)):
        worse = ends[k - 1][0] > min(v for v, _ in ends[:k - 1]) if k > 1 else False
        assert ends[k][1] == ends[k - 1][1] / (4.0 if worse else 1.0), ends


@pytest.mark.parametrize("lr, why", [(50.0, "never got below 10× a uniform guess"), (1000.0, "overflowed")])  # lr 100: on the edge, either by rounding
def test_a_gru_at_a_huge_lr_without_clipping_ends_diverged_with_advice(tmp_path, lr, why):
    path = tmp_path / "docs.txt"
    path.write_text("\n".join(docs_lines(400)) + "\n", encoding="utf-8")
    cfg = tiny_config(path, "gru", optimizer="sgd", lr=lr, clip=0.0, epochs=2, max_steps=0)
    cfg.model.hidden = cfg.model.emb = 64
    result = train(cfg, tmp_path / "run", Recorder())
    assert result.status == "diverged" and why in result.message
    assert f"lower learning rate (it was {lr:g})" in result.message and "try 0.25" in result.message
    row = stored_run(tmp_path / "home", cfg, params=result.params, best_valid_ppl=result.best_valid_ppl,
                     test_ppl=result.test_ppl, tokens_per_s=1.0, device="cpu", status=result.status)
    shown = compare_table([row]).iloc[0]
    assert shown["status"] == "diverged"
    assert all(v is None or math.isfinite(v) for v in (shown["best valid ppl"], shown["test ppl"]))


def test_default_lineup_trained_briefly_ranks_lstm_below_the_rnn_below_a_uniform_guess(tmp_path):
    """The page's default configs, unchanged but for one epoch, on the default corpus."""
    spec = CorpusSpec()
    corpus = load_corpus(spec)
    configs = dict(zip(DEFAULT_LINEUP, default_lineup(spec, len(corpus.vocab), corpus.train.size, epochs=1,
                                                      device="cpu", threads=1)))
    ppl = {name: train(configs[name], tmp_path / name.replace(" ", "_"), corpus=corpus).best_valid_ppl
           for name in ("lecture RNN", "LSTM")}
    assert ppl["LSTM"] < ppl["lecture RNN"] < len(corpus.vocab), ppl


def test_cli_preset_builds_the_pages_config(tmp_path):
    """`train --preset` goes through run_config with only the given flags on top, like the page."""
    from lmcore.cli.main import build_parser
    from lmcore.cli.train import train_config
    args = build_parser().parse_args(["train", "--preset", "GRU", "--hidden", "64", "--seed", "3"])
    cli = train_config(args)
    page = run_config("GRU", CorpusSpec(), model={"hidden": 64}, train={"seed": 3})
    assert cli == page and cli.model.emb == 64 and cli.train.optimizer == "adam"
    plain = train_config(build_parser().parse_args(["train", "--optimizer", "adam"]))
    assert plain.train.lr == 0.002 and plain.model.arch == "lstm"  # no preset: the library's defaults


def test_train_page_and_cli_give_the_same_lr_sequence(lmcore_home, tmp_path):
    """The app's path (Train page, job queue) and the CLI, same preset and settings: the same config but for
    the page's live evaluations, and the same lr at every epoch end."""
    from lmcore.runs import service
    from lmcore.runs.store import RunStore

    from .test_pages import open_page, upload_corpus
    at = open_page("views/corpus.py")
    upload_corpus(at, "docs.txt", ("\n".join(docs_lines(400)) + "\n").encode())
    open_page("views/train.py", at)
    at.slider[0].set_value(1).run()
    at.selectbox(key="preset1").set_value("LSTM").run()
    at.number_input(key="hid1").set_value(16)
    at.number_input(key="lr1").set_value(0.1)  # high enough that the schedule divides it
    at.number_input[0].set_value(6)  # epochs (shared settings: epochs, τ, batch, seed, budget)
    at.number_input[1].set_value(8)  # τ
    at.number_input[2].set_value(4)  # batch
    at.run()
    at.button[0].click().run()
    assert not at.exception, [e.value for e in at.exception]
    store = RunStore(lmcore_home)
    (page_id,) = [int(x) for x in at.query_params["show"].split(",")]
    (page_run,) = service.wait_for(store, [page_id], timeout=240)
    assert page_run["status"] == "done", page_run["message"]
    page_cfg = RunConfig.from_dict(page_run["config"])

    cli = subprocess.run([PYTHON, "-m", "lmcore", "--home", str(tmp_path / "cli"), "train", "--preset", "LSTM",
                          "--corpus", page_cfg.corpus.source, "--hidden", "16", "--lr", "0.1", "--epochs", "6",
                          "--bptt", "8", "--batch", "4", "--threads", "1", "--device", "cpu", "--json"],
                         cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=240)
    assert cli.returncode == 0, cli.stderr
    cli_rows = [row for row in map(json.loads, cli.stdout.splitlines()) if "epoch" in row]  # not the summary
    cli_cfg = RunConfig.from_dict(RunStore(tmp_path / "cli").get_run(cli_rows[0]["run_id"])["config"])
    assert page_cfg.train.eval_every > 0 and cli_cfg.train.eval_every == 0
    page_cfg.train.eval_every = 0
    for cfg in (page_cfg, cli_cfg):
        cfg.train.threads, cfg.train.device = 0, "cpu"  # where it ran, not what it does
    assert page_cfg == cli_cfg
    page_rows = store.metrics([page_id])
    lrs = lambda rows: [(r["epoch"], r["lr"], r["valid_loss"]) for r in rows if r["epoch"] == int(r["epoch"])]
    assert lrs(page_rows) == lrs(cli_rows) and len(lrs(cli_rows)) == 6
    assert len({lr for _, lr, _ in lrs(cli_rows)}) > 1  # the schedule divided the lr on the way
    assert len(page_rows) > len(cli_rows)  # the page's run evaluated live as well

"""The truncated-BPTT trainer on tiny models: learning, reproducibility, bounds, lr decay, divergence, checkpoints."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from lmcore.corpus.batching import batchify
from lmcore.corpus.dataset import CorpusSpec
from lmcore.corpus.loading import load_corpus
from lmcore.corpus.reading import CorpusError
from lmcore.nn.model import RNNLM
from lmcore.training.checkpoints import load_checkpoint
from lmcore.training.trainer import EVAL_BATCH, TrainHooks, evaluate, safe_ppl, train

# Depend on the wall clock, so they differ between otherwise identical runs.
TIMING = ("tokens_per_s", "wall_time")


class Recorder(TrainHooks):
    """Keeps everything the trainer reports."""

    def __init__(self, stop_after: int | None = None):
        self.start, self.rows, self.checkpoints, self.steps = None, [], [], []
        self.stop_after = stop_after

    def on_start(self, info):
        self.start = info

    def on_eval(self, metrics):
        self.rows.append(dict(metrics))

    def on_checkpoint(self, kind, path, meta):
        self.checkpoints.append((kind, Path(path), dict(meta)))

    def on_step(self, step, total_steps, epoch, loss):
        self.steps.append((step, total_steps, epoch, loss))

    def should_stop(self):
        return self.stop_after is not None and len(self.steps) >= self.stop_after


def _untimed(rows):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


def test_training_reduces_validation_loss(tiny_cfg, tmp_path):
    cfg = tiny_cfg("lstm", max_steps=40)
    corpus = load_corpus(cfg.corpus)
    cfg.model.vocab_size = len(corpus.vocab)
    torch.manual_seed(cfg.train.seed)
    untrained = evaluate(RNNLM(cfg.model), batchify(corpus.valid, EVAL_BATCH), cfg.train.bptt)
    assert untrained == pytest.approx(math.log(len(corpus.vocab)), rel=0.05)  # near-uniform at init

    hooks = Recorder()
    result = train(cfg, tmp_path / "run", hooks, corpus=corpus)
    assert result.status == "done" and result.step == 40
    final = hooks.rows[-1]
    assert final["valid_loss"] < untrained - 0.3
    assert result.best_valid_ppl == pytest.approx(final["valid_ppl"]) == pytest.approx(math.exp(final["valid_loss"]))
    assert result.test_ppl is not None and result.test_ppl < math.exp(untrained)
    assert result.vocab == len(corpus.vocab) == hooks.start["vocab"]
    assert result.params == sum(p.numel() for p in RNNLM(cfg.model).parameters()) == hooks.start["params"]
    assert result.tokens_per_s > 0 and final["tokens_per_s"] > 0
    # on_step is called once a step, with the bound on the steps
    assert [s[0] for s in hooks.steps] == list(range(1, 41)) and {s[1] for s in hooks.steps} == {40}


def test_same_seed_same_metrics_different_seed_different(tiny_cfg, tmp_path):
    def run(seed, folder):
        cfg = tiny_cfg("gru", max_steps=15, eval_every=5, seed=seed)
        cfg.model.dropout = 0.2  # dropout draws random numbers during training too
        hooks = Recorder()
        result = train(cfg, tmp_path / folder, hooks)
        return _untimed(hooks.rows), result

    a, ra = run(3, "a")
    b, rb = run(3, "b")
    c, rc = run(4, "c")
    assert len(a) == 3 and a == b and ra.test_ppl == rb.test_ppl
    assert [r["valid_loss"] for r in a] != [r["valid_loss"] for r in c]
    w1, w2 = load_checkpoint(tmp_path / "a" / "last.pt")[0], load_checkpoint(tmp_path / "b" / "last.pt")[0]
    assert all(torch.equal(p, q) for p, q in zip(w1.state_dict().values(), w2.state_dict().values()))


def test_max_steps_bounds_the_run(tiny_cfg, tmp_path):
    hooks = Recorder()
    result = train(tiny_cfg("elman", epochs=50, max_steps=12), tmp_path / "run", hooks)
    assert result.status == "done" and result.step == 12
    epochs = 12 / hooks.start["steps_per_epoch"]  # the run cut short says so: a full bar is not a trained model
    assert result.message == f"ended at its max-steps, 12 steps: {epochs:.2g} of its 50 epochs"
    assert hooks.start["total_steps"] == 12
    assert [r["step"] for r in hooks.rows] == [12]  # the one evaluation at the cut
    assert [k for k, *_ in hooks.checkpoints if k.startswith("epoch_")] == ["epoch_1"]


def test_time_budget_bounds_the_run(tiny_cfg, tmp_path):
    budget = 0.4
    hooks = Recorder()
    result = train(tiny_cfg("elman", epochs=10_000, max_steps=0, time_budget=budget), tmp_path / "run", hooks)
    assert result.status == "done"
    assert 0 < result.step < hooks.start["total_steps"]
    assert result.message.startswith(f"ended at its time budget, {result.step} steps: ")  # not "its max-steps"
    # it stops at the first check past the budget (after a step, or after an epoch's evaluation)
    assert budget <= result.wall_time < budget + 5.0
    assert hooks.rows[-1]["step"] == result.step and hooks.rows[-1]["wall_time"] < budget + 5.0


def test_eval_every_adds_rows_without_duplicates(tiny_cfg, tmp_path):
    hooks = Recorder()
    cfg = tiny_cfg("elman", max_steps=0, epochs=1, eval_every=7)
    result = train(cfg, tmp_path / "run", hooks)
    per_epoch = hooks.start["steps_per_epoch"]
    assert result.step == per_epoch
    expected = [s for s in range(7, per_epoch, 7)] + [per_epoch]
    assert [r["step"] for r in hooks.rows] == expected
    epochs = [r["epoch"] for r in hooks.rows]
    assert epochs == sorted(epochs) and epochs[-1] == 1.0 and epochs[0] == pytest.approx(7 / per_epoch, abs=1e-4)


def test_eval_every_landing_on_max_steps_evaluates_once(tiny_cfg, tmp_path):
    hooks = Recorder()
    train(tiny_cfg("elman", max_steps=20, eval_every=10), tmp_path / "run", hooks)
    assert [r["step"] for r in hooks.rows] == [10, 20]
    assert [k for k, *_ in hooks.checkpoints].count("last") == 2


def _shifted_corpus(folder: Path) -> Path:
    """Train on 'a b' lines, validate on 'b b ...': the more it learns train, the worse valid gets."""
    folder.mkdir()
    (folder / "train.txt").write_text("a b\n" * 300, encoding="utf-8")
    (folder / "valid.txt").write_text("b b b b b b b b\n" * 20, encoding="utf-8")
    (folder / "test.txt").write_text("a b\n" * 20, encoding="utf-8")
    return folder


def test_lr_divided_when_validation_does_not_improve(tiny_cfg, tmp_path):
    hooks = Recorder()
    cfg = tiny_cfg("gru", source=_shifted_corpus(tmp_path / "shift"), optimizer="sgd", lr=1.0, epochs=4,
                   max_steps=0, lr_decay=4.0)
    result = train(cfg, tmp_path / "run", hooks)
    rows = hooks.rows
    assert len(rows) == 4 and result.status == "done"
    losses = [r["valid_loss"] for r in rows]
    assert losses[1] > losses[0] and losses[2] > losses[0]  # the constructed case: valid only gets worse
    assert [r["lr"] for r in rows] == [1.0, 1.0, 0.25, 0.0625]
    assert result.best_valid_ppl == pytest.approx(math.exp(losses[0]))
    # best.pt stays at epoch 1; last.pt moves on
    assert load_checkpoint(tmp_path / "run" / "best.pt")[3]["step"] == rows[0]["step"]
    assert load_checkpoint(tmp_path / "run" / "last.pt")[3]["step"] == rows[-1]["step"]


def test_lr_kept_while_validation_improves(tiny_cfg, tmp_path):
    hooks = Recorder()
    train(tiny_cfg("elman", epochs=3, max_steps=0, lr_decay=2.0), tmp_path / "run", hooks)
    losses = [r["valid_loss"] for r in hooks.rows]
    assert losses == sorted(losses, reverse=True)
    assert [r["lr"] for r in hooks.rows] == [0.01] * 3


def test_diverging_run_stops_and_keeps_its_checkpoints(tiny_cfg, tmp_path):
    cfg = tiny_cfg("elman", optimizer="sgd", lr=1e6, clip=0.0, max_steps=50)
    cfg.model.activation = "relu"
    hooks = Recorder()
    result = train(cfg, tmp_path / "run", hooks)
    assert result.status == "diverged"
    bad_step = result.step + 1
    assert f"at step {bad_step};" in result.message
    last_loss = hooks.steps[-1][3]
    assert math.isfinite(last_loss) and f"last finite loss {last_loss:.4g}" in result.message
    assert result.step < 50 and result.test_ppl is None and result.best_valid_ppl == math.inf
    kinds = [k for k, *_ in hooks.checkpoints]
    assert kinds[0] == "init"
    model, cfg2, vocab, meta = load_checkpoint(tmp_path / "run" / "init.pt")
    assert meta["step"] == 0 and cfg2.model.activation == "relu"
    logits = model(torch.tensor([[vocab.eos_id]]))[0]
    assert torch.isfinite(logits).all()


def test_diverging_run_never_checkpoints_blown_up_weights(tiny_cfg, tmp_path):
    # Evaluating every step sees the weights after the step that blew them up (valid loss nan),
    # before the next training step's loss reveals it.
    cfg = tiny_cfg("elman", optimizer="sgd", lr=1e6, clip=0.0, max_steps=50, eval_every=1)
    cfg.model.activation = "relu"
    hooks = Recorder()
    result = train(cfg, tmp_path / "run", hooks)
    assert result.status == "diverged"
    assert any(not math.isfinite(r["valid_loss"]) for r in hooks.rows)  # the case did arise
    assert len(hooks.checkpoints) >= 1
    for kind, path, meta in hooks.checkpoints:
        model = load_checkpoint(path)[0]
        assert all(torch.isfinite(t).all() for t in model.state_dict().values()), (kind, meta)


def test_checkpoints_written(tiny_cfg, tmp_path):
    hooks = Recorder()
    train(tiny_cfg("lstm", epochs=2, max_steps=0), tmp_path / "run", hooks)
    names = sorted(p.name for p in (tmp_path / "run").iterdir())
    assert names == ["best.pt", "epoch_1.pt", "epoch_2.pt", "init.pt", "last.pt"]
    for name in names:
        payload = torch.load(tmp_path / "run" / name, weights_only=True)
        assert payload["config"]["model"]["arch"] == "lstm"
    metas = {k: m for k, _, m in hooks.checkpoints}
    assert metas["epoch_2"]["epoch"] == 2 and metas["epoch_2"]["step"] == hooks.rows[-1]["step"]
    assert metas["last"]["valid_ppl"] == pytest.approx(hooks.rows[-1]["valid_ppl"])
    # the trained weights differ from the initial ones
    init, last = load_checkpoint(tmp_path / "run" / "init.pt")[0], load_checkpoint(tmp_path / "run" / "last.pt")[0]
    assert not torch.equal(init.rnn.weight_hh_l0, last.rnn.weight_hh_l0)


def test_stop_request_ends_run_as_stopped(tiny_cfg, tmp_path):
    hooks = Recorder(stop_after=5)
    result = train(tiny_cfg("gru", max_steps=100), tmp_path / "run", hooks)
    assert result.status == "stopped" and result.step == 5 and "step 5" in result.message
    assert hooks.rows[-1]["step"] == 5 and (tmp_path / "run" / "best.pt").exists()


def test_corpus_too_small_for_batch(tiny_cfg, tmp_path):
    with pytest.raises(CorpusError, match="lower the batch size"):
        train(tiny_cfg("elman", batch=5000), tmp_path / "run")
    assert not (tmp_path / "run" / "init.pt").exists()


def test_valid_split_too_small(tiny_cfg, tmp_path):
    folder = tmp_path / "small"
    folder.mkdir()
    (folder / "train.txt").write_text("a b c\n" * 100, encoding="utf-8")
    (folder / "valid.txt").write_text("a b\n", encoding="utf-8")
    (folder / "test.txt").write_text("a b c\n" * 10, encoding="utf-8")
    with pytest.raises(CorpusError, match="too small"):
        train(tiny_cfg("elman", source=folder), tmp_path / "run")


def test_bad_train_settings_are_refused(tiny_cfg, tmp_path):
    for changes, message in [(dict(optimizer="rmsprop"), "unknown optimizer"), (dict(lr=0.0), "lr must be positive"),
                             (dict(bptt=0), "bptt must be at least 1"), (dict(lr_decay=0.5), "lr-decay")]:
        with pytest.raises(ValueError, match=message):
            train(tiny_cfg("elman", **changes), tmp_path / "run")


def test_safe_ppl():
    assert safe_ppl(0.0) == 1.0 and safe_ppl(math.log(50)) == pytest.approx(50)
    assert safe_ppl(1e4) == math.inf


def test_spec_is_reused_from_config(tiny_cfg, tmp_path, grammar_file):
    # train() builds the corpus from cfg.corpus when none is given, and sizes the model to its vocabulary on a
    # copy: the caller's config is never changed
    cfg = tiny_cfg("elman", max_steps=3)
    assert cfg.model.vocab_size == 0
    result = train(cfg, tmp_path / "run")
    assert result.vocab == len(load_corpus(CorpusSpec(str(grammar_file), "word")).vocab)
    assert cfg.model.vocab_size == 0

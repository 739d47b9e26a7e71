"""Hostile values (issue 14, "Bad values taken" and "Crafted checkpoints"): every numeric flag and config field
refuses NaN, inf and out-of-range numbers with one `error:` line and exit 2, before a run row exists; a
checkpoint's config is checked against its own tensors and the limits before any model is built."""
from __future__ import annotations

import math
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from lmcore.cli.main import main
from lmcore.corpus.dataset import CorpusSpec
from lmcore.limits import Limits
from lmcore.nn.architectures import ModelConfig
from lmcore.nn.sampling import sample_tokens
from lmcore.runs.catalog import DEMO_DIR
from lmcore.runs.service import validate as validate_config
from lmcore.runs.store import RunStore
from lmcore.training.checkpoints import CheckpointError, load_checkpoint
from lmcore.training.config import MAX_SEED, MAX_THREADS, RunConfig, TrainConfig

DEMO = DEMO_DIR / "agreement-elman.pt"


def cli_error(capsys, *argv) -> str:
    """Run the CLI, expect exit 2 and exactly one line on stderr, starting `error:`; return that line."""
    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:"), err
    assert "unexpected" not in err[0]
    return err[0]


def no_runs(home: Path) -> bool:
    return not (home / "runs.sqlite").exists() or RunStore(home).list_runs() == []


# --- bad values taken: train flags ---------------------------------------------------------------------

@pytest.mark.parametrize("flag, value, words", [
    ("--clip", "nan", "clip must be a finite number"),          # was: no clipping
    ("--time-budget", "nan", "time-budget must be a finite"),   # was: no budget
    ("--time-budget", "inf", "time-budget must be a finite"),
    ("--lr", "inf", "lr must be a finite"),
    ("--lr", "nan", "lr must be positive (a finite number)"),
    ("--lr-decay", "nan", "lr-decay must be a finite"),
    ("--lr-decay", "inf", "lr-decay must be a finite"),
    ("--dropout", "nan", "dropout must be a finite"),
    ("--dropout", "inf", "dropout must be a finite"),
    ("--seed", str(2**64), "seed must be between 0 and 4294967295"),  # was: a failed row
    ("--seed", str(MAX_SEED + 1), "seed must be between"),
    ("--seed", "-1", "seed must be between"),
    ("--device", "tpu9", "unknown device 'tpu9'"),                     # was: a failed row
    ("--device", "cuda:x", "unknown device"),
    ("--device", "", "unknown device"),
    ("--threads", "5000", f"threads must be between 0 (chosen by the job queue) and {MAX_THREADS}"),
    ("--threads", "100000", "threads must be between"),
    ("--threads", "-1", "threads must be between"),
    ("--bptt", "0", "bptt must be at least 1"),
    ("--hidden", "-5", "hidden must be at least 1"),
])
def test_train_refuses_before_any_row(flag, value, words, lmcore_home, capsys):
    line = cli_error(capsys, "train", "--corpus", "builtin:agreement", "--epochs", "1", "--max-steps", "2",
                     flag, value)
    assert words in line
    assert no_runs(lmcore_home)


def test_resume_refuses_threads_out_of_range_before_touching_the_run(lmcore_home, capsys):
    store = RunStore(lmcore_home)
    cfg = RunConfig(train=TrainConfig(epochs=1, device="cpu"))
    run_id = store.create_run(cfg.to_dict(), status="stopped")
    line = cli_error(capsys, "train", "--resume", run_id, "--threads", 5000)
    assert "threads must be between" in line
    assert store.get_run(run_id)["status"] == "stopped"


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_train_for_a_missing_gpu_is_refused_before_any_row(lmcore_home, capsys):
    line = cli_error(capsys, "train", "--corpus", "builtin:agreement", "--max-steps", "2", "--device", "cuda")
    assert "no CUDA GPU" in line and no_runs(lmcore_home)  # was: a failed row


@pytest.mark.parametrize("out", ["/dev/null", "/proc/version"])
def test_train_into_something_that_is_not_a_folder_is_refused_before_any_row(out, lmcore_home, capsys):
    line = cli_error(capsys, "train", "--corpus", "builtin:agreement", "--max-steps", "2", "--out", out)
    assert f"--out {out}: exists and is not a folder" in line and no_runs(lmcore_home)  # was: a failed row


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_a_gpu_run_resumes_on_the_cpu_when_asked_and_is_untouched_when_not(lmcore_home, capsys):
    """A run recorded with --device cuda, resumed on a CPU-only machine, was left failed for ever."""
    store = RunStore(lmcore_home)
    cfg = RunConfig(corpus=CorpusSpec(source="builtin:agreement"),
                    train=TrainConfig(epochs=1, max_steps=3, device="cuda", batch=4, bptt=8))
    run_id = store.create_run(cfg.to_dict(), status="interrupted")
    assert "no CUDA GPU" in cli_error(capsys, "train", "--resume", run_id)
    assert store.get_run(run_id)["status"] == "interrupted"
    assert main(["train", "--resume", str(run_id), "--device", "cpu"]) == 0
    run = store.get_run(run_id)
    assert run["status"] == "done" and run["device"] == "cpu" and run.cfg.train.device == "cpu"


@pytest.mark.parametrize("bound", ["--time-budget", "--epochs", "--max-steps"])
def test_resume_refuses_non_finite_and_negative_bounds(bound, lmcore_home, capsys):
    store = RunStore(lmcore_home)
    run_id = store.create_run(RunConfig(train=TrainConfig(epochs=1, device="cpu")).to_dict(), status="stopped")
    value = "nan" if bound == "--time-budget" else "-3"
    cli_error(capsys, "train", "--resume", run_id, bound, value)
    assert store.get_run(run_id)["status"] == "stopped"


# --- the same checks in the one place the CLI and the app share ---------------------------------------

@pytest.mark.parametrize("train", [
    dict(clip=math.nan), dict(time_budget=math.nan), dict(time_budget=math.inf), dict(lr=math.inf),
    dict(lr=math.nan), dict(lr_decay=math.nan), dict(seed=2**64), dict(seed=-1), dict(device="tpu9"),
    dict(threads=MAX_THREADS + 1), dict(threads=-1), dict(bptt=2.5), dict(epochs=True), dict(batch="20"),
    dict(lr="fast"), dict(lr=0), dict(bf16="yes"), dict(max_steps=math.nan),
])
def test_validate_config_refuses_train_values(train):
    with pytest.raises(ValueError):
        validate_config(RunConfig(train=replace(TrainConfig(), **train)))


@pytest.mark.parametrize("model", [
    dict(dropout=math.nan), dict(dropout=math.inf), dict(hidden=-5), dict(hidden=200.0), dict(layers=True),
    dict(emb="200"), dict(bias="no"), dict(tied=1),
])
def test_validate_config_refuses_model_values(model):
    with pytest.raises(ValueError):
        validate_config(RunConfig(model=replace(ModelConfig(), **model)))


@pytest.mark.parametrize("train", [
    dict(seed=0), dict(seed=MAX_SEED), dict(threads=0), dict(threads=MAX_THREADS), dict(device="cuda:1"),
    dict(device="mps"), dict(device="cpu"), dict(lr=1), dict(time_budget=0), dict(clip=0),
])
def test_validate_config_keeps_the_edges_that_are_fine(train):
    validate_config(RunConfig(train=replace(TrainConfig(), **train)))


def test_numpy_integers_pass_as_whole_numbers():
    import numpy as np
    validate_config(RunConfig(train=replace(TrainConfig(), seed=np.int64(3), bptt=np.int32(8))))


# --- sample and inspect: one error line, exit 2 (was "unexpected ..." with exit 1) ---------------------

@pytest.mark.parametrize("argv, words", [
    (["sample", "demo:agreement-elman", "--top-k", "-1"], "--top-k: must be at least 0"),
    (["sample", "demo:agreement-elman", "--temperature", "nan"], "temperature must be a finite number"),
    (["sample", "demo:agreement-elman", "--temperature", "inf"], "temperature must be a finite number"),
    (["sample", "demo:agreement-elman", "--temperature", "0"], "temperature must be positive"),
    (["sample", "demo:agreement-elman", "--temperature", "-1"], "temperature must be positive"),
    (["sample", "demo:agreement-elman", "--words", "-1"], "--words/-n: must be at least 0"),
    (["sample", "demo:agreement-elman", "--seed", str(2**64)], "seed must be between"),
    (["inspect", "decay", "--run", "demo:agreement-elman", "--positions", "0"], "--positions: must be at least 1"),
    (["inspect", "decay", "--run", "demo:agreement-elman", "--K", "-1"], "--K: must be at least 1"),
    (["inspect", "trace", "--run", "demo:agreement-elman", "--text", "the cat", "--top-k", "-1"],
     "--top-k: must be at least 0"),
    (["inspect", "context", "--run", "demo:agreement-elman", "--max-targets", "0"], "--max-targets: must be at least 1"),
])
def test_sample_and_inspect_refuse_in_one_line(argv, words, lmcore_home, capsys):
    assert words in cli_error(capsys, *argv)


def test_a_tiny_temperature_picks_the_likeliest_word(lmcore_home, capsys):
    """1e-300 overflowed every score to inf (softmax NaN, "unexpected RuntimeError"); now it is greedy decoding."""
    model, cfg, vocab, _ = load_checkpoint(DEMO)
    prompt = [vocab.eos_id]
    for tiny in (1e-300, 5e-324):
        greedy = list(sample_tokens(model, prompt, 5, temperature=tiny, seed=1))
        assert greedy == list(sample_tokens(model, prompt, 5, temperature=tiny, seed=2))  # no randomness left
    assert main(["sample", "demo:agreement-elman", "--temperature", "1e-300", "-n", "3"]) == 0


def test_sample_tokens_checks_when_called_not_at_the_first_token():
    model, _, vocab, _ = load_checkpoint(DEMO)
    with pytest.raises(ValueError, match="top-k cannot be negative"):
        sample_tokens(model, [vocab.eos_id], 3, top_k=-1)


# --- crafted checkpoints ---------------------------------------------------------------------------------

def crafted(tmp_path: Path, name: str = "crafted.pt", weights=None, **changes) -> Path:
    """The demo checkpoint with config fields changed (model__hidden=5) or every weight set to `weights`."""
    payload = torch.load(DEMO, weights_only=True)
    for key, value in changes.items():
        part, field = key.split("__")
        payload["config"][part][field] = value
    if weights is not None:
        payload["state_dict"] = {k: torch.full_like(v, weights) for k, v in payload["state_dict"].items()}
    path = tmp_path / name
    torch.save(payload, path)
    return path


@pytest.mark.parametrize("changes, words", [
    (dict(train__bptt=-5), "bptt must be at least 1"),     # was: perplexity 1.00
    (dict(train__bptt=0), "bptt must be at least 1"),
    (dict(train__bptt=2.5), "bptt must be a whole number"),
    (dict(model__hidden=-3), "hidden must be at least 1"),
    (dict(model__emb=0), "emb must be at least 1"),
    (dict(model__layers=-1), "layers must be at least 1"),
    (dict(model__layers=10**12), "the file holds"),           # the count would loop for ever
    (dict(model__dropout=math.nan), "dropout must be a finite number"),
    (dict(model__hidden="200"), "hidden must be a whole number"),
    (dict(model__arch="transformer"), "unknown architecture"),
])
def test_impossible_config_values_are_refused(changes, words, tmp_path):
    with pytest.raises(CheckpointError, match="config is not usable") as err:
        load_checkpoint(crafted(tmp_path, **changes))
    assert words in str(err.value)


def test_a_config_asking_for_hundreds_of_gigabytes_is_refused_before_allocating(tmp_path):
    # 400,000 × 400,000 floats per matrix: ~640 GB were allocated by RNNLM(cfg) before any shape was compared
    path = crafted(tmp_path, model__hidden=400_000, model__emb=400_000)
    # the shapes (computed on the meta device, no memory) refuse it; a caller's limits refuse it first
    with pytest.raises(CheckpointError, match=r"has shape .* its config needs"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="over this server's limit"):
        load_checkpoint(path, limits=Limits(max_params=10**6))


def test_viewing_a_run_does_not_depend_on_the_training_limits(lmcore_home):
    """A classroom server with a small max_params still shows the (bigger) demo runs."""
    (lmcore_home / "lmcore.toml").parent.mkdir(parents=True, exist_ok=True)
    (lmcore_home / "lmcore.toml").write_text("[limits]\nmax_params = 1000\n")
    model, cfg, vocab, _ = load_checkpoint(DEMO)
    assert sum(p.numel() for p in model.parameters()) > 1000


def test_a_checkpoint_over_the_deployments_limit_is_refused(tmp_path):
    with pytest.raises(CheckpointError, match="max_params"):
        load_checkpoint(DEMO, limits=Limits(max_params=1000))


def test_tensors_of_the_wrong_type_are_refused(tmp_path):
    payload = torch.load(DEMO, weights_only=True)
    payload["state_dict"] = {k: v.double() for k, v in payload["state_dict"].items()}
    torch.save(payload, tmp_path / "double.pt")
    with pytest.raises(CheckpointError, match="float64"):
        load_checkpoint(tmp_path / "double.pt")


@pytest.mark.parametrize("weights", [math.nan, math.inf])
def test_non_finite_weights_are_refused(weights, tmp_path):
    with pytest.raises(CheckpointError, match="NaN or infinite weights"):
        load_checkpoint(crafted(tmp_path, weights=weights))


@pytest.mark.parametrize("command", [["sample"], ["eval"], ["inspect", "trace", "--text", "the cat sees"]])
def test_cli_on_a_nan_checkpoint_says_so_in_one_line(command, tmp_path, lmcore_home, capsys):
    path = crafted(tmp_path, weights=math.nan)
    argv = [*command, "--run", path] if command[0] == "inspect" else [*command, path]
    assert "NaN or infinite weights" in cli_error(capsys, *argv)


def test_cli_on_a_negative_tau_checkpoint_says_so_in_one_line(tmp_path, lmcore_home, capsys):
    assert "bptt must be at least 1" in cli_error(capsys, "eval", crafted(tmp_path, train__bptt=-5))


def test_every_demo_still_loads(tmp_path):
    for path in sorted(DEMO_DIR.glob("*.pt")):
        shutil.copy(path, tmp_path / path.name)
        model, cfg, vocab, _ = load_checkpoint(tmp_path / path.name)
        assert all(torch.isfinite(p).all() for p in model.parameters())

"""lmcore's SGD and Adam step exactly as torch.optim's, share its state_dict layout, and spare a training process
the import of torch._dynamo that torch.optim's constructor makes."""
from __future__ import annotations

import io
import json
import subprocess

import pytest
import torch

from lmcore.nn.architectures import ModelConfig
from lmcore.nn.model import build_model
from lmcore.training.optimizers import Adam, SGD, make_optimizer

from tests.conftest import PYTHON, REPO, subprocess_env
from tests.test_cli import TINY

TORCH_OPTIM = {"sgd": lambda ps, lr: torch.optim.SGD(ps, lr=lr), "adam": lambda ps, lr: torch.optim.Adam(ps, lr=lr)}
OURS = {"sgd": SGD, "adam": Adam}
LR = {"sgd": 0.5, "adam": 0.01}


def _model(seed: int = 0):
    torch.manual_seed(seed)
    return build_model(ModelConfig(arch="lstm", vocab_size=30, emb=8, hidden=12, layers=2, dropout=0.0))


def _take_steps(model, optimizer, steps: int, first: int = 0) -> None:
    """Steps on seeded random batches; the decoder gets no gradient on odd steps (a parameter without .grad)."""
    for n in range(first, first + steps):
        g = torch.Generator().manual_seed(100 + n)
        x = torch.randint(0, 30, (7, 3), generator=g).to(model.decoder.weight.device)
        optimizer.zero_grad(set_to_none=True)
        out, _ = model.features(x)
        loss = (out ** 2).mean() if n % 2 else model.decoder(out).logsumexp(-1).mean()
        loss.backward()
        optimizer.step()
        optimizer.param_groups[0]["lr"] *= 0.9  # as the trainer decays it


def _same(a, b) -> bool:
    return all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA GPU (where torch.optim takes its foreach path)"))])
@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_steps_are_bit_for_bit_torch_optims(name, device):
    ours, theirs = _model().to(device), _model().to(device)
    _take_steps(ours, OURS[name](ours.parameters(), LR[name]), 12)
    _take_steps(theirs, TORCH_OPTIM[name](theirs.parameters(), LR[name]), 12)
    assert _same(ours, theirs)
    assert not _same(ours.cpu(), _model())  # the steps moved the weights


@pytest.mark.parametrize("name", ["sgd", "adam"])
@pytest.mark.parametrize("saved_by", ["ours", "torch"])
def test_a_state_saved_by_either_resumes_in_the_other_exactly(name, saved_by):
    """A last.pt written before lmcore had its own optimizers resumes as it would have with torch.optim."""
    make_first = OURS[name] if saved_by == "ours" else TORCH_OPTIM[name]
    make_second = TORCH_OPTIM[name] if saved_by == "ours" else OURS[name]
    model = _model()
    first = make_first(model.parameters(), LR[name])
    _take_steps(model, first, 5)
    saved = io.BytesIO()
    torch.save(first.state_dict(), saved)  # as in last.pt
    saved.seek(0)
    resumed = _model(seed=1)
    resumed.load_state_dict(model.state_dict())
    second = make_second(resumed.parameters(), 123.0)  # the lr comes back from the state
    second.load_state_dict(torch.load(saved, weights_only=True))
    assert second.param_groups[0]["lr"] == pytest.approx(first.param_groups[0]["lr"])
    _take_steps(model, first, 4, first=5)
    _take_steps(resumed, second, 4, first=5)
    assert _same(model, resumed)


def test_older_and_damaged_states(tmp_path):
    """A step saved as a number (older torch) and SGD's None momentum buffers load; a state that is not tensors,
    or a second moment of the wrong shape, is refused before anything is changed."""
    model = _model()
    adam = Adam(model.parameters(), 0.01)
    _take_steps(model, adam, 2)
    state = adam.state_dict()
    older = {"state": {i: dict(s, step=int(s["step"].item())) for i, s in state["state"].items()},
             "param_groups": state["param_groups"]}
    again = Adam(_model().parameters(), 0.01)
    again.load_state_dict(older)
    steps = {i: s["step"].item() for i, s in state["state"].items()}
    assert {i: s["step"].item() for i, s in again.state.items()} == steps
    assert all(s["step"].dtype == torch.float32 and s["step"].shape == () for s in again.state.values())
    sgd = SGD(_model().parameters(), 0.1)
    sgd.load_state_dict({"state": {0: {"momentum_buffer": None}}, "param_groups": [dict(sgd.param_groups[0], lr=0.5)]})
    assert sgd.param_groups[0]["lr"] == 0.5 and sgd.state == {}
    for damage in ({"exp_avg": None}, {"exp_avg": "x"}, {"exp_avg_sq": torch.zeros(3)}, {"step": torch.zeros(2)}):
        damaged = {"state": {i: dict(s, **damage) for i, s in state["state"].items()},
                   "param_groups": [dict(state["param_groups"][0], lr=123.0)]}
        fresh = Adam(_model().parameters(), 0.01)
        with pytest.raises(ValueError):
            fresh.load_state_dict(damaged)
        assert fresh.state == {} and fresh.param_groups[0]["lr"] == 0.01, damage  # nothing half-loaded


def test_a_state_of_another_model_is_refused():
    big, small = _model(), build_model(ModelConfig(arch="gru", vocab_size=30, emb=8, hidden=12, layers=1, dropout=0.0))
    adam = Adam(big.parameters(), 0.01)
    _take_steps(big, adam, 1)
    with pytest.raises(ValueError, match="parameters"):
        Adam(small.parameters(), 0.01).load_state_dict(adam.state_dict())
    with pytest.raises(ValueError, match="unknown optimizer"):
        make_optimizer("rmsprop", small.parameters(), 0.1)


def test_a_training_process_never_imports_torch_dynamo_or_pandas(tmp_path, grammar_file):
    """torch.optim's constructor imports torch._dynamo (~2 s of every job's start), the CLI's sweep and inspect
    commands pandas (~0.4 s): `python -m lmcore train`, as every job process is started, needs neither."""
    home = tmp_path / "home"
    done = subprocess.run([PYTHON, "-X", "importtime", "-m", "lmcore", "--home", str(home), "train", "--corpus",
                           str(grammar_file), *TINY, "--max-steps", "3", "--json"], cwd=REPO,
                          env=subprocess_env(home), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.splitlines()[-1])["status"] == "done"
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert {"torch", "lmcore.training.trainer"} <= imported  # the log is the one read
    assert not {"torch._dynamo", "pandas"} & imported

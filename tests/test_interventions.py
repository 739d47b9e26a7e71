"""Issue 17: the hook API. Named points, a cache of what a run computes there, interventions that change exactly
what they name; an intervention that sets a value to what it already was changes nothing."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lmcore.cli.main import main
from lmcore.inspect import interventions as iv
from lmcore.inspect.memory import agreement_items, readable
from lmcore.nn.architectures import ModelConfig
from lmcore.nn.model import build_model
from lmcore.paths import DEMO_DIR
from lmcore.training.checkpoints import load_checkpoint

TEXT = "the roses in the vase by the door to the kitchen are red ."


@pytest.fixture(scope="module")
def lstm():
    return load_checkpoint(DEMO_DIR / "agreement-lstm.pt")[::2]  # (model, vocab)


def small(arch: str, **kw):
    torch.manual_seed(0)
    return build_model(ModelConfig(arch=arch, emb=6, hidden=5, layers=2, dropout=0.0, vocab_size=20, **kw)).eval()


IDS = np.array([3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8])
MODELS = [("lstm", {}), ("lstm", {"variant": "nig"}), ("lstm", {"variant": "fgr"}), ("gru", {}),
          ("gru", {"gru_convention": "cho"}), ("elman", {"activation": "sigmoid"}), ("irnn", {})]


@pytest.mark.parametrize("arch,kw", MODELS)
def test_without_interventions_the_cells_give_the_models_own_numbers(arch, kw):
    model = small(arch, **kw)
    logits, cache = iv.run_with_cache(model, IDS)
    with torch.no_grad():
        reference, _, _ = model(torch.as_tensor(IDS).view(-1, 1))  # fused where PyTorch has it
    torch.testing.assert_close(logits, reference, atol=1e-5, rtol=1e-5)
    assert sorted(cache) == sorted(iv.point_names(model.cfg))
    assert all(v.shape == (len(IDS), 1, 5) for v in cache.values())


@pytest.mark.parametrize("arch,kw", MODELS)
def test_setting_every_point_to_what_it_already_was_changes_nothing(arch, kw):
    model = small(arch, **kw)
    logits, cache = iv.run_with_cache(model, IDS)
    same = [iv.Intervention(p, "patch") for p in iv.point_names(model.cfg)]
    same += [iv.Intervention(p, "scale", 1.0) for p in iv.point_names(model.cfg)]
    same += [iv.Intervention(p, "add", 0.0, units=(0, 3), start=2) for p in iv.point_names(model.cfg)]
    patched, _ = iv.run_with_cache(model, IDS, same, patch=cache)
    torch.testing.assert_close(patched, logits, atol=0, rtol=0)


def test_an_intervention_changes_its_units_from_its_step_on_and_nothing_before():
    model = small("lstm")
    _, before = iv.run_with_cache(model, IDS)
    _, after = iv.run_with_cache(model, IDS, [iv.Intervention("layer0.h", "set", 0.0, units=(2,), start=4)])
    h0, h1 = before["layer0.h"][:, 0], after["layer0.h"][:, 0]
    torch.testing.assert_close(h1[:4], h0[:4], atol=0, rtol=0)          # the past is untouched
    assert torch.all(h1[4:, 2] == 0)                                    # the unit is silenced from step 4 on
    torch.testing.assert_close(h1[4, [0, 1, 3, 4]], h0[4, [0, 1, 3, 4]], atol=0, rtol=0)  # not yet the others
    assert not torch.allclose(h1[5:, [0, 1, 3, 4]], h0[5:, [0, 1, 3, 4]])  # then the silence propagates
    assert not torch.allclose(after["layer1.h"][4:], before["layer1.h"][4:])  # and up the stack


def test_a_closed_forget_gate_leaves_the_cell_only_what_the_input_gate_writes():
    model = small("lstm")
    _, cache = iv.run_with_cache(model, IDS, [iv.Intervention("layer0.f", "set", 0.0, start=3)])
    i, g, c, f = (cache[f"layer0.{n}"][:, 0] for n in "igcf")
    assert torch.all(f[3:] == 0) and torch.all(f[:3] > 0)
    torch.testing.assert_close(c[3:], (i * g)[3:])  # c_t = f ⊙ c_{t−1} + i ⊙ g_t with f = 0


def test_a_gate_the_variant_lacks_can_still_be_closed():
    model = small("lstm", variant="nig")  # no input gate: i = 1 always
    logits, cache = iv.run_with_cache(model, IDS)
    assert torch.all(cache["layer0.i"] == 1)
    closed, cache = iv.run_with_cache(model, IDS, [iv.Intervention("layer0.i", "set", 0.0)])
    assert torch.all(cache["layer0.c"] == 0) and not torch.allclose(closed, logits)  # nothing is ever written


def test_mean_sets_each_unit_to_its_mean_over_the_text():
    model = small("gru")
    means = iv.unit_means(model, np.tile(IDS, 5), ["layer1.z"])
    _, cache = iv.run_with_cache(model, IDS, [iv.Intervention("layer1.z", "mean", units=(1, 4))], means=means)
    torch.testing.assert_close(cache["layer1.z"][:, 0, [1, 4]], means["layer1.z"][[1, 4]].expand(len(IDS), 2))


def test_points_and_values_that_do_not_exist_are_refused_in_one_line():
    model = small("lstm")
    for bad, match in [(iv.Intervention("layer2.f"), "no point"), (iv.Intervention("layer0.z"), "no point"),
                       (iv.Intervention("layer0.f", units=(9,)), "out of range"),
                       (iv.Intervention("layer0.f", "flip"), "unknown intervention"),
                       (iv.Intervention("layer0.f", "set", float("nan")), "finite"),
                       (iv.Intervention("layer0.f", "mean"), "means")]:
        with pytest.raises(ValueError, match=match):
            iv.run_with_cache(model, IDS, [bad])
    with pytest.raises(ValueError, match="recurrent"):
        iv.Intervention("layer0.h").check(ModelConfig(arch="ffnn", layers=1, vocab_size=20))


def test_perplexity_without_interventions_is_the_evaluators(lstm):
    from lmcore.corpus.batching import batchify
    from lmcore.training.trainer import evaluate
    model, vocab = lstm
    ids = vocab.encode(("<eos> " + TEXT + " ") .split() * 40)
    assert iv.perplexity(model, ids) == pytest.approx(np.exp(evaluate(model, batchify(ids, 10), 35)), rel=1e-6)
    closed = iv.perplexity(model, ids, [iv.Intervention("layer0.f", "set", 0.0)])
    assert closed > iv.perplexity(model, ids) * 1.05


def test_patching_the_cell_from_rose_moves_the_verb_toward_is(lstm):
    """Activation patching: the cell of "the rose …" put into "the roses …" from the subject on."""
    model, vocab = lstm
    plural, singular = TEXT.split()[:11], TEXT.replace("roses", "rose").split()[:11]
    verb = lambda logits: (logits[-1, 0, vocab.stoi["are"]] - logits[-1, 0, vocab.stoi["is"]]).item()
    logits, _ = iv.run_with_cache(model, vocab.encode(plural))
    _, source = iv.run_with_cache(model, vocab.encode(singular))
    patched, _ = iv.run_with_cache(model, vocab.encode(plural), [iv.Intervention("layer0.c", "patch", start=1)],
                                   patch=source)
    assert verb(logits) > 0 > verb(patched)


def test_cli_intervene_prints_agreement_rows_before_and_after(capsys):
    assert main(["inspect", "intervene", "--run", "demo:agreement-lstm", "--point", "layer0.f", "--set", "0",
                 "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {tuple(sorted(r)) for r in rows} == {("accuracy", "distance", "intervention", "items", "model",
                                                 "valid_ppl")}
    labels = list(dict.fromkeys(r["intervention"] for r in rows))
    assert labels == ["none", "layer0.f := 0 (all units)"]
    far = {lab: np.average([r["accuracy"] for r in rows if r["intervention"] == lab and r["distance"] >= 4],
                           weights=[r["items"] for r in rows if r["intervention"] == lab and r["distance"] >= 4])
           for lab in labels}
    ppl = {r["intervention"]: r["valid_ppl"] for r in rows}
    assert far["none"] > 0.9 > 0.6 > far[labels[1]] and ppl[labels[1]] > ppl["none"]
    assert main(["inspect", "intervene", "--run", "demo:agreement-ffnn", "--point", "layer0.h", "--set", "0"]) == 2


def test_the_number_units_of_the_demo_lstm(lstm):
    """Lakretz et al. (2019) on the demo: its most harmful single units, ablated together, hurt long-range
    agreement far more than as many random units, and short-range agreement and perplexity much less."""
    model, vocab = lstm
    items = readable(agreement_items("valid"), vocab)[::5]  # a fifth of the sentences: the same picture, faster
    ranking = iv.ablation_ranking(model, vocab, items)
    assert len(ranking) == model.cfg.hidden and ranking["far_drop"].is_monotonic_decreasing
    from lmcore.corpus.loading import load_corpus
    corpus = load_corpus(load_checkpoint(DEMO_DIR / "agreement-lstm.pt")[1].corpus)
    valid = vocab.encode(corpus.vocab.decode(corpus.valid[:3000]))
    table = iv.summary(iv.number_experiment(model, vocab, items, valid, ranking, ks=(4,), draws=3))
    row = table.set_index("intervention")
    top, rand, none = row.loc["top-4 units"], row.loc["4 random units"], row.loc["none"]
    assert none["far"] - top["far"] > 3 * max(none["far"] - rand["far"], 0.02)
    assert top["ppl"] < 1.2 * none["ppl"]  # perplexity moves little
    assert row.loc["every forget gate closed", "far"] < 0.6  # long-range agreement at or below chance


def test_cli_number_units_prints_the_ranking_and_the_experiment(tmp_path, capsys):
    pairs = tmp_path / "pairs.tsv"
    lines = [f"the {noun} in the vase by the door\t{good}\t{bad}\t6" for noun, good, bad in
             [("roses", "are", "is"), ("rose", "is", "are"), ("doors", "are", "is"), ("door", "is", "are")]]
    pairs.write_text("\n".join(lines) + "\n")
    assert main(["inspect", "number-units", "--run", "demo:agreement-lstm", "--pairs", str(pairs), "--k", "2",
                 "--draws", "2", "--top", "3", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    ranking = [r for r in rows if r["table"] == "ranking"]
    experiment = {r["intervention"]: r for r in rows if r["table"] == "experiment"}
    assert len(ranking) == 3 and ranking[0]["far_drop"] >= ranking[-1]["far_drop"]
    assert list(experiment) == ["none", "top-2 units", "2 random units", "every forget gate closed"]
    assert experiment["2 random units"]["draws"] == 2 and experiment["none"]["ppl"] > 1
    assert main(["inspect", "number-units", "--run", "demo:agreement-lstm", "--point", "layer3.h"]) == 2

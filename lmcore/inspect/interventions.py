"""Interventions: close a gate, silence a unit, patch in a value from another sentence, and measure what changes.

Named points, one per quantity a layer's cell makes, in the trace's naming: "layer{k}.{name}" with k from 0 and
name one of the cell's gates (LSTM i, f, g, o; GRU r, z, n), the LSTM's cell c, or the hidden state h. An
LSTM variant without a gate still has the point: the gate is the constant 1 there, and an intervention may set it.

An intervention replaces the values at one point, for some units (all when none are named) and time steps
[start, stop): "set" to a value (0 closes a sigmoid gate, 1 opens it), "mean" to each unit's mean over a text
(`unit_means`), "scale" or "add" a value, or "patch" in the value the same point had on another input (a `Cache`
of a run on a minimally different sentence: activation patching). Interventions run the hand-written cells, as
the trace does; the edit is made as the cell computes the quantity, so everything after it (the cell, h, the
next step, the layers above, the prediction) sees the edited value.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from lmcore.corpus.batching import batchify
from lmcore.corpus.tokenize import EOS
from lmcore.inspect.memory import ProbeItem, accuracy_by_distance, lm_margins
from lmcore.nn.architectures import GATES, ModelConfig, require_recurrent
from lmcore.nn.model import RNNLM, detach_hidden

OPS = ("set", "mean", "scale", "add", "patch")
POINT_PATTERN = re.compile(r"layer(\d+)\.([a-z])")


def point_names(cfg: ModelConfig) -> list[str]:
    """Every point of a model: layer0.i, layer0.f, …, layer0.c, layer0.h, layer1.i, …"""
    per_layer = list(GATES[cfg.arch]) + (["c"] if cfg.arch == "lstm" else []) + ["h"]
    return [f"layer{k}.{name}" for k in range(cfg.layers) for name in per_layer]


def parse_point(point: str, cfg: ModelConfig) -> tuple[int, str]:
    """"layer1.f" -> (1, "f"), refused in one line when this model has no such point."""
    require_recurrent(cfg, "an intervention")
    found = POINT_PATTERN.fullmatch(point)
    if not found or point not in point_names(cfg):
        raise ValueError(f"no point {point!r} in this model; its points are {', '.join(point_names(cfg))}")
    return int(found.group(1)), found.group(2)


@dataclass(frozen=True)
class Intervention:
    point: str                              # "layer0.f"
    op: str = "set"                         # one of OPS
    value: float = 0.0                      # set / scale / add: the number
    units: tuple[int, ...] | None = None    # None: every unit
    start: int = 0                          # the first step it applies to
    stop: int | None = None                 # the step after the last (None: to the end)

    def check(self, cfg: ModelConfig) -> None:
        parse_point(self.point, cfg)
        if self.op not in OPS:
            raise ValueError(f"unknown intervention {self.op!r}; choose one of {', '.join(OPS)}")
        if not math.isfinite(self.value):
            raise ValueError(f"the intervention's value must be a finite number, not {self.value!r}")
        bad = [u for u in self.units or () if not 0 <= u < cfg.hidden]
        if bad:
            raise ValueError(f"units {bad} out of range for {cfg.hidden} units")
        if self.start < 0 or (self.stop is not None and self.stop <= self.start):
            raise ValueError(f"steps [{self.start}, {self.stop}) hold no step")

    @property
    def label(self) -> str:
        """"layer0.f := 0 (all units)", "layer0.h × 0.5 (units 3, 7; from step 4)"."""
        what = {"set": f":= {self.value:g}", "mean": ":= its mean", "scale": f"× {self.value:g}",
                "add": f"+ {self.value:g}", "patch": "patched"}[self.op]
        units = "all units" if self.units is None else \
            f"unit{'s' if len(self.units) > 1 else ''} {', '.join(map(str, self.units[:8]))}" + \
            (f" … ({len(self.units)})" if len(self.units) > 8 else "")
        steps = "" if self.start == 0 and self.stop is None else f"; steps {self.start}–{'' if self.stop is None else self.stop - 1}"
        return f"{self.point} {what} ({units}{steps})"


Cache = dict[str, Tensor]  # point -> (T, B, H): what a run computed there


def make_edits(model: RNNLM, interventions: Sequence[Intervention], means: Cache | None = None,
               patch: Cache | None = None, offset: int = 0) -> dict:
    """The {layer: edit(t, name, value)} that RNNLM.run_cells takes. means: point -> (H,) for "mean"; patch: a Cache
    of the source run for "patch"; offset: the absolute step of the chunk's first step (a long text read in chunks)."""
    by_layer: dict[int, list[tuple[str, Intervention, Tensor | None]]] = {}
    for iv in interventions:
        iv.check(model.cfg)
        layer, name = parse_point(iv.point, model.cfg)
        idx = None if iv.units is None else torch.as_tensor(iv.units, device=model.encoder.weight.device)
        if iv.op == "mean" and (means is None or iv.point not in means):
            raise ValueError(f"{iv.label}: needs the units' means at {iv.point} (unit_means)")
        if iv.op == "patch" and (patch is None or iv.point not in patch):
            raise ValueError(f"{iv.label}: needs a cache of the source input at {iv.point} (run_with_cache)")
        by_layer.setdefault(layer, []).append((name, iv, idx))

    def edit_for(layer_ivs):
        def edit(t: int, name: str, value: Tensor) -> Tensor:
            step = t + offset
            for point_name, iv, idx in layer_ivs:
                if point_name != name or step < iv.start or (iv.stop is not None and step >= iv.stop):
                    continue
                value = _apply(iv, value, idx, step, means, patch)
            return value
        return edit

    return {layer: edit_for(ivs) for layer, ivs in by_layer.items()}


def _apply(iv: Intervention, value: Tensor, idx: Tensor | None, step: int, means: Cache | None,
           patch: Cache | None) -> Tensor:
    cols = slice(None) if idx is None else idx
    new = value.clone()
    old = value[:, cols]
    if iv.op == "set":
        new[:, cols] = iv.value
    elif iv.op == "scale":
        new[:, cols] = old * iv.value
    elif iv.op == "add":
        new[:, cols] = old + iv.value
    elif iv.op == "mean":
        new[:, cols] = means[iv.point].to(value)[cols]
    else:  # patch: the source's value at this step (its last one past its end), for every row of the batch
        source = patch[iv.point]
        new[:, cols] = source[min(step, source.size(0) - 1)].to(value)[:, cols].expand_as(old)
    return new


@torch.no_grad()
def run_with_cache(model: RNNLM, ids, interventions: Sequence[Intervention] = (), means: Cache | None = None,
                   patch: Cache | None = None) -> tuple[Tensor, Cache]:
    """Read ids ((T,) or (T, B)) from a zero state with these interventions; (logits (T, B, V), every point's values)."""
    model.eval()
    x = torch.as_tensor(np.asarray(ids), device=model.encoder.weight.device)
    x = x.view(-1, 1) if x.dim() == 1 else x
    edits = make_edits(model, interventions, means, patch)
    # every layer through the step-by-step loop that edits take, edited or not: a run with interventions and one
    # without then differ by the interventions alone (a trace without edits takes the C++ loop, equal to rounding)
    edits = {layer: edits.get(layer, _unchanged) for layer in range(model.cfg.layers)}
    out, _, per_layer = model.run_cells(model.encoder(x), model.init_hidden(x.size(1)), keep_gates=True, edits=edits)
    cache = {f"layer{k}.{name}": values for k, layer in enumerate(per_layer) for name, values in layer.items()}
    return model.decoder(out), cache


def _unchanged(t: int, name: str, value: Tensor) -> Tensor:
    return value


def unit_means(model: RNNLM, ids, points: Sequence[str], max_tokens: int = 5000) -> Cache:
    """Each unit's mean at these points over a text (the validation text's first max_tokens): point -> (H,)."""
    _, cache = run_with_cache(model, np.asarray(ids)[:max_tokens])
    return {p: cache[p].mean(dim=(0, 1)) for p in points}


@torch.no_grad()
def perplexity(model: RNNLM, ids, interventions: Sequence[Intervention] = (), means: Cache | None = None,
               bptt: int = 35, batch: int = 10) -> float:
    """Perplexity of a text read as in evaluation (batch streams, state carried across chunks of bptt) with the
    interventions applied at every step (a text read in streams has no sentence positions: start/stop count from
    the start of each stream)."""
    model.eval()
    grid = batchify(np.asarray(ids), batch, model.encoder.weight.device)
    hidden, total, count = model.init_hidden(grid.size(1)), 0.0, 0
    for begin in range(0, grid.size(0) - 1, bptt):
        inputs, targets = grid[begin:begin + bptt], grid[begin + 1:begin + 1 + bptt]
        inputs = inputs[:targets.size(0)]
        edits = make_edits(model, interventions, means, offset=begin)
        _, loss, hidden = model(inputs, hidden, targets, edits=edits)
        hidden = detach_hidden(hidden)
        total += loss.item() * targets.numel()
        count += targets.numel()
    return math.exp(total / max(count, 1))


def agreement(model: RNNLM, vocab, items: Sequence[ProbeItem], interventions: Sequence[Intervention] = (),
              means: Cache | None = None, name: str = "run") -> pd.DataFrame:
    """Agreement accuracy by distance (inspect agreement's rows: model, distance, items, accuracy) with the
    interventions; steps count from the <eos> each sentence is read after (step 0)."""
    edits = make_edits(model, interventions, means)
    return accuracy_by_distance(items, lm_margins(model, vocab, items, edits=edits), name)


def accuracy_split(table: pd.DataFrame, near_below: int = 4) -> tuple[float, float]:
    """(accuracy with fewer than near_below words between subject and verb, accuracy at near_below or more),
    each weighted by the sentences at each distance."""
    rows = table[table["distance"].notna()]
    def share(part):
        return float((part["accuracy"] * part["items"]).sum() / max(part["items"].sum(), 1))
    return share(rows[rows["distance"] < near_below]), share(rows[rows["distance"] >= near_below])


BANDS = ((0, 3), (4, 7), (8, 11), (12, None))  # words between subject and verb, for the experiment's table


def by_band(table: pd.DataFrame) -> dict[str, float]:
    """Agreement accuracy in bands of distance: {"0–3": …, "4–7": …, "8–11": …, "12+": …} (NaN where no sentence)."""
    rows = table[table["distance"].notna()]
    out = {}
    for low, high in BANDS:
        part = rows[(rows["distance"] >= low) & ((rows["distance"] <= high) if high is not None else True)]
        name = f"{low}–{high}" if high is not None else f"{low}+"
        out[name] = float((part["accuracy"] * part["items"]).sum() / part["items"].sum()) if len(part) else math.nan
    return out


def ablation_ranking(model: RNNLM, vocab, items: Sequence[ProbeItem], point: str = "layer0.h",
                     far: int = 4) -> pd.DataFrame:
    """Lakretz et al. (2019): each unit of one point set to 0 alone; the agreement accuracy at `far`+ words after,
    most harmful first (columns unit, near, far, far_drop)."""
    _, base_far = accuracy_split(agreement(model, vocab, items), far)
    rows = []
    for unit in range(model.cfg.hidden):
        near, far_acc = accuracy_split(agreement(model, vocab, items, [Intervention(point, "set", 0.0, (unit,))]), far)
        rows.append({"unit": unit, "near": near, "far": far_acc, "far_drop": base_far - far_acc})
    return pd.DataFrame(rows).sort_values("far_drop", ascending=False, kind="stable").reset_index(drop=True)


def ablate(point: str, units: Sequence[int]) -> Intervention:
    return Intervention(point, "set", 0.0, tuple(int(u) for u in units))


def number_experiment(model: RNNLM, vocab, items: Sequence[ProbeItem], valid_ids, ranking: pd.DataFrame,
                      ks: Sequence[int] = (2, 4), draws: int = 5, seed: int = 0, point: str = "layer0.h",
                      far: int = 4) -> pd.DataFrame:
    """The Lakretz experiment's table: no intervention; the top-k units of the ranking set to 0; k random units
    (draws, seeded; mean and spread); every forget gate closed. Columns: intervention, k, draw, near, far, the
    accuracy in each band of distance (by_band), ppl."""
    rng = np.random.default_rng(seed)
    rows = []

    def measure(label: str, k: int, draw: int | None, ivs: list[Intervention]) -> None:
        table = agreement(model, vocab, items, ivs)
        near, far_acc = accuracy_split(table, far)
        rows.append({"intervention": label, "k": k, "draw": draw, "near": near, "far": far_acc, **by_band(table),
                     "ppl": perplexity(model, valid_ids, ivs)})

    measure("none", 0, None, [])
    for k in ks:
        measure(f"top-{k} units", k, None, [ablate(point, ranking["unit"][:k])])
        for d in range(draws):
            measure(f"{k} random units", k, d, [ablate(point, rng.choice(model.cfg.hidden, k, replace=False))])
    if model.cfg.arch == "lstm":
        layer = parse_point(point, model.cfg)[0]
        measure("every forget gate closed", model.cfg.hidden, None, [Intervention(f"layer{layer}.f", "set", 0.0)])
    return pd.DataFrame(rows)


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """number_experiment's rows, the random draws as mean ± std: intervention, k, near, far, far_std, each band's
    mean, ppl, draws."""
    bands = [c for c in table.columns if "–" in c or c.endswith("+")]
    out = table.groupby(["intervention", "k"], sort=False).agg(
        near=("near", "mean"), far=("far", "mean"), far_std=("far", "std"), **{b: (b, "mean") for b in bands},
        ppl=("ppl", "mean"), draws=("draw", "count")).reset_index()
    return out.fillna({"far_std": 0.0})


PLURAL_FORMS = ("are", "were", "have")


def subject_is_plural(item: ProbeItem) -> bool:
    """Whether the verb that agrees is the plural one: are / were / have, or the form without -s (look vs looks)."""
    return item.correct in PLURAL_FORMS or item.wrong in (item.correct + "s", item.correct + "es")


@torch.no_grad()
def number_correlation(model: RNNLM, vocab, items: Sequence[ProbeItem], point: str = "layer0.h") -> pd.DataFrame:
    """Each unit's correlation (Pearson r) at one point, at the step that predicts the verb, with the subject's
    number (1 plural, 0 singular) over the probe sentences, each read from <eos>: a cheap guess at the number
    units (one forward pass), strongest |r| first. Columns unit, r (0 for a unit that never varies)."""
    parse_point(point, model.cfg)
    seqs = [vocab.encode([EOS, *it.prefix]) for it in items]
    grid = np.zeros((max(len(s) for s in seqs), len(seqs)), dtype=np.int64)
    for j, s in enumerate(seqs):
        grid[:len(s), j] = s  # right-padding: the steps read before the verb never see it
    _, cache = run_with_cache(model, grid)
    values = cache[point][[len(s) - 1 for s in seqs], np.arange(len(seqs))].double().cpu().numpy()  # (N, H)
    number = np.asarray([subject_is_plural(it) for it in items], dtype=float)
    x, y = values - values.mean(0), number - number.mean()
    spread = np.sqrt((x ** 2).sum(0) * (y ** 2).sum())
    r = np.divide(x.T @ y, spread, out=np.zeros(values.shape[1]), where=spread > 0)
    order = np.argsort(-np.abs(r), kind="stable")
    return pd.DataFrame({"unit": order, "r": r[order]})


def surprisal(model: RNNLM, ids, interventions: Sequence[Intervention] = (), means: Cache | None = None) -> np.ndarray:
    """−log₂ P(ids[t] | ids[:t]) in bits for t = 1 … T−1 (T−1 values), the text read with the interventions."""
    logits, _ = run_with_cache(model, ids, interventions, means)
    logp = torch.log_softmax(logits[:-1, 0].double(), dim=-1)                   # (T−1, V)
    target = torch.as_tensor(np.asarray(ids)[1:], device=logp.device)
    return (-logp.gather(1, target[:, None])[:, 0] / math.log(2)).cpu().numpy()


__all__ = ["BANDS", "OPS", "Cache", "Intervention", "ablate", "by_band", "ablation_ranking", "accuracy_split", "agreement", "make_edits",
           "number_correlation", "number_experiment", "subject_is_plural", "surprisal", "parse_point", "perplexity", "point_names", "run_with_cache", "summary",
           "unit_means"]

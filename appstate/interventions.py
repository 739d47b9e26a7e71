"""The Interventions page: its presets, the interventions its fields describe, and what they change (validation
perplexity, agreement by distance, each token's surprisal, the error signal through time, Graves' Fig. 4.4), each
measured before and after through lmcore.inspect.interventions and kept per checkpoint version and intervention
(st.cache_data), so a preset seen once, or a link to it, shows again at once."""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
import streamlit as st

from appstate.corpus import cached_corpus, example_text
from appstate.inspection import decay_curves, gate_chain
from appstate.models import ModelRun, cached_checkpoint, checkpoint_version, tokens_of
from lmcore.corpus.tokenize import EOS
from lmcore.inspect import interventions as iv
from lmcore.inspect.gradients import DecayCurve, loss_gradient_decay
from lmcore.inspect.memory import ProbeItem, agreement_items, probe_applies, readable
from lmcore.inspect.sensitivity import input_sensitivity, mean_over_units
from lmcore.inspect.trace import gate_notes
from lmcore.nn.architectures import GATE_LABELS, GATES, RECURRENT
from lmcore.viz.gates import PLACES

__all__ = ["ALL", "DRAWS", "FAR", "NOTHING", "OPS", "OP_NAMES", "PPL_TOKENS", "PRESETS", "PROBE_ITEMS", "RANDOM",
           "TOP_ABLATION", "TOP_CORRELATION", "TYPED", "UNIT_MODES", "Chain", "Measured", "Preset", "chains",
           "default_text", "interventions", "measure", "point_label", "point_options", "presets_for", "probe_items",
           "text_tokens", "unit_draws"]

# --- what can be asked -------------------------------------------------------------------------------------------
OPS = ("set", "mean", "scale", "add")  # "patch" needs a second sentence: the CLI has it (inspect intervene)
OP_NAMES = {"set": "set to", "mean": "set to its mean", "scale": "scale by", "add": "add"}
NOTHING = "nothing"
ALL, TYPED = "all units", "these units"
TOP_ABLATION, TOP_CORRELATION = "top k number units (ablation)", "top k number units (correlation)"
RANDOM = "k random units (5 draws)"
UNIT_MODES = (ALL, TYPED, TOP_ABLATION, TOP_CORRELATION, RANDOM)
NUMBER_MODES = (TOP_ABLATION, TOP_CORRELATION)
DRAWS, SEED = 5, 0
FAR = 4               # agreement "far": this many words or more between subject and verb (Lakretz et al.)
PPL_TOKENS = 20_000   # validation tokens the perplexity reads (the whole split of the agreement corpus)
PROBE_ITEMS = None    # probe sentences used (None: every readable one of the validation split); tests use fewer
DECAY_K, DECAY_POSITIONS, DECAY_TOKENS = 40, 16, 5000  # the Lecture's decay figure: its "before" is shared


@dataclass(frozen=True)
class Preset:
    name: str
    archs: tuple[str, ...]
    point: str                  # "f", "i", "z", "h": at the chosen layer
    op: str = "set"
    value: float = 0.0
    units: str = ALL
    k: int = 2
    start: int = 0
    also: str = NOTHING         # a second point, the same units and steps
    also_op: str = "set"
    also_value: float = 0.0
    says: str = ""


PRESETS = (
    Preset("close every forget gate", ("lstm",), "f",
           says="f = 0: c_t = i ⊙ g_t, the cell forgets all it held at every step. Whatever the subject left in it "
                "is gone one word later, so agreement over a distance should fall to a guess, or below one: the model "
                "then goes by the last words, and in this corpus a noun between subject and verb has the other "
                "number 7 times in 10 (an attractor)."),
    Preset("open every input gate", ("lstm",), "i", value=1.0,
           says="i = 1: every candidate g_t is written into the cell at full strength, whether it matters or not; "
                "what the cell held is drowned by what follows."),
    Preset("freeze the cell", ("lstm",), "f", value=1.0, start=3, also="i", also_value=0.0,
           says="From step 3 on (the word after “the roses”, read after <eos>) f = 1 and i = 0: c_t = c_{t−1}, "
                "the cell keeps exactly what it held after the subject; h_t still reads it through o."),
    Preset("forget at every step (z := 0)", ("gru",), "z",
           says="z = 0: h_t = n_t, the state is rewritten from the input and r ⊙ h_{t−1} at every step; the "
                "direct path that keeps h_{t−1} is cut."),
    Preset("freeze the state (z := 1)", ("gru",), "z", value=1.0, start=3,
           says="From step 3 on z = 1: h_t = h_{t−1}, the state keeps what it held after the subject."),
    Preset("ablate the top-k number units", RECURRENT, "h", units=TOP_ABLATION,
           says="Lakretz et al. (2019): a few units carry the subject's number to the verb. Each unit of h set to 0 "
                "alone, ranked by how much agreement at 4+ words drops; the top k set to 0 together."),
    Preset("ablate k random units (5 draws)", RECURRENT, "h", units=RANDOM,
           says="The control for the number units: as many units of h set to 0, chosen at random (5 seeded draws, "
                "mean and spread). If the number units matter, this costs far less."),
)


def presets_for(arch: str) -> list[Preset]:
    return [p for p in PRESETS if arch in p.archs]


def point_options(arch: str) -> list[str]:
    """The points of one layer: the gates, the LSTM's cell c, the hidden state h."""
    return [*GATES[arch], *(["c"] if arch == "lstm" else []), "h"]


def point_label(name: str) -> str:
    return GATE_LABELS.get(name, name)


def _parse_units(text: str, hidden: int) -> tuple[int, ...]:
    found = [int(u) for u in re.findall(r"-?\d+", text)]
    if not found:
        raise ValueError("type the units to intervene on, e.g. 3, 17, 104")
    bad = [u for u in found if not 0 <= u < hidden]
    if bad:
        raise ValueError(f"units {', '.join(map(str, bad))} do not exist: this model has units 0 to {hidden - 1}")
    return tuple(sorted(set(found)))


# --- the probe sentences and the number units ---------------------------------------------------------------------
@st.cache_resource(show_spinner=False)
def _valid_items() -> list[ProbeItem]:
    return agreement_items("valid")  # built from the agreement corpus's text: seconds the first time


def probe_items(run: ModelRun) -> list[ProbeItem] | None:
    """The agreement probe's validation sentences this run reads whole (PROBE_ITEMS of them at most); None when the
    probe does not apply to its corpus (a python-docs run knows "is" and "are" but not "roses")."""
    items = _valid_items()
    if not probe_applies(items, run.vocab):
        return None
    return readable(items, run.vocab)[:PROBE_ITEMS]


@st.cache_data(max_entries=32, show_spinner=False)
def _ablation_ranking(path: str, mtime_ns: int, point: str, limit: int | None) -> pd.DataFrame:
    model, _, vocab, _ = cached_checkpoint(path, mtime_ns)
    return iv.ablation_ranking(model, vocab, readable(_valid_items(), vocab)[:limit], point, FAR)


@st.cache_data(max_entries=32, show_spinner=False)
def _correlation(path: str, mtime_ns: int, point: str, limit: int | None) -> pd.DataFrame:
    model, _, vocab, _ = cached_checkpoint(path, mtime_ns)
    return iv.number_correlation(model, vocab, readable(_valid_items(), vocab)[:limit], point)


def unit_draws(run: ModelRun, point: str, mode: str, k: int, typed: str) -> tuple[list[tuple[int, ...] | None], str]:
    """The units of each draw (one draw but for RANDOM; None: every unit) and a line saying how they were found.
    Raises ValueError with what to fix (a typed unit that does not exist, no probe for the number units)."""
    hidden = run.cfg.model.hidden
    k = max(1, min(int(k), hidden))
    if mode == ALL:
        return [None], ""
    if mode == TYPED:
        return [_parse_units(typed, hidden)], ""
    if mode == RANDOM:
        rng = np.random.default_rng(SEED)
        draws = [tuple(sorted(int(u) for u in rng.choice(hidden, k, replace=False))) for _ in range(DRAWS)]
        return draws, "Random units, seeded: " + "; ".join(", ".join(map(str, d)) for d in draws) + "."
    if probe_items(run) is None:
        raise ValueError("the number units are found with the agreement probe, which this run's corpus cannot read: "
                         "pick a run trained on the agreement corpus, or type the units")
    if mode == TOP_ABLATION:
        with st.spinner(f"Ranking the {hidden} units of {point} by ablation: each set to 0 alone over the probe's "
                        f"sentences, about 20 s once per run and point…", show_time=True):
            table = _ablation_ranking(*checkpoint_version(run.ref), point, PROBE_ITEMS)
        units = tuple(int(u) for u in table["unit"][:k])
        drops = ", ".join(f"{u} (−{d:.1%})" for u, d in zip(units, table["far_drop"][:k]))
        return [units], f"Top {k} by ablation, each alone costing agreement at {FAR}+ words: {drops}."
    table = _correlation(*checkpoint_version(run.ref), point, PROBE_ITEMS)
    units = tuple(int(u) for u in table["unit"][:k])
    rs = ", ".join(f"{u} (r = {r:+.2f})" for u, r in zip(units, table["r"][:k]))
    return [units], f"Top {k} by |correlation| at the verb with the subject's number (plural = 1): {rs}."


def interventions(layer: int, point: str, op: str, value: float, start: int, also: str, also_op: str,
                  also_value: float, units: tuple[int, ...] | None) -> list[iv.Intervention]:
    """The page's fields as interventions: one point, and a second one (same units and steps) unless `also` is
    NOTHING."""
    out = [iv.Intervention(f"layer{layer}.{point}", op, float(value), units, int(start))]
    if also != NOTHING:
        out.append(iv.Intervention(f"layer{layer}.{also}", also_op, float(also_value), units, int(start)))
    return out


# --- measured, before and after -----------------------------------------------------------------------------------
Key = tuple  # interventions as plain tuples: what st.cache_data hashes


def _key(ivs) -> Key:
    return tuple((i.point, i.op, float(i.value), i.units, i.start, i.stop) for i in ivs)


def _ivs(key: Key) -> list[iv.Intervention]:
    return [iv.Intervention(*k) for k in key]


def _valid_ids(path: str, mtime_ns: int, tokens: int) -> np.ndarray:
    _, cfg, vocab, _ = cached_checkpoint(path, mtime_ns)
    corpus = cached_corpus(cfg.corpus)
    return vocab.encode(corpus.vocab.decode(corpus.valid[:tokens]))


@st.cache_resource(max_entries=64, show_spinner=False)
def _means(path: str, mtime_ns: int, points: tuple[str, ...]) -> iv.Cache:
    """Each unit's mean at these points over the validation text (the "mean" operation), read-only."""
    model = cached_checkpoint(path, mtime_ns)[0]
    return iv.unit_means(model, _valid_ids(path, mtime_ns, PPL_TOKENS), points)


def _means_for(path: str, mtime_ns: int, key: Key) -> iv.Cache | None:
    points = tuple(sorted({k[0] for k in key if k[1] == "mean"}))
    return _means(path, mtime_ns, points) if points else None


@st.cache_data(max_entries=256, show_spinner=False)
def _perplexity(path: str, mtime_ns: int, key: Key, tokens: int) -> float:
    model = cached_checkpoint(path, mtime_ns)[0]
    return iv.perplexity(model, _valid_ids(path, mtime_ns, tokens), _ivs(key), _means_for(path, mtime_ns, key))


@st.cache_data(max_entries=256, show_spinner=False)
def _agreement(path: str, mtime_ns: int, key: Key, limit: int | None) -> pd.DataFrame:
    model, _, vocab, _ = cached_checkpoint(path, mtime_ns)
    items = readable(_valid_items(), vocab)[:limit]
    return iv.agreement(model, vocab, items, _ivs(key), _means_for(path, mtime_ns, key), "after" if key else "before")


@st.cache_data(max_entries=256, show_spinner=False)
def _surprisal(path: str, mtime_ns: int, key: Key, tokens: tuple[str, ...]) -> np.ndarray:
    model, _, vocab, _ = cached_checkpoint(path, mtime_ns)
    return iv.surprisal(model, vocab.encode(list(tokens)), _ivs(key), _means_for(path, mtime_ns, key))


@st.cache_data(max_entries=128, show_spinner=False)
def _decay_after(path: str, mtime_ns: int, key: Key) -> DecayCurve:
    model = cached_checkpoint(path, mtime_ns)[0]
    edits = iv.make_edits(model, _ivs(key), _means_for(path, mtime_ns, key))
    return loss_gradient_decay(model, _valid_ids(path, mtime_ns, DECAY_TOKENS), K=DECAY_K, positions=DECAY_POSITIONS,
                               edits=edits)


@dataclass
class Measured:
    """What the page shows, before and after; with random draws, one "after" per draw."""
    ppl_before: float
    ppl_after: list[float]
    agreement_before: pd.DataFrame | None    # None: the probe does not apply to this run
    agreement_after: list[pd.DataFrame]
    surprisal_before: np.ndarray              # bits of tokens[1:], each given what precedes it
    surprisal_after: np.ndarray               # the mean over the draws
    decay_before: DecayCurve | None           # None: the validation text is too short for the window
    decay_after: DecayCurve | None            # the first draw's

    @property
    def ppl(self) -> tuple[float, float]:
        """The perplexity after: (mean, spread) over the draws (spread 0 for one draw)."""
        return _mean_std(self.ppl_after)

    def accuracy(self) -> tuple[tuple[float, float], tuple[float, float], tuple[float, float]]:
        """Agreement accuracy below FAR words and at FAR or more: before (near, far), then after (mean, spread)
        near and far."""
        before = iv.accuracy_split(self.agreement_before, FAR)
        near, far = zip(*(iv.accuracy_split(t, FAR) for t in self.agreement_after))
        return before, _mean_std(near), _mean_std(far)


def _mean_std(values) -> tuple[float, float]:
    values = np.asarray(values, dtype=float)
    return float(values.mean()), float(values.std(ddof=1)) if values.size > 1 else 0.0


def measure(run: ModelRun, draws: list[list[iv.Intervention]], tokens: list[str]) -> Measured:
    """Every number of the page for these interventions (one list per draw) on this run, and the text's tokens
    (read from the <eos> at their start)."""
    version = checkpoint_version(run.ref)
    keys = [_key(d) for d in draws]
    applies = probe_items(run) is not None
    try:
        decay_before, decay_after = decay_curves(run.ref.checkpoint, DECAY_K, DECAY_POSITIONS)[0], \
            _decay_after(*version, keys[0])
    except ValueError:  # a validation text shorter than the window
        decay_before = decay_after = None
    return Measured(
        _perplexity(*version, (), PPL_TOKENS), [_perplexity(*version, k, PPL_TOKENS) for k in keys],
        _agreement(*version, (), PROBE_ITEMS) if applies else None,
        [_agreement(*version, k, PROBE_ITEMS) for k in keys] if applies else [],
        _surprisal(*version, (), tuple(tokens)),
        np.mean([_surprisal(*version, k, tuple(tokens)) for k in keys], axis=0),
        decay_before, decay_after)


# --- the text, and Graves' Fig. 4.4 before and after ---------------------------------------------------------------
def default_text(run: ModelRun) -> str:
    """The lecture's roses on the agreement corpus, else a validation sentence of the run's own corpus."""
    return example_text(run.cfg.corpus)


def text_tokens(text: str, run: ModelRun) -> list[str]:
    """A typed line as the run reads it, after an <eos> (step 0), as the probe's sentences are read."""
    return [EOS, *tokens_of(text, run.cfg)]


@dataclass
class Chain:
    """One Fig. 4.4 over steps [start, stop): the gates and h of one unit (or the mean), shaded by ‖∂h_t/∂x_source‖
    relative to the larger peak of before and after, so the two figures share one scale."""
    unit: int | None
    sensitivity: np.ndarray      # raw, over steps 0 … stop − 1
    shading: np.ndarray          # over the window
    gates: dict[str, np.ndarray]  # over the window
    notes: dict[str, str]
    constant: tuple[str, ...]


def chains(run: ModelRun, tokens: list[str], source: int, start: int, stop: int, layer: int, unit: int | None,
           keeper: bool, draw: list[iv.Intervention]) -> tuple[Chain, Chain]:
    """Fig. 4.4 before (the trace, as on the Gates page) and after (the gates and h of a run with the interventions,
    and the sensitivity with them inside the backward pass), for the same unit: the keeper is chosen before."""
    before = gate_chain(run, tokens, source, start, stop, layer, unit, keeper)
    lay, unit = before.layer, before.unit
    model, ids = run.model, run.vocab.encode(tokens[:stop])
    means = _means_for(*checkpoint_version(run.ref), _key(draw))
    _, cache = iv.run_with_cache(model, ids, draw, means)
    raw = input_sensitivity(model, ids, source, lay, unit,
                            edits=lambda offset: iv.make_edits(model, draw, means, offset=offset))
    gates = {g: mean_over_units(cache[f"layer{lay}.{g}"][:, 0].cpu().numpy(), unit)[start:stop]
             for g in PLACES[run.cfg.model.arch]}
    peak = max(float(before.sensitivity.max(initial=0.0)), float(raw.max(initial=0.0)))
    shade = (lambda s: s[start:stop] / peak) if peak > 0 else (lambda s: np.zeros(stop - start))
    notes, constant = gate_notes(run.cfg.model), run.cfg.model.constant_gates
    return (Chain(unit, before.sensitivity, shade(before.sensitivity), before.gates, notes, constant),
            Chain(unit, raw, shade(raw), gates, notes, constant))

"""Hidden states: order the units, mark tokens with a regex, LSTMVis-style pattern search, and the
defaults that make each of these find something on a new text (a threshold, a span and features proposed
from the data; the range the activation function allows, for the colour scale).

Every function takes the (T, H) matrix of one quantity of a trace (h, or an LSTM's cell state c):
T tokens in time order, H units. Pure numpy (and one short-lived child process for a user's regex).
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass

import numpy as np
import pandas as pd

from lmcore.corpus.tokenize import EOS
from lmcore.nn.architectures import LSTM_VARIANTS, SIGMOID_GATES, ModelConfig
from lmcore.values import ordinal

ORDERS = {"variance": "variance over the text", "mean": "mean activation",
          "correlation": "correlation with a feature", "unit": "unit number"}
SCORE_NAMES = {"variance": "var", "mean": "mean", "correlation": "r"}  # the score shown beside each unit
# Features over word tokens joined by spaces (<eos> is a line break), in the order they are offered:
# long-range structure first (what an RNN must remember), then punctuation. With a group, only group 1 marks.
WORD_FEATURES = {"inside parentheses": r"\(([^()\n]*)\)",
                 "inside quotes": r'"([^"\n]*)"',
                 "line ends": r"\n",
                 "sentence starts": r"(?:^|\n) *(\S+)",
                 "commas": r",",
                 "after a comma": r",\s*(\S+)",
                 "full stops": r"\.",
                 "digits": r"\d",
                 "capitalised words": r"\b[A-Z]\w*",
                 "brackets": r"[()\[\]{}]"}
# Features over characters joined with nothing between them.
CHAR_FEATURES = {"inside parentheses": r"\(([^()\n]*)\)",
                 "inside quotes": r'"([^"\n]*)"',
                 "spaces": r" ",
                 "word starts": r"(?<![A-Za-z])[A-Za-z]",
                 "line ends": r"\n",
                 "vowels": r"[aeiouAEIOU]",
                 "punctuation": r"[^\w\s]",
                 "digits": r"\d",
                 "capital letters": r"[A-Z]"}
FREQUENT_WORDS = 3       # the text's most frequent words are offered as features too
FEW = 3                  # tokens a feature should mark to be worth correlating with
MAX_PATTERN = 200        # characters in a pattern
MAX_TEXT = 100_000       # characters of text a pattern runs over
REGEX_TIMEOUT_S = 2.0    # a pattern that backtracks for longer is stopped


# --- unit ordering ------------------------------------------------------------------------------
def correlation(values: np.ndarray, feature: np.ndarray) -> np.ndarray:
    """Pearson r of every unit with a per-token feature, (H,); 0 where either one is constant."""
    v = values - values.mean(axis=0)                     # (T, H)
    f = np.asarray(feature, dtype=float) - np.mean(feature)  # (T,)
    denom = np.sqrt((v ** 2).sum(axis=0) * (f ** 2).sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (f @ v) / denom
    return np.where(denom > 1e-12, r, 0.0)


def unit_scores(values: np.ndarray, by: str, feature: np.ndarray | None = None) -> np.ndarray:
    """The number each unit is sorted by, (H,)."""
    if by == "variance":
        return values.var(axis=0)
    if by == "mean":
        return values.mean(axis=0)
    if by == "correlation":
        if feature is None:
            raise ValueError("sorting by correlation needs a feature (one 0/1 value per token)")
        return correlation(values, feature)
    if by == "unit":
        return np.arange(values.shape[1], dtype=float)
    raise ValueError(f"unknown order {by!r}; choose one of {', '.join(ORDERS)}")


def order_units(values: np.ndarray, by: str, feature: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(unit indices, their scores): largest variance / mean / |r| first, or in unit number order."""
    scores = unit_scores(values, by, feature)
    key = {"variance": -scores, "mean": -scores, "correlation": -np.abs(scores), "unit": scores}[by]
    order = np.argsort(key, kind="stable")
    return order, scores[order]


# --- a regex over the text, as a 0/1 feature per token ------------------------------------------------
def token_text(tokens: list[str], sep: str = " ") -> tuple[str, np.ndarray, np.ndarray]:
    """The tokens joined by `sep` (<eos> becomes a line break), and each token's [start, end) in it."""
    pieces = ["\n" if t == EOS else t for t in tokens]
    lengths = np.array([len(p) for p in pieces], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths[:-1] + len(sep))]) if pieces else np.zeros(0, np.int64)
    return sep.join(pieces), starts, starts + lengths


def _match_spans(rx: re.Pattern, text: str) -> list[tuple[int, int]]:
    """[start, end) of every match of a compiled pattern, of group 1 when it has a group and the group took part."""
    spans = []
    for m in rx.finditer(text):
        g = 1 if rx.groups and m.start(1) >= 0 else 0
        spans.append((m.start(g), m.end(g)))
    return spans


# Runs in a fresh interpreter (-I -S: no site, no user env) that can be killed if the pattern backtracks.
_CHILD = """
import json, re, sys
pattern, text, limit = json.load(sys.stdin)
rx = re.compile(pattern)
spans = []
for m in rx.finditer(text):
    g = 1 if rx.groups and m.start(1) >= 0 else 0
    spans.append((m.start(g), m.end(g)))
    if len(spans) >= limit:
        break
json.dump(spans, sys.stdout)
"""


def compile_pattern(pattern: str) -> re.Pattern:
    """Check a user's pattern: a clear ValueError if it is empty, too long, or not a regex."""
    if not pattern:
        raise ValueError("the pattern is empty")
    if len(pattern) > MAX_PATTERN:
        raise ValueError(f"the pattern has {len(pattern)} characters; at most {MAX_PATTERN} are allowed")
    try:
        return re.compile(pattern)
    except re.error as err:
        raise ValueError(f"not a valid regular expression: {err}") from None


def regex_spans(pattern: str, text: str, timeout: float = REGEX_TIMEOUT_S) -> list[tuple[int, int]]:
    """[start, end) of every match (of group 1 when the pattern has a group), found in a child process
    that is stopped after `timeout` seconds, so a catastrophically backtracking pattern cannot hang the app."""
    compile_pattern(pattern)
    if len(text) > MAX_TEXT:
        raise ValueError(f"the text has {len(text):,} characters; a pattern runs over at most {MAX_TEXT:,}")
    try:
        done = subprocess.run([sys.executable, "-I", "-S", "-c", _CHILD], capture_output=True, timeout=timeout,
                              input=json.dumps([pattern, text, len(text) + 1]).encode("ascii"))
    except subprocess.TimeoutExpired:
        raise ValueError(f"the pattern took longer than {timeout:g} s on this text (nested repetition such as "
                         "(a+)+ backtracks exponentially); simplify it") from None
    if done.returncode:
        raise ValueError(f"the pattern could not be run: {done.stderr.decode(errors='replace')[-300:]}")
    return [tuple(span) for span in json.loads(done.stdout)]


def spans_to_tokens(spans: list[tuple[int, int]], starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """1 for every token a span overlaps (an empty span marks the token it falls in), else 0; (T,)."""
    if not spans or not len(starts):
        return np.zeros(len(starts), dtype=np.int8)
    a, b = np.asarray(spans, dtype=np.int64).T                 # (n,) each
    first = np.searchsorted(ends, a, side="right")             # first token ending after a
    stop = np.where(a == b, np.searchsorted(starts, a, side="right"), np.searchsorted(starts, b, side="left"))
    keep = stop > first
    count = np.zeros(len(starts) + 1, dtype=np.int64)          # +1 at each run's first token, -1 after its last
    np.add.at(count, first[keep], 1)
    np.add.at(count, stop[keep], -1)
    return (np.cumsum(count[:-1]) > 0).astype(np.int8)


def regex_feature(tokens: list[str], pattern: str, sep: str = " ", timeout: float = REGEX_TIMEOUT_S) -> np.ndarray:
    """The 0/1 feature of each token: does a match of `pattern` over the joined text cover it?"""
    text, starts, ends = token_text(tokens, sep)
    return spans_to_tokens(regex_spans(pattern, text, timeout), starts, ends)


# --- LSTMVis-style pattern search (Strobelt et al.) ----------------------------------------------------
def select_units(values: np.ndarray, start: int, end: int, threshold: float) -> np.ndarray:
    """Units on (≥ threshold) at every position start..end (inclusive) and off (< threshold) just before."""
    if not 0 <= start <= end < len(values):
        raise ValueError(f"the span {start}–{end} is not inside the text of {len(values)} tokens")
    return _switched_on(values >= threshold, start, end)


def _switched_on(on: np.ndarray, start: int, end: int) -> np.ndarray:
    """The units of the (T, H) on/off matrix that are on throughout start..end and off just before."""
    throughout = on[start:end + 1].all(axis=0)
    off_before = ~on[start - 1] if start > 0 else np.ones(on.shape[1], dtype=bool)
    return np.flatnonzero(throughout & off_before)


@dataclass(frozen=True)
class Match:
    start: int          # first position
    end: int            # last position (inclusive)
    fraction: float     # share of the selected units on at every position of the match
    jaccard: float      # |selected ∩ on throughout| / |selected ∪ on throughout|

    @property
    def length(self) -> int:
        return self.end - self.start + 1


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Maximal runs of True as (first, last) positions."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1))


def search_pattern(values: np.ndarray, units: np.ndarray, threshold: float, min_fraction: float = 1.0,
                   min_length: int = 1, exclude: tuple[int, int] | None = None) -> list[Match]:
    """Every span where the selected units switch on together, best first.

    A match is a maximal run of positions where at least `min_fraction` of `units` are ≥ threshold (so
    they are off just before it). It is ranked by the share of the units on throughout the run, then by
    the Jaccard overlap of the selection with every unit on throughout (more specific first), then longer
    first. A match overlapping `exclude` (the selection itself) is left out.
    """
    return _search(values >= threshold, np.asarray(units, dtype=int), min_fraction, min_length, exclude)


def _search(on: np.ndarray, units: np.ndarray, min_fraction: float = 1.0, min_length: int = 1,
            exclude: tuple[int, int] | None = None) -> list[Match]:
    if units.size == 0:
        return []
    share = on[:, units].mean(axis=1)                         # (T,)
    selected = np.zeros(on.shape[1], dtype=bool)
    selected[units] = True
    matches = []
    for a, b in _runs(share >= min_fraction - 1e-9):
        if b - a + 1 < min_length or (exclude and a <= exclude[1] and exclude[0] <= b):
            continue
        throughout = on[a:b + 1].all(axis=0)                  # (H,)
        both = (throughout & selected).sum()
        matches.append(Match(int(a), int(b), both / units.size, both / (throughout | selected).sum()))
    return sorted(matches, key=lambda m: (-m.fraction, -m.jaccard, -m.length, m.start))


def matches_table(matches: list[Match], tokens: list[str], context: int = 4, sep: str = " ") -> pd.DataFrame:
    """One row per match: where, how well, its text, and a few tokens either side for context."""
    shown = lambda ts: sep.join("↵" if t == EOS else t for t in ts)
    rows = [{"rank": i + 1, "start": m.start, "end": m.end, "length": m.length,
             "share of units on": round(m.fraction, 3), "Jaccard": round(m.jaccard, 3),
             "text": shown(tokens[m.start:m.end + 1]),
             "in context": f"{shown(tokens[max(0, m.start - context):m.start])} [{shown(tokens[m.start:m.end + 1])}] "
                           f"{shown(tokens[m.end + 1:m.end + 1 + context])}".strip()}
            for i, m in enumerate(matches)]
    return pd.DataFrame(rows, columns=["rank", "start", "end", "length", "share of units on", "Jaccard", "text",
                                       "in context"])


# --- defaults proposed from the data --------------------------------------------------------------------
PROPOSED_PERCENTILE = 80   # about one (token, unit) value in five counts as "on"
SPAN_CANDIDATES = 120      # positions from the window's start where a default span may begin
MAX_SPAN = 3               # tokens in a proposed span
PROPOSED_MATCHES = 3       # matches a proposed span should have (fewer: a span that has the most)


@dataclass(frozen=True)
class Threshold:
    value: float
    percentile: int    # of every (token, unit) value of the quantity over the text
    name: str          # the quantity: "h", "c"

    def describe(self) -> str:
        return f"{self.value:.3g} = the {ordinal(self.percentile)} percentile of {self.name} over this text"


def propose_threshold(values: np.ndarray, percentile: int = PROPOSED_PERCENTILE, name: str = "h") -> Threshold:
    """A threshold from the data, whatever the activation's range: the given percentile of all values (T, H),
    so about (100 − percentile)% of the (token, unit) cells are on."""
    if not 0 < percentile < 100:
        raise ValueError(f"the percentile must be between 0 and 100, not {percentile}")
    return Threshold(float(np.percentile(values, percentile)), percentile, name)


def propose_span(values: np.ndarray, threshold: float, first: int = 0, stop: int | None = None,
                 min_fraction: float = 1.0) -> tuple[int, int]:
    """A span worth searching from, inside the window [first, stop): one whose units (on throughout, off
    just before) switch on together elsewhere in the text, and often.

    Candidates start in the window's first SPAN_CANDIDATES tokens (not at token 0, where every unit counts
    as off before) and last 1 to MAX_SPAN tokens. The winner has at least PROPOSED_MATCHES matches if any does,
    then the most units (counting up to 4: two units on together recur by chance, four hardly), then the most
    matches, the earliest on ties. Without units anywhere, the window's start. (The first candidate with a match
    had been taken: on the default lineup's GRU, 4 units and one match, a comma.)
    """
    n_tokens = len(values)
    stop = n_tokens if stop is None else min(stop, n_tokens)
    on = values >= threshold                                  # (T, H)
    begin = max(first, 1) if stop > 1 else first
    candidates = [(a, a + length - 1) for a in range(begin, min(stop, begin + SPAN_CANDIDATES))
                  for length in range(1, MAX_SPAN + 1) if a + length - 1 < stop]
    scored = []
    for span in candidates:
        units = _switched_on(on, *span)
        if units.size:
            matches = len(_search(on, units, min_fraction, exclude=span))
            scored.append(((min(matches, PROPOSED_MATCHES), min(units.size, 4), matches, -span[0], -span[1]), span))
    return max(scored)[1] if scored else (first, first)


@dataclass(frozen=True)
class Feature:
    name: str
    pattern: str
    mask: np.ndarray   # (T,) 1 for each token of the text it marks

    @property
    def marks(self) -> int:
        return int(self.mask.sum())


def _feature_patterns(tokens: list[str], sep: str) -> dict[str, str]:
    """Every candidate feature for this text: the fixed ones for its tokenizer, then its most frequent words."""
    if sep == "":
        return dict(CHAR_FEATURES)
    words = pd.Series([t for t in tokens if re.fullmatch(r"\w+", t)], dtype=object).value_counts()
    frequent = {f'the word "{w}"': rf"\b{w}\b" for w in words.index[:FREQUENT_WORDS]}
    return {**WORD_FEATURES, **frequent}


def suggest_features(tokens: list[str], sep: str = " ") -> list[Feature]:
    """Features worth correlating the units with on this text, in the order offered: each marks at least a
    few tokens (FEW, fewer on a text under 30 tokens) and at most 60% of them, so the feature varies. Those
    marking FEW or more come first, in the order of the lists above; on a short text the rest follow, most
    marks first.

    The patterns are this module's own (no nested repetition), so they run here, without a child process."""
    text, starts, ends = token_text(tokens, sep)
    least = max(1, min(FEW, len(tokens) // 10))
    found = []
    for name, pattern in _feature_patterns(tokens, sep).items():
        mask = spans_to_tokens(_match_spans(re.compile(pattern), text), starts, ends)
        if least <= mask.sum() <= 0.6 * len(tokens):
            found.append(Feature(name, pattern, mask))
    return sorted(found, key=lambda f: (f.marks < FEW, -f.marks if f.marks < FEW else 0))  # stable


def clearest_feature(values: np.ndarray, features: list[Feature]) -> int:
    """The index of the feature some unit follows most closely (the largest |r| of any unit), so sorting by
    correlation opens on a unit that visibly tracks it; 0 when there are none."""
    best = [np.abs(correlation(values, f.mask)).max(initial=0.0) for f in features]
    return int(np.argmax(best)) if best else 0


# --- the range a quantity can take, for its colour scale -------------------------------------------------


def value_bounds(model: ModelConfig, name: str) -> tuple[float | None, float | None]:
    """The interval the model's activation functions keep `name` in; None where it is unbounded."""
    variant = LSTM_VARIANTS[model.variant]
    if name in SIGMOID_GATES:
        return 0.0, 1.0
    if name == "c":
        return None, None
    if name == "g":
        return (-1.0, 1.0) if variant.input_activation else (None, None)
    if name == "n" or model.arch == "gru":               # GRU: h mixes h_{t-1} and n = tanh(…)
        return -1.0, 1.0
    if model.arch == "lstm":                              # h = o ⊙ tanh(c); NOAF: h = o ⊙ c
        return (-1.0, 1.0) if variant.output_activation else (None, None)
    return {"sigmoid": (0.0, 1.0), "tanh": (-1.0, 1.0), "relu": (0.0, None)}[model.cell_activation]

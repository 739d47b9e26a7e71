"""Hidden states: order the units, mark tokens with a user's regex, and LSTMVis-style pattern search.

Every function takes the (T, H) matrix of one quantity of a trace (h, or an LSTM's cell state c):
T tokens in time order, H units. Pure numpy (and one short-lived child process for the regex).
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..corpus.tokenize import EOS

ORDERS = {"variance": "variance over the text", "mean": "mean activation",
          "correlation": "correlation with the regex feature", "unit": "unit number"}
# Features a user can start from. With a group in the pattern, only group 1 marks tokens.
FEATURE_EXAMPLES = {"inside quotes": r'"([^"\n]*)"',
                    "inside parentheses": r"\(([^()\n]*)\)",
                    "after a comma": r",\s*(\S+)"}
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
    on = (values[start:end + 1] >= threshold).all(axis=0)
    off_before = values[start - 1] < threshold if start > 0 else np.ones(values.shape[1], dtype=bool)
    return np.flatnonzero(on & off_before)


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
    units = np.asarray(units, dtype=int)
    if units.size == 0:
        return []
    on = values >= threshold                                  # (T, H)
    share = on[:, units].mean(axis=1)                         # (T,)
    selected = np.zeros(values.shape[1], dtype=bool)
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
             "units on": round(m.fraction, 3), "Jaccard": round(m.jaccard, 3),
             "text": shown(tokens[m.start:m.end + 1]),
             "in context": f"{shown(tokens[max(0, m.start - context):m.start])} [{shown(tokens[m.start:m.end + 1])}] "
                           f"{shown(tokens[m.end + 1:m.end + 1 + context])}".strip()}
            for i, m in enumerate(matches)]
    return pd.DataFrame(rows, columns=["rank", "start", "end", "length", "units on", "Jaccard", "text", "in context"])

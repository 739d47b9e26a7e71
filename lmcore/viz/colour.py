"""A colour scale's ends for values drawn as colour (hidden states over text, the heatmap): the activation's own
range where it has one, else a robust percentile, else the text's own spread."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lmcore.values import ordinal

ROBUST_PERCENTILE = 95     # an unbounded quantity is at full colour here: a few large units cannot wash out the rest


@dataclass(frozen=True)
class ColourRange:
    low: float
    high: float
    diverging: bool    # white at 0 between two hues (a range around 0), else white at `low` rising to one hue
    note: str          # where the range comes from, for a caption


def colour_range(values: np.ndarray, bounds: tuple[float | None, float | None], name: str = "h") -> ColourRange:
    """The colour scale's ends: the activation's own range where it has one ([0, 1] for σ, [−1, 1] for tanh),
    else the ROBUST_PERCENTILE-th percentile of |values| (symmetric about 0, or from 0 for a ReLU)."""
    low, high = bounds
    if low is not None and high is not None:
        return ColourRange(low, high, low < 0 < high, f"{name} lies in [{low:g}, {high:g}]: the colours span "
                                                      "that whole range")
    robust = float(np.percentile(np.abs(values), ROBUST_PERCENTILE)) if np.size(values) else 0.0
    robust = robust or float(np.abs(values).max(initial=0.0)) or 1.0
    where = f"the {ordinal(ROBUST_PERCENTILE)} percentile of |{name}| over this text; beyond it, full colour"
    if low == 0:
        return ColourRange(0.0, robust, False, f"{name} ≥ 0 has no upper bound: the colours end at {robust:.3g}, "
                                               f"{where}")
    return ColourRange(-robust, robust, True, f"{name} has no bound: the colours end at ±{robust:.3g}, {where}")


NARROW = 0.2  # values spanning less than this share of the activation's range look uniform on its scale


def text_colour_range(values: np.ndarray, name: str = "h") -> ColourRange:
    """The colour scale's ends from this text's own values (1st to 99th percentile): for a model whose units
    barely move (a briefly trained σ-RNN whose h stays near 0.5), where the activation's range shows one colour."""
    low, high = (float(v) for v in np.percentile(values, [1, 99])) if np.size(values) else (0.0, 1.0)
    if high <= low:
        low, high = low - 0.5, high + 0.5
    return ColourRange(low, high, low < 0 < high, f"the colours span {name}'s 1st to 99th percentile over this "
                                                  f"text, {low:.3g} to {high:.3g}")


def fills_range(values: np.ndarray, colour: ColourRange) -> float:
    """The share of a colour scale the text's values span (1st to 99th percentile)."""
    if not np.size(values) or colour.high <= colour.low:
        return 1.0
    low, high = np.percentile(values, [1, 99])
    return float((high - low) / (colour.high - colour.low))

"""Hidden-state figures: a windowed units × tokens heatmap, and text coloured token by token by one unit."""
from __future__ import annotations

import html

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from lmcore.corpus.tokenize import EOS
from lmcore.viz.colour import ColourRange
from lmcore.viz.style import DIVERGING, MARGIN, plain, readable_number

SEQUENTIAL = "Reds"  # for a quantity that starts at 0 (σ, ReLU): white at 0, the red of DIVERGING's top end
WINDOW = 80  # tokens drawn at once: every label stays legible at 1440 px (about 10 px a column); slide for more
NEGATIVE, POSITIVE = (33, 102, 172), (178, 24, 43)  # the ends of RdBu: blue below 0, red above


def window_bounds(n_tokens: int, start: int, window: int = WINDOW) -> tuple[int, int]:
    """[first, stop) of the tokens drawn: `window` of them from `start`, kept inside the text."""
    window = max(1, min(window, n_tokens))
    first = int(np.clip(start, 0, n_tokens - window))
    return first, first + window


def _label(i: int, token: str) -> str:
    return f"{i} {plain('↵' if token == EOS else token)}"  # plotly reads a little HTML in labels


def unit_label(unit: int, score: float | None = None, score_name: str = "") -> str:
    """"u17 · var 0.031": the unit and the number it is sorted by, to 3 significant digits (never "0.00")."""
    if score is None or not score_name:
        return f"u{unit}"
    sign = "+" if score > 0 and score_name != "var" else ""
    return f"u{unit} · {score_name} {sign}{readable_number(score)}"


def brushed_span(selection: dict, first: int, stop: int) -> tuple[int, int] | None:
    """The tokens a box (or lasso) brushed over the heatmap covers, as text positions; None for no brush.

    `selection` is Streamlit's plotly selection ({"box": [{"x": [x0, x1], …}], "lasso": […]}); x counts the
    window's columns from 0, so the window [first, stop) it was drawn with maps it back to the text. Tokens
    whose column centre lies inside are taken; a brush narrower than a column takes the one it is in."""
    shapes = list(selection.get("box") or []) + list(selection.get("lasso") or [])
    xs = [float(x) for shape in shapes for x in shape.get("x", [])]
    if not xs:
        return None
    x0, x1 = min(xs), max(xs)
    a, b = int(np.ceil(x0)), int(np.floor(x1))
    if a > b:
        a = b = int(np.floor((x0 + x1) / 2 + 0.5))
    last = stop - first - 1
    a, b = int(np.clip(a, 0, last)), int(np.clip(b, 0, last))
    return first + a, first + b


def heatmap_figure(values: np.ndarray, tokens: list[str], order: np.ndarray | None = None, start: int = 0,
                   window: int = WINDOW, name: str = "h", scores: np.ndarray | None = None, score_name: str = "",
                   feature: np.ndarray | None = None, highlight: tuple[int, int] | None = None,
                   colour: ColourRange | None = None) -> go.Figure:
    """Units (rows, in `order`, first on top) × tokens (columns), for the window [start, start+window) only.

    The colour scale is `colour` (the activation's range, see inspect.hidden.colour_range), else symmetric
    about 0 to the largest |value|; either way set by the whole text, so it does not change as the window
    moves. `feature` (one 0/1 per token) is drawn as a strip above; `highlight` outlines a span of tokens.
    Dragging over the figure brushes a span (read it back with brushed_span).
    """
    n_tokens, n_units = values.shape
    order = np.arange(n_units) if order is None else np.asarray(order)
    colour = colour or _symmetric(values)
    first, stop = window_bounds(n_tokens, start, window)
    x = [_label(i, tokens[i]) for i in range(first, stop)]
    y = [unit_label(u, s if scores is not None else None, score_name)
         for u, s in zip(order, scores if scores is not None else order)]
    rows = 2 if feature is not None else 1
    fig = make_subplots(rows=rows, cols=1, shared_xaxes=True, vertical_spacing=0.01,
                        row_heights=[0.05, 0.95] if rows == 2 else None)
    fig.add_trace(go.Heatmap(z=values[first:stop][:, order].T, x=x, y=y,  # (H, w)
                             colorscale=DIVERGING if colour.diverging else SEQUENTIAL,
                             zmid=0 if colour.diverging else None, zmin=colour.low, zmax=colour.high,
                             colorbar=dict(title=name, len=0.8),
                             hovertemplate=f"token %{{x}}<br>%{{y}}<br>{name} = %{{z:.3f}}<extra></extra>"),
                  row=rows, col=1)
    if feature is not None:
        fig.add_trace(go.Heatmap(z=[np.asarray(feature)[first:stop]], x=x, y=["feature"], showscale=False,
                                 colorscale=[[0, "#f2f2f2"], [1, "#2ca02c"]], zmin=0, zmax=1,
                                 hovertemplate="token %{x}<br>feature = %{z}<extra></extra>"), row=1, col=1)
    if highlight is not None and highlight[1] >= first and highlight[0] < stop:
        a, b = max(highlight[0], first) - first, min(highlight[1], stop - 1) - first
        fig.add_vrect(x0=a - 0.5, x1=b + 0.5, line=dict(color="black", width=2), fillcolor="rgba(0,0,0,0)",
                      row=rows, col=1)
    shown = (f"tokens {first}–{stop - 1} of {n_tokens} (slide the window for the rest)"
             if stop - first < n_tokens else f"all {n_tokens} tokens")
    fig.update_layout(title=f"{name}: units × {shown}",
                      height=int(np.clip(7 * n_units + 220, 380, 1100)), margin=dict(MARGIN, t=50),
                      xaxis_title=None, dragmode="select")
    fig.update_yaxes(autorange="reversed", row=rows, col=1)
    fig.update_xaxes(tickangle=-90, tickmode="linear", tick0=0, dtick=1, tickfont=dict(size=10), row=rows, col=1)
    return fig


def _symmetric(values: np.ndarray) -> ColourRange:
    vmax = float(np.abs(values).max(initial=0.0)) or 1.0
    return ColourRange(-vmax, vmax, True, f"the colours end at ±{vmax:.3g}, the largest |value|")


def diverging_colour(value: float, vmax: float) -> tuple[str, bool]:
    """(CSS colour, dark?) of a value on a white-centred blue–red scale reaching full colour at ±vmax."""
    t = float(np.clip(value / vmax, -1, 1)) if vmax > 0 else 0.0
    end = POSITIVE if t > 0 else NEGATIVE
    return _towards(end, abs(t))


def _towards(end: tuple[int, int, int], t: float) -> tuple[str, bool]:
    r, g, b = (round(255 + t * (c - 255)) for c in end)
    return f"rgb({r},{g},{b})", t > 0.6


def range_colour(value: float, colour: ColourRange) -> tuple[str, bool]:
    """(CSS colour, dark?) of a value on a ColourRange: diverging about 0, or white at `low` rising to red."""
    if colour.diverging:
        return diverging_colour(value, max(abs(colour.low), abs(colour.high)))
    span = colour.high - colour.low
    return _towards(POSITIVE, float(np.clip((value - colour.low) / span, 0, 1)) if span > 0 else 0.0)


def coloured_text_html(tokens: list[str], values: np.ndarray, name: str = "h", vmax: float | None = None,
                       sep: str = " ", colour: ColourRange | None = None) -> str:
    """The text, each token's background coloured by one unit's value (Karpathy et al. 2015); the value
    shows on hover (title=). The scale is `colour`, else symmetric about 0 to ±vmax (the largest |value|), or from
    0 to vmax where no value is negative (a norm: half a scale of negative colours would stand for nothing).
    Every token is escaped, so text from a user cannot become markup."""
    values = np.asarray(values, dtype=float)
    if colour is None:
        vmax = float(np.abs(values).max(initial=0.0)) if vmax is None else vmax
        never_negative = values.min(initial=0.0) >= 0
        colour = ColourRange(0.0, vmax, False, "") if never_negative else ColourRange(-vmax, vmax, True, "")
    spans = []
    for i, (token, value) in enumerate(zip(tokens, values)):
        background, dark = range_colour(value, colour)
        shown = "↵" if token == EOS else token
        title = html.escape(f"{i} {shown}: {name} = {value:+.3f}", quote=True)
        before = html.escape(sep) if i and tokens[i - 1] != EOS else ""  # a new line starts flush left
        spans.append(f'{before}<span title="{title}" style="background:{background};{"color:white;" if dark else ""}'
                     f'border-radius:2px">{html.escape(shown)}</span>' + ("<br>" if token == EOS else ""))
    keys = ([colour.low, 0.0, colour.high] if colour.diverging else [colour.low, colour.high])
    swatches = " ".join(_swatch(v, colour) for v in keys)
    legend = (f'<div style="font-size:0.8em;margin-bottom:4px">{html.escape(name)}: {swatches} '
              f'(hover a token for its value)</div>')
    return (f'{legend}<div style="font-family:monospace;line-height:1.8;white-space:pre-wrap;max-height:420px;'
            f'overflow-y:auto">{"".join(spans)}</div>')


def _swatch(value: float, colour: ColourRange) -> str:
    background, dark = range_colour(value, colour)
    style = f"background:{background};" + ("color:white" if dark else "border:1px solid #ddd")
    return f'<span style="{style}">&nbsp;{value:.3g}&nbsp;</span>'

"""Hidden-state figures: a windowed units × tokens heatmap, and text coloured token by token by one unit."""
from __future__ import annotations

import html

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..corpus.tokenize import EOS
from .style import DIVERGING, MARGIN

WINDOW = 300  # tokens drawn at once: 300 × 256 cells stay quick in a browser, 2,000 × 256 would not
NEGATIVE, POSITIVE = (33, 102, 172), (178, 24, 43)  # the ends of RdBu: blue below 0, red above


def window_bounds(n_tokens: int, start: int, window: int = WINDOW) -> tuple[int, int]:
    """[first, stop) of the tokens drawn: `window` of them from `start`, kept inside the text."""
    window = max(1, min(window, n_tokens))
    first = int(np.clip(start, 0, n_tokens - window))
    return first, first + window


def _label(i: int, token: str) -> str:
    # plotly reads a little HTML in labels, so the token is escaped (it shows entities as characters)
    return f"{i} {html.escape('↵' if token == EOS else token)}"


def heatmap_figure(values: np.ndarray, tokens: list[str], order: np.ndarray | None = None, start: int = 0,
                   window: int = WINDOW, name: str = "h", scores: np.ndarray | None = None, score_name: str = "",
                   feature: np.ndarray | None = None, highlight: tuple[int, int] | None = None) -> go.Figure:
    """Units (rows, in `order`, first on top) × tokens (columns), for the window [start, start+window) only.

    The colour scale is symmetric about 0 and set by the whole text, so it does not change as the window
    moves. `feature` (one 0/1 per token) is drawn as a strip above; `highlight` outlines a span of tokens.
    """
    n_tokens, n_units = values.shape
    order = np.arange(n_units) if order is None else np.asarray(order)
    first, stop = window_bounds(n_tokens, start, window)
    x = [_label(i, tokens[i]) for i in range(first, stop)]
    sign = "" if score_name == "var" else "+"
    y = [f"u{u}" + (f" {score_name} {s:{sign}.2f}" if scores is not None else "") for u, s in
         zip(order, scores if scores is not None else order)]
    zmax = float(np.abs(values).max()) or 1.0
    rows = 2 if feature is not None else 1
    fig = make_subplots(rows=rows, cols=1, shared_xaxes=True, vertical_spacing=0.01,
                        row_heights=[0.05, 0.95] if rows == 2 else None)
    fig.add_trace(go.Heatmap(z=values[first:stop][:, order].T, x=x, y=y, colorscale=DIVERGING, zmid=0,  # (H, w)
                             zmin=-zmax, zmax=zmax, colorbar=dict(title=name, len=0.8),
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
    shown = (f"tokens {first}–{stop - 1} of {n_tokens}: move the window slider to see the rest"
             if stop - first < n_tokens else f"all {n_tokens} tokens")
    fig.update_layout(title=f"{name}, units × tokens ({shown})", height=int(np.clip(3 * n_units + 200, 340, 900)),
                      margin=dict(MARGIN, t=50), xaxis_title=None)
    fig.update_yaxes(autorange="reversed", row=rows, col=1)
    fig.update_xaxes(tickangle=-60, row=rows, col=1)
    return fig


def diverging_colour(value: float, vmax: float) -> tuple[str, bool]:
    """(CSS colour, dark?) of a value on a white-centred blue–red scale reaching full colour at ±vmax."""
    t = float(np.clip(value / vmax, -1, 1)) if vmax > 0 else 0.0
    end = POSITIVE if t > 0 else NEGATIVE
    r, g, b = (round(255 + abs(t) * (c - 255)) for c in end)
    return f"rgb({r},{g},{b})", abs(t) > 0.6


def coloured_text_html(tokens: list[str], values: np.ndarray, name: str = "h", vmax: float | None = None,
                       sep: str = " ") -> str:
    """The text, each token's background coloured by one unit's value (Karpathy et al. 2015); the value
    shows on hover (title=). Every token is escaped, so text from a user cannot become markup."""
    values = np.asarray(values, dtype=float)
    vmax = float(np.abs(values).max()) if vmax is None else vmax
    spans = []
    for i, (token, value) in enumerate(zip(tokens, values)):
        colour, dark = diverging_colour(value, vmax)
        shown = "↵" if token == EOS else token
        title = html.escape(f"{i} {shown}: {name} = {value:+.3f}", quote=True)
        before = html.escape(sep) if i and tokens[i - 1] != EOS else ""  # a new line starts flush left
        spans.append(f'{before}<span title="{title}" style="background:{colour};{"color:white;" if dark else ""}'
                     f'border-radius:2px">{html.escape(shown)}</span>' + ("<br>" if token == EOS else ""))
    low, _ = diverging_colour(-vmax, vmax)
    high, _ = diverging_colour(vmax, vmax)
    legend = (f'<div style="font-size:0.8em;margin-bottom:4px">{html.escape(name)}: '
              f'<span style="background:{low};color:white">&nbsp;{-vmax:+.2f}&nbsp;</span> '
              f'<span style="background:white;border:1px solid #ddd">&nbsp;0&nbsp;</span> '
              f'<span style="background:{high};color:white">&nbsp;{vmax:+.2f}&nbsp;</span> (hover a token for its value)</div>')
    return (f'{legend}<div style="font-family:monospace;line-height:1.8;white-space:pre-wrap;max-height:420px;'
            f'overflow-y:auto">{"".join(spans)}</div>')

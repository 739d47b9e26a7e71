"""Figures of gradient decay through time: mean with a 10–90% band per run, log y axis."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from lmcore.viz.gates import FIGURE_PX, FONT_PX, NODE_PX, token_spacing_px, token_ticks
from lmcore.viz.style import MARGIN, plain, run_colour

ROW_AXIS_PX = 90  # left margin of Fig. 4.1: the row names ("outputs y")


def _rgba(hex_colour: str, alpha: float) -> str:
    r, g, b = (int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def decay_figure(curves: dict, title: str, y_title: str, run_keys: dict | None = None) -> go.Figure:
    """curves: name -> DecayCurve; run_keys: name -> the run's key, for its colour on every page (else its place).
    The band spans the 10th to 90th percentile over target positions."""
    fig = go.Figure()
    positive = [v[v > 0] for c in curves.values() for v in (c.mean, c.low)]
    smallest = min((float(v.min()) for v in positive if v.size), default=1e-30)
    floor = smallest / 10  # a log axis cannot show 0: the band's foot sits just below the lowest value drawn
    for i, (name, c) in enumerate(curves.items()):
        colour = run_colour((run_keys or {}).get(name, i))
        fig.add_trace(go.Scatter(x=np.concatenate([c.k, c.k[::-1]]),
                                 y=np.maximum(np.concatenate([c.high, c.low[::-1]]), floor),
                                 fill="toself", fillcolor=_rgba(colour, 0.15), line=dict(width=0),
                                 hoverinfo="skip", showlegend=False))
        vanished = np.flatnonzero(c.mean <= 0)  # underflowed to exactly 0: a gap, never a flat line of "memory"
        label = plain(name) + (f" (vanished from k = {int(c.k[vanished[0]])})" if vanished.size else "")
        fig.add_trace(go.Scatter(x=c.k, y=np.where(c.mean > 0, c.mean, np.nan), mode="lines", name=label,
                                 line=dict(color=colour, width=2)))
    fig.update_yaxes(type="log", title=y_title, exponentformat="power")
    fig.update_layout(title=title, xaxis_title="k (steps back in time)", height=400, margin=MARGIN,
                      legend=dict(orientation="h", y=-0.2))
    return fig


def fig41_figure(tokens: list[str], hidden: np.ndarray, output: np.ndarray, source: int = 0,
                 title: str = "", start: int = 0, stop: int | None = None,
                 figure_px: float = FIGURE_PX) -> go.Figure:
    """Graves (2012) Fig. 4.1 from real numbers: inputs (bottom), hidden layer (middle) and outputs (top)
    unrolled over time, each node shaded by its sensitivity to the input at `source` (black = high,
    white = none). `hidden` and `output` cover the whole text and are normalised here, each by its own
    maximum over the whole text; the figure draws the window of steps start..stop-1, sized to be read at
    `figure_px` wide (a window of at most `tokens_that_fit(figure_px, ROW_AXIS_PX)` tokens)."""
    stop = len(tokens) if stop is None else stop
    steps = list(range(start, stop))
    rows = {"inputs x": np.eye(len(tokens))[source], "hidden h": hidden, "outputs y": output}
    fig = go.Figure()
    for t in steps:  # edges first, so nodes sit on top: x_t → h_t → y_t and h_t → h_{t+1}
        fig.add_trace(go.Scatter(x=[t, t], y=[0, 2], mode="lines", line=dict(color="#bbb", width=1),
                                 hoverinfo="skip", showlegend=False))
    fig.add_trace(go.Scatter(x=steps, y=[1] * len(steps), mode="lines", line=dict(color="#bbb", width=1),
                             hoverinfo="skip", showlegend=False))
    for y, (name, values) in enumerate(rows.items()):
        v = np.asarray(values, dtype=float)
        v = (v / v.max() if v.max() > 0 else v)[start:stop]
        grey = [f"rgb({int(255 * (1 - s))},{int(255 * (1 - s))},{int(255 * (1 - s))})" for s in v]
        fig.add_trace(go.Scatter(x=steps, y=[y] * len(steps), mode="markers", name=name, showlegend=False,
                                 marker=dict(size=NODE_PX, color=grey, line=dict(color="black", width=1.5)),
                                 customdata=v, hovertemplate=f"{name} t=%{{x}}: %{{customdata:.3f}}<extra></extra>"))
    if source < start:
        title += f"<br><span style='font-size:{FONT_PX}px'>the source step {source} is left of this window</span>"
    tickvals, ticktext = token_ticks(tokens[start:stop], steps, token_spacing_px(len(steps), figure_px, ROW_AXIS_PX))
    fig.update_xaxes(tickvals=tickvals, ticktext=ticktext, tickangle=0, showgrid=False, zeroline=False,
                     range=[start - 0.5, stop - 0.5], fixedrange=True)
    fig.update_yaxes(tickvals=[0, 1, 2], ticktext=list(rows), range=[-0.5, 2.5], showgrid=False, zeroline=False,
                     fixedrange=True)
    fig.update_layout(title=dict(text=title, font=dict(size=15)), height=90 + 3 * 50, font=dict(size=FONT_PX),
                      margin=dict(l=ROW_AXIS_PX, r=20, t=40, b=50), plot_bgcolor="white")
    return fig

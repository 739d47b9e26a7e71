"""Figures of gradient decay through time: mean with a 10–90% band per run, log y axis."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from .style import MARGIN, plain, run_colour


def _rgba(hex_colour: str, alpha: float) -> str:
    r, g, b = (int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def decay_figure(curves: dict, title: str, y_title: str) -> go.Figure:
    """curves: name -> DecayCurve. The band spans the 10th to 90th percentile over target positions."""
    fig = go.Figure()
    for i, (name, c) in enumerate(curves.items()):
        colour = run_colour(i)
        floor = 1e-30  # a log axis cannot show 0 (an exactly vanished gradient)
        fig.add_trace(go.Scatter(x=np.concatenate([c.k, c.k[::-1]]),
                                 y=np.maximum(np.concatenate([c.high, c.low[::-1]]), floor),
                                 fill="toself", fillcolor=_rgba(colour, 0.15), line=dict(width=0),
                                 hoverinfo="skip", showlegend=False))
        fig.add_trace(go.Scatter(x=c.k, y=np.maximum(c.mean, floor), mode="lines", name=plain(name),
                                 line=dict(color=colour, width=2)))
    fig.update_yaxes(type="log", title=y_title, exponentformat="power")
    fig.update_layout(title=title, xaxis_title="k (steps back in time)", height=400, margin=MARGIN,
                      legend=dict(orientation="h", y=-0.2))
    return fig


def fig41_figure(tokens: list[str], hidden: np.ndarray, output: np.ndarray, source: int = 0,
                 title: str = "") -> go.Figure:
    """Graves (2012) Fig. 4.1 from real numbers: inputs (bottom), hidden layer (middle) and outputs (top)
    unrolled over time, each node shaded by its sensitivity to the input at `source` (black = high,
    white = none). `hidden` and `output` are normalised here, each by its own maximum."""
    import html
    T = len(tokens)
    rows = {"inputs": np.eye(T)[source], "hidden": hidden, "outputs": output}
    fig = go.Figure()
    for y in range(3):  # edges first, so nodes sit on top: x_t → h_t → y_t and h_t → h_{t+1}
        if y < 2:
            for t in range(T):
                fig.add_trace(go.Scatter(x=[t, t], y=[y, y + 1], mode="lines", line=dict(color="#bbb", width=1),
                                         hoverinfo="skip", showlegend=False))
    fig.add_trace(go.Scatter(x=list(range(T)), y=[1] * T, mode="lines", line=dict(color="#bbb", width=1),
                             hoverinfo="skip", showlegend=False))
    for y, (name, values) in enumerate(rows.items()):
        v = np.asarray(values, dtype=float)
        v = v / v.max() if v.max() > 0 else v
        grey = [f"rgb({int(255 * (1 - s))},{int(255 * (1 - s))},{int(255 * (1 - s))})" for s in v]
        fig.add_trace(go.Scatter(x=list(range(T)), y=[y] * T, mode="markers", name=name, showlegend=False,
                                 marker=dict(size=20, color=grey, line=dict(color="black", width=1)),
                                 customdata=v, hovertemplate=f"{name} t=%{{x}}: %{{customdata:.3f}}<extra></extra>"))
    fig.update_xaxes(tickvals=list(range(T)), ticktext=[html.escape(t) for t in tokens], tickangle=-45,
                     showgrid=False, zeroline=False)
    fig.update_yaxes(tickvals=[0, 1, 2], ticktext=["inputs x", "hidden h", "outputs y"], range=[-0.5, 2.5],
                     showgrid=False, zeroline=False)
    fig.update_layout(title=title, height=300, margin=dict(l=70, r=10, t=40, b=70), plot_bgcolor="white")
    return fig

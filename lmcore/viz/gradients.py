"""Figures of gradient decay through time: mean with a 10–90% band per run, log y axis."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from .style import MARGIN, run_colour


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
        fig.add_trace(go.Scatter(x=c.k, y=np.maximum(c.mean, floor), mode="lines", name=name,
                                 line=dict(color=colour, width=2)))
    fig.update_yaxes(type="log", title=y_title, exponentformat="power")
    fig.update_layout(title=title, xaxis_title="k (steps back in time)", height=400, margin=MARGIN,
                      legend=dict(orientation="h", y=-0.2))
    return fig

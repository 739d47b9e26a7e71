"""Plotly figure builders: data in, `go.Figure` out. No Streamlit here, so tests call them directly."""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from .style import MARGIN, plain, run_colour



def zipf_figure(counts: np.ndarray, title: str = "Rank–frequency (Zipf) plot") -> go.Figure:
    """Token counts, most frequent first, on log–log axes, with the ideal 1/rank line for reference."""
    counts = np.asarray(counts, dtype=float)
    ranks = np.arange(1, counts.size + 1)
    fig = go.Figure()
    fig.add_trace(go.Scattergl(x=ranks, y=counts, mode="markers", marker=dict(size=4), name="corpus"))
    if counts.size:
        fig.add_trace(go.Scatter(x=ranks, y=counts[0] / ranks, mode="lines", line=dict(dash="dot", color="grey"),
                                 name="f ∝ 1/rank"))
    fig.update_layout(title=title, xaxis_title="rank", yaxis_title="count", height=380,
                      margin=MARGIN)
    fig.update_xaxes(type="log")
    fig.update_yaxes(type="log")
    return fig


def curves_figure(metrics: pd.DataFrame, labels: dict[int, str], x: str = "step", y: str = "valid_ppl",
                  baselines: dict[str, float] | None = None, log_y: bool = True) -> go.Figure:
    """One line per run of `y` against `x` from rows of the metrics table; baselines as dashed lines."""
    fig = go.Figure()
    for i, (run_id, label) in enumerate(labels.items()):
        rows = metrics[metrics["run_id"] == run_id] if len(metrics) else metrics
        fig.add_trace(go.Scatter(x=rows[x] if len(rows) else [], y=rows[y] if len(rows) else [],
                                 mode="lines+markers", name=plain(label), line=dict(color=run_colour(i))))
    xs = metrics[x].dropna() if len(metrics) else pd.Series([0, 1])
    for name, value in (baselines or {}).items():
        if value and np.isfinite(value):  # a trace, not add_hline: shapes on a log axis take log10 units
            fig.add_trace(go.Scatter(x=[xs.min(), xs.max()], y=[value, value], mode="lines", name=plain(name),
                                     line=dict(dash="dash", color="grey")))
    axis_names = {"step": "training step", "epoch": "epoch", "wall_time": "wall time (s)",
                  "valid_ppl": "validation perplexity", "train_loss": "training loss (nats/token)",
                  "lr": "learning rate"}
    fig.update_layout(xaxis_title=axis_names.get(x, x), yaxis_title=axis_names.get(y, y), height=380,
                      legend=dict(orientation="h", y=-0.2), margin=dict(l=40, r=10, t=30, b=40))
    if log_y:
        fig.update_yaxes(type="log")
    return fig

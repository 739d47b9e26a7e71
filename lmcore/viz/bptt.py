"""Figures of the hand-written BPTT walk back through time (bptt_check.Walkthrough in, go.Figure out)."""
from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from lmcore.viz.style import MARGIN, PALETTE, plain


def walk_back_figure(w) -> go.Figure:
    """‖δ(t−k)‖ of the delta rule and of autograd against k, and each step's contribution to ΔU."""
    r = w.record
    ks = list(range(len(r.delta_norms)))
    labels = [f"k={k}<br>{plain(w.tokens[r.t - k])}" for k in ks]  # the input token at step t−k (typed: escaped)
    fig = make_subplots(rows=1, cols=2, subplot_titles=("‖δ(t−k)‖: delta rule and autograd",
                                                        "‖δ(t−k) s(t−k−1)ᵀ‖: this step's term of ΔU"))
    fig.add_trace(go.Bar(x=labels, y=r.delta_norms, name="delta rule (numpy)", marker_color=PALETTE[0]), 1, 1)
    fig.add_trace(go.Scatter(x=labels, y=w.reference_delta_norms, mode="markers", name="autograd (PyTorch)",
                             marker=dict(symbol="x", size=11, color=PALETTE[1])), 1, 1)
    fig.add_trace(go.Bar(x=labels, y=r.dU_norms, name="ΔU term", marker_color=PALETTE[2]), 1, 2)
    fig.update_yaxes(type="log")
    fig.update_layout(height=380, margin=MARGIN, legend=dict(orientation="h", y=-0.25))
    return fig

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
    fig.update_yaxes(type="log", dtick=1)  # decades only: the "2" and "5" between them read as values
    fig.update_layout(height=380, margin=MARGIN, legend=dict(orientation="h", y=-0.25))
    return fig


def node_text_colour(shade: float) -> str:
    """The value's colour on a node shaded from white (0) to red (1): black on the pale ones, white on the dark."""
    return "white" if shade > 0.55 else "#222222"


def unrolled_figure(w) -> go.Figure:
    """The RNN unrolled over the steps one truncated walk back reaches: x(j) → s(j) → y(j), s(j−1) → s(j) through U.
    Forward values on the nodes (the mean of s(j); y(j)'s probability of the next token), the backward delta
    ‖δ(j)‖ of the error of y(t) under each s(j), shaded by it: the error fading as it walks back."""
    r = w.record
    steps = list(range(r.t - len(r.delta_norms) + 1, r.t + 1))            # oldest first
    delta = {r.t - k: n for k, n in enumerate(r.delta_norms)}
    top = max(delta.values()) or 1.0
    fig = go.Figure()
    for j in steps:
        fig.add_annotation(x=j, y=0.8, ax=j, ay=0.18, xref="x", yref="y", axref="x", ayref="y", showarrow=True,
                           arrowhead=2, arrowcolor="#999", text="")         # V: x → s
        fig.add_annotation(x=j, y=1.98, ax=j, ay=1.4, xref="x", yref="y", axref="x", ayref="y", showarrow=True,
                           arrowhead=2, arrowcolor="#999", text="")         # W: s → y
        if j > steps[0]:
            fig.add_annotation(x=j - 0.16, y=1.1, ax=j - 0.84, ay=1.1, xref="x", yref="y", axref="x", ayref="y",
                               showarrow=True, arrowhead=2, arrowcolor="#999", text="")  # U: s(j−1) → s(j)
    shade = [min(1.0, delta[j] / top) ** 0.35 for j in steps]  # a root keeps the small deltas visible
    fig.add_trace(go.Scatter(x=steps, y=[0] * len(steps), mode="text", text=[plain(w.tokens[j]) for j in steps],
                             textfont=dict(size=14), hoverinfo="skip", showlegend=False))
    fig.add_trace(go.Scatter(
        x=steps, y=[1.1] * len(steps), mode="markers+text", showlegend=False,
        marker=dict(size=46, color=shade, colorscale=[[0, "#ffffff"], [1, "#d62728"]], cmin=0, cmax=1,
                    line=dict(color="#333", width=1.5)),
        text=[f"{w.states[j].mean():.2f}" for j in steps],
        textfont=dict(size=12, color=[node_text_colour(s) for s in shade]),  # legible on pale and dark red alike
        customdata=[[delta[j]] for j in steps],
        hovertemplate="s(%{x}): mean %{text}<br>‖δ(%{x})‖ = %{customdata[0]:.2e}<extra></extra>"))
    fig.add_trace(go.Scatter(x=[j + 0.06 for j in steps], y=[1.62] * len(steps), mode="text", showlegend=False,
                             hoverinfo="skip", text=[f"‖δ‖ {delta[j]:.1e}" for j in steps], textposition="middle right",
                             textfont=dict(size=11, color="#d62728")))
    fig.add_trace(go.Scatter(
        x=steps, y=[2.2] * len(steps), mode="markers+text", showlegend=False,
        marker=dict(size=40, symbol="square", color=["#fde0dd" if j == r.t else "#f4f4f4" for j in steps],
                    line=dict(color="#333", width=1)),
        text=[f"{w.target_probs[j]:.2f}" for j in steps], textfont=dict(size=12),
        hovertemplate="y(%{x}): P(next token) = %{text}<extra></extra>"))
    fig.update_xaxes(tickvals=steps, ticktext=[f"t−{r.t - j}" if j < r.t else "t" for j in steps], range=[steps[0] - 0.6,
                     steps[-1] + 0.6], showgrid=False, zeroline=False)
    fig.update_yaxes(tickvals=[0, 1.1, 2.2], ticktext=["x (input word)", "s(j): mean, ‖δ(j)‖", "y: P(next)"],
                     range=[-0.4, 2.6], showgrid=False, zeroline=False)
    fig.update_layout(height=330, margin=dict(MARGIN, l=150, t=40), font=dict(size=13),
                      title=f"Unrolled over τ = {len(steps)} steps: forward values, and the error of y(t) walking back")
    return fig

"""Figures for Markov against memory: agreement accuracy by distance, perplexity against context length."""
from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from .style import MARGIN, plain, run_colour


def agreement_figure(table: pd.DataFrame) -> go.Figure:
    """Accuracy (P(correct verb) > P(wrong verb)) against words between subject and verb, one line per model."""
    fig = go.Figure()
    for i, (name, rows) in enumerate(table.groupby("model", sort=False)):
        rows = rows.dropna(subset=["distance"]).sort_values("distance")
        fig.add_trace(go.Scatter(x=rows["distance"], y=rows["accuracy"], mode="lines+markers", name=plain(name),
                                 line=dict(color=run_colour(i), dash="dash" if "gram" in name else "solid"),
                                 customdata=rows["items"], hovertemplate="%{y:.2f} over %{customdata} sentences"))
    fig.add_hline(y=0.5, line=dict(color="grey", dash="dot"), annotation_text="chance")
    fig.update_layout(xaxis_title="words between subject and verb", yaxis_title="agreement accuracy",
                      yaxis_range=[0, 1.02], height=380, margin=MARGIN, legend=dict(orientation="h", y=-0.25))
    return fig


def context_figure(curves: dict[str, pd.DataFrame], baseline: float | None = None, baseline_name: str = "n-gram") -> go.Figure:
    """Perplexity when the model sees only the last k tokens; "all" drawn as a dotted level per run."""
    fig = go.Figure()
    for i, (name, df) in enumerate(curves.items()):
        limited = df[df["context"] != "all"]
        fig.add_trace(go.Scatter(x=limited["tokens"], y=limited["ppl"], mode="lines+markers", name=plain(name),
                                 line=dict(color=run_colour(i))))
        full = df[df["context"] == "all"]["ppl"]
        if len(full):
            fig.add_trace(go.Scatter(x=[limited["tokens"].min(), limited["tokens"].max()], y=[full.iloc[0]] * 2,
                                     mode="lines", name=plain(f"{name}: all context"), line=dict(color=run_colour(i), dash="dot")))
    if baseline is not None:
        xs = pd.concat([df[df["context"] != "all"]["tokens"] for df in curves.values()]) if curves else pd.Series([1, 200])
        fig.add_trace(go.Scatter(x=[xs.min(), xs.max()], y=[baseline] * 2, mode="lines", name=baseline_name,
                                 line=dict(color="grey", dash="dash")))
    fig.update_xaxes(type="log", title="tokens of context the model may see")
    fig.update_layout(yaxis_title="validation perplexity", height=380, margin=MARGIN, legend=dict(orientation="h", y=-0.25))
    return fig

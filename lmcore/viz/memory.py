"""Figures for Markov against memory: agreement accuracy by distance, perplexity against context length."""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from lmcore.viz.style import MARGIN, fit_y_axis, plain, run_colour


def _colour(name: str, i: int, run_keys: dict[str, str] | None) -> str:
    """The run's own colour (the same on every page) when its key is known, else one by position."""
    return run_colour(run_keys[name]) if run_keys and name in run_keys else run_colour(f"#{i}")


def agreement_figure(table: pd.DataFrame, run_keys: dict[str, str] | None = None) -> go.Figure:
    """Accuracy (P(correct verb) > P(wrong verb)) against words between subject and verb, one line per model.
    run_keys: model name -> run key ("run:12", "demo:agreement-lstm"), for each run's fixed colour."""
    fig = go.Figure()
    for i, (name, rows) in enumerate(table.groupby("model", sort=False)):
        rows = rows.dropna(subset=["distance"]).sort_values("distance")
        is_ngram = not (run_keys and name in run_keys) and "gram" in name
        fig.add_trace(go.Scatter(x=rows["distance"], y=rows["accuracy"], mode="lines+markers", name=plain(name),
                                 line=dict(color="grey" if is_ngram else _colour(name, i, run_keys),
                                           dash="dash" if is_ngram else "solid"),
                                 customdata=rows["items"], hovertemplate="%{y:.2f} over %{customdata} sentences"))
    fig.add_hline(y=0.5, line=dict(color="grey", dash="dot"), annotation_text="chance")
    fig.update_layout(xaxis_title="words between subject and verb", yaxis_title="agreement accuracy",
                      yaxis_range=[0, 1.02], height=380, margin=MARGIN, legend=dict(orientation="h", y=-0.25))
    return fig


def context_figure(curves: dict[str, pd.DataFrame], baseline: float | None = None, baseline_name: str = "n-gram",
                   log_y: bool = False, run_keys: dict[str, str] | None = None) -> go.Figure:
    """Perplexity when the model sees only the last k tokens; "all" drawn as a dotted level per run.

    The y range ignores outliers (one model's 95,651 at k = 1 does not flatten the others and the n-gram
    line, which always stays in view); the figure says how many points it leaves out."""
    fig = go.Figure()
    values = []
    for i, (name, df) in enumerate(curves.items()):
        colour = _colour(name, i, run_keys)
        limited = df[df["context"] != "all"]
        ppl = limited["ppl"].to_numpy(dtype=float)
        values.append(ppl)
        fig.add_trace(go.Scatter(x=limited["tokens"], y=np.where(np.isfinite(ppl), ppl, np.nan), mode="lines+markers",
                                 name=plain(name), line=dict(color=colour), legendgroup=str(i),
                                 hovertemplate="k = %{x}: perplexity %{y:,.4g}<extra></extra>"))
        full = df[df["context"] == "all"]["ppl"]
        if len(full):
            values.append(full.to_numpy(dtype=float))
            fig.add_trace(go.Scatter(x=[limited["tokens"].min(), limited["tokens"].max()], y=[full.iloc[0]] * 2,
                                     mode="lines", name=plain(f"{name}: all context"), legendgroup=str(i),
                                     line=dict(color=colour, dash="dot"),
                                     hovertemplate="all context: perplexity %{y:,.4g}<extra></extra>"))
    if baseline is not None:
        xs = pd.concat([df[df["context"] != "all"]["tokens"] for df in curves.values()]) if curves else pd.Series([1, 200])
        fig.add_trace(go.Scatter(x=[xs.min(), xs.max()], y=[baseline] * 2, mode="lines", name=plain(baseline_name),
                                 line=dict(color="grey", dash="dash"),
                                 hovertemplate="%{y:,.4g}<extra>" + plain(baseline_name) + "</extra>"))
    ks = sorted({int(k) for df in curves.values() for k in df.loc[df["context"] != "all", "tokens"]})
    fig.update_xaxes(type="log", title="tokens of context the model may see", tickvals=ks or None,
                     ticktext=[str(k) for k in ks] or None)  # the k measured, not Plotly's 2 3 4 … 9 per decade
    fig.update_layout(yaxis_title="validation perplexity", height=380, margin=dict(MARGIN, t=30),
                      legend=dict(orientation="h", y=-0.25))
    fit_y_axis(fig, np.concatenate(values) if values else [], log_y, keep=[baseline] if baseline is not None else ())
    return fig

"""Figures of a sweep in the style of Greff et al. (2016): perplexity per model across seeds (box with every
run as a point), the change from a reference model with its spread, and parameters against perplexity.
Inputs are the tables of lmcore.runs.reports (sweep_table, change_from_reference)."""
from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from lmcore.viz.style import MARGIN, plain, run_colour


def _done(table: pd.DataFrame, metric: str) -> pd.DataFrame:
    return table[table["status"] == "done"].dropna(subset=[metric])


def sweep_box_figure(table: pd.DataFrame, metric: str = "test ppl") -> go.Figure:
    """One box per model (one colour per setting), every seed's run drawn as a point beside it."""
    done = _done(table, metric)
    fig = go.Figure()
    for i, setting in enumerate(done["setting"].unique()):
        rows = done[done["setting"] == setting]
        fig.add_trace(go.Box(x=[plain(m) for m in rows["model"]], y=rows[metric], name=plain(setting),
                             boxpoints="all", jitter=0.4, pointpos=0, marker=dict(color=run_colour(i), size=7),
                             text=[f"run {r} · seed {s}" for r, s in zip(rows["run"], rows["seed"])],
                             hovertemplate="%{x}<br>%{text}<br>" + metric + " %{y:.2f}<extra></extra>"))
    fig.update_layout(title=f"{metric} per model across seeds", yaxis_title=metric, boxmode="group",
                      height=420, margin=MARGIN, showlegend=done["setting"].nunique() > 1)
    return fig


def change_figure(change: pd.DataFrame, metric: str = "test ppl", reference: str = "LSTM") -> go.Figure:
    """Mean change from the reference per model, error bars ± one standard deviation over seeds."""
    col, err = f"mean Δ {metric}", f"std Δ {metric}"
    rows = change.dropna(subset=[col])
    rows = rows[rows["model"] != reference]
    fig = go.Figure()
    for i, setting in enumerate(rows["setting"].unique()):
        r = rows[rows["setting"] == setting]
        fig.add_trace(go.Scatter(x=[plain(m) for m in r["model"]], y=r[col], mode="markers", name=plain(setting),
                                 marker=dict(size=10, color=run_colour(i)),
                                 error_y=dict(type="data", array=r[err].fillna(0).tolist(), visible=True)))
    fig.add_hline(y=0, line=dict(color="grey", dash="dash"))
    fig.update_layout(title=f"change in {metric} from {plain(reference)} (same seed), mean ± std",
                      yaxis_title=f"Δ {metric} (positive: worse)", height=380, margin=MARGIN,
                      showlegend=rows["setting"].nunique() > 1)
    return fig


SYMBOLS = ("circle", "square", "diamond", "triangle-up", "cross", "x", "star", "hexagon")


def params_figure(table: pd.DataFrame, metric: str = "test ppl") -> go.Figure:
    """Parameter count against perplexity, one point per run in the run's own colour (as on every page),
    one marker shape per model."""
    done = _done(table, metric).dropna(subset=["parameters"])
    fig = go.Figure()
    for i, model in enumerate(done["model"].unique()):
        rows = done[done["model"] == model]
        fig.add_trace(go.Scatter(x=rows["parameters"], y=rows[metric], mode="markers", name=plain(model),
                                 marker=dict(size=11, symbol=SYMBOLS[i % len(SYMBOLS)],
                                             color=[run_colour(int(r)) for r in rows["run"]],
                                             line=dict(width=1, color="#333")),
                                 text=[f"run {r} · {plain(s)} · seed {sd}"
                                       for r, s, sd in zip(rows["run"], rows["setting"], rows["seed"])],
                                 hovertemplate="%{x:,} parameters<br>%{text}<br>" + metric
                                               + " %{y:.2f}<extra>" + plain(model) + "</extra>"))
    fig.update_layout(title=f"parameters against {metric}", xaxis_title="parameters", yaxis_title=metric,
                      legend_title_text="shape: model<br>colour: run", height=380, margin=MARGIN)
    return fig

"""The Lecture page's own figures (the others come from the pages each step links to): the chain rule word by word,
the roses scored, and models side by side by size and perplexity."""
from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from lmcore.viz.style import MARGIN, PALETTE, plain, run_colour

NGRAM_GREY = "#888888"


def _colour(name: str, i: int, run_keys: dict[str, str] | None) -> str:
    """A run's own colour (the same on every page) when its key is known; the n-gram grey."""
    if run_keys and name in run_keys:
        return run_colour(run_keys[name])
    return NGRAM_GREY if "gram" in name else PALETTE[i % len(PALETTE)]


def word_probability_figure(probs: pd.DataFrame, model: str, colour: str = PALETTE[0]) -> go.Figure:
    """One bar per word: P(w_i | w_1 … w_{i−1}) as the model gives it, on a log axis (the product is the sentence's)."""
    labels = [f"{plain(w)}<br><sub>{i}</sub>" for i, w in zip(probs["step"], probs["word"])]
    # two significant digits: 0.012 and 0.0085 are not both "0.01"
    fig = go.Figure(go.Bar(x=labels, y=probs["p"], marker_color=colour, text=[f"{p:.2g}" for p in probs["p"]],
                           textposition="outside", hovertemplate="P = %{y:.4g}<extra></extra>"))
    fig.update_yaxes(type="log", title="P(w_i | w_1 … w_i−1)", range=[probability_floor(probs["p"]), 0.25],
                     dtick=1)  # decades only: a log axis's "2" and "5" between them read as values
    fig.update_layout(title=plain(f"{model}: each word's probability given the words before it"), height=360,
                      margin=dict(MARGIN, t=50), xaxis_title="word i of the sentence", font=dict(size=13))
    return fig


def probability_floor(p: pd.Series) -> float:
    """The log axis's lower end: a decade below 10⁻³, or lower, so the least expected word's bar still shows."""
    smallest = float(p[p > 0].min()) if (p > 0).any() else 1.0
    return min(-3.3, math.floor(math.log10(smallest)) - 0.3)


def margins_figure(margins: pd.DataFrame, run_keys: dict[str, str] | None = None) -> go.Figure:
    """log P(are) − log P(is) at the verb, by words between subject and verb, one colour per model: the lecture's
    sentences on the left ("roses": right above 0), the same with "rose" on the right (right below 0)."""
    fig = make_subplots(rows=1, cols=2, shared_yaxes=True, horizontal_spacing=0.04,
                        subplot_titles=("“the roses …”: right when above 0", "“the rose …”: right when below 0"))
    for col, subject in enumerate(("roses", "rose"), start=1):
        for i, (name, rows) in enumerate(margins[margins["subject"] == subject].groupby("model", sort=False)):
            fig.add_trace(go.Bar(x=[f"{d} words" for d in rows["distance"]], y=rows["margin"], name=plain(name),
                                 marker_color=_colour(name, i, run_keys), legendgroup=name, showlegend=col == 1,
                                 hovertemplate="%{y:+.2f}<extra>" + plain(name) + "</extra>"), row=1, col=col)
    fig.add_hline(y=0, line=dict(color="black", width=1))
    fig.update_yaxes(title="log P(are) − log P(is)", row=1, col=1)
    fig.update_xaxes(title="words between subject and verb")
    fig.update_layout(barmode="group", height=380, margin=dict(MARGIN, t=40), font=dict(size=13),
                      legend=dict(orientation="h", y=-0.3))
    return fig


def size_figure(table: pd.DataFrame, run_keys: dict[str, str] | None = None) -> go.Figure:
    """Two panels side by side: each model's parameters and its validation perplexity (lower is better)."""
    rows = table
    fig = make_subplots(rows=1, cols=2, subplot_titles=("parameters", "validation perplexity (lower is better)"),
                        horizontal_spacing=0.12)
    colours = [_colour(m, i, run_keys) for i, m in enumerate(rows["model"])]
    names = [plain(m) for m in rows["model"]]
    counted = rows["parameters"].notna()
    fig.add_trace(go.Bar(x=[n for n, c in zip(names, counted) if c], y=rows.loc[counted, "parameters"],
                         marker_color=[c for c, k in zip(colours, counted) if k], showlegend=False,
                         texttemplate="%{y:,.0f}", textposition="outside",
                         hovertemplate="%{y:,} parameters<extra></extra>"), row=1, col=1)
    fig.add_trace(go.Bar(x=names, y=rows["valid ppl"], marker_color=colours, showlegend=False,
                         texttemplate="%{y:.2f}", textposition="outside",
                         hovertemplate="perplexity %{y:.2f}<extra></extra>"), row=1, col=2)
    fig.update_yaxes(rangemode="tozero")
    fig.update_yaxes(range=[0, 1.15 * float(rows["parameters"].max(skipna=True) or 1)], row=1, col=1)
    fig.update_yaxes(range=[0, 1.15 * float(rows["valid ppl"].max())], row=1, col=2)
    fig.update_layout(height=360, margin=dict(MARGIN, t=50), font=dict(size=13))
    return fig

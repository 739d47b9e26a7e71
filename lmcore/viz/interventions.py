"""Figures of an intervention: agreement by distance before and after (several random draws as a mean and a band),
and a text coloured by how much more (red) or less (blue) surprising each token became. Data in, figure or HTML out."""
from __future__ import annotations

import html
from typing import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from lmcore.corpus.tokenize import EOS
from lmcore.viz.hidden import diverging_colour
from lmcore.viz.memory import DISTANCE_HOVER, label_distances, pool_sparse_tail
from lmcore.viz.style import MARGIN, PALETTE, faded, plain

BEFORE, AFTER = PALETTE[0], PALETTE[1]  # blue: the model as trained; red: with the intervention (as decay_figure
# colours its first and second curve)
MIN_SCALE_BITS = 1.0  # the colours of the surprisal change end at ±max(this, the largest |change|): 0.1 bit stays pale


def _by_distance(table: pd.DataFrame) -> pd.DataFrame:
    return pool_sparse_tail(table).dropna(subset=["distance"])  # the far, sparse distances as one point


def agreement_change_figure(before: pd.DataFrame, afters: Sequence[pd.DataFrame], after_name: str = "after",
                            far: int | None = 4) -> go.Figure:
    """Agreement accuracy against words between subject and verb: the model as trained, and with the intervention
    (one table per draw: their mean, and a band from the lowest to the highest draw). far: where the "far"
    distances start, shaded."""
    fig = go.Figure()
    rows = _by_distance(before)
    fig.add_trace(go.Scatter(x=rows["distance"], y=rows["accuracy"], mode="lines+markers", name="before",
                             line=dict(color=BEFORE), customdata=rows[["label", "items"]],
                             hovertemplate="before, " + DISTANCE_HOVER + "<extra></extra>"))
    if afters:
        wide = pd.concat([_by_distance(t).set_index("distance")["accuracy"].rename(i) for i, t in enumerate(afters)],
                         axis=1).sort_index()
        x, mean = wide.index.to_numpy(), wide.mean(axis=1).to_numpy()
        if len(afters) > 1:
            fig.add_trace(go.Scatter(x=np.concatenate([x, x[::-1]]),
                                     y=np.concatenate([wide.max(axis=1), wide.min(axis=1)[::-1]]),
                                     fill="toself", fillcolor=faded(AFTER, 0.18), line=dict(width=0),
                                     hoverinfo="skip", name=f"{len(afters)} draws: lowest to highest"))
        shown = _by_distance(afters[0]).set_index("distance")[["label", "items"]].reindex(x)
        fig.add_trace(go.Scatter(x=x, y=mean, mode="lines+markers", line=dict(color=AFTER),
                                 name=plain(after_name) + (f" (mean of {len(afters)} draws)" if len(afters) > 1 else ""),
                                 customdata=shown.to_numpy(),
                                 hovertemplate="after, " + DISTANCE_HOVER + "<extra></extra>"))
    fig.add_hline(y=0.5, line=dict(color="grey", dash="dot"), annotation_text="chance")
    shaded = far is not None and len(rows) and rows["distance"].max() >= far
    if shaded:  # said in the axis title: a label inside the plot sits on the lines
        fig.add_vrect(x0=far - 0.5, x1=float(rows["distance"].max()) + 0.5, fillcolor="#f2f2f2", line_width=0,
                      layer="below")
    label_distances(fig, rows, f" (shaded: far, {far}+)" if shaded else "")
    fig.update_layout(yaxis_title="agreement accuracy", yaxis_range=[0, 1.05], height=380, margin=MARGIN,
                      legend=dict(orientation="h", y=-0.25), title="Agreement by distance")
    return fig


def surprisal_change_html(tokens: Sequence[str], before: np.ndarray, after: np.ndarray, first_step: int = 1) -> str:
    """The text, each token's background coloured by the change of its surprisal (after − before, bits): red where
    the intervention made the token harder to predict, blue easier, white unchanged. Hover: step, both values and
    the change. tokens[i] is at step first_step + i. Every token is escaped."""
    before, after = np.asarray(before, dtype=float), np.asarray(after, dtype=float)
    change = after - before
    vmax = max(MIN_SCALE_BITS, float(np.abs(change).max(initial=0.0)))
    spans = []
    for i, (token, b, a, d) in enumerate(zip(tokens, before, after, change)):
        background, dark = diverging_colour(d, vmax)
        shown = "↵" if token == EOS else str(token)
        title = html.escape(f"step {first_step + i} “{shown}”: {b:.2f} → {a:.2f} bits ({d:+.2f})", quote=True)
        spans.append(f'<span title="{title}" style="background:{background};{"color:white;" if dark else ""}'
                     f'border-radius:2px;padding:0 2px">{html.escape(shown)}</span>')
    swatches = " ".join(_swatch(v, vmax) for v in (-vmax, 0.0, vmax))
    total = (f"{before.sum():.1f} bits before, {after.sum():.1f} after ({after.sum() - before.sum():+.1f})"
             if len(before) else "no token to predict")
    legend = (f'<div style="font-size:0.85em;margin-bottom:4px">surprisal after − before, bits: {swatches} '
              f"(red: harder to predict; hover a token for its values) · the whole text: {total}</div>")
    return (f'{legend}<div style="font-family:monospace;font-size:1.05em;line-height:2;white-space:pre-wrap;'
            f'max-height:320px;overflow-y:auto">{" ".join(spans)}</div>')


def _swatch(value: float, vmax: float) -> str:
    background, dark = diverging_colour(value, vmax)
    style = f"background:{background};" + ("color:white" if dark else "border:1px solid #ddd")
    return f'<span style="{style}">&nbsp;{value:+.2g}&nbsp;</span>' if value else f'<span style="{style}">&nbsp;0&nbsp;</span>'

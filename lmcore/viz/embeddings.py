"""Word representations: a 2-D PCA map of one row per word, the most frequent words labelled."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import plotly.graph_objects as go

from .next_word import esc, shown
from .style import MARGIN, PALETTE


def pca_figure(coords: np.ndarray, words: Sequence[str], labelled: Sequence[int], explained: Sequence[float],
               title: str | None = None) -> go.Figure:
    """coords (V, 2); words (V,); `labelled` ids drawn with their word, every other row as a faint dot.

    Words are escaped: Plotly reads tags such as <br> and <a> in text and hover labels.
    """
    coords = np.asarray(coords, dtype=float)
    names = [esc(shown(w)) for w in words]
    labelled = np.asarray(labelled, dtype=np.int64)
    rest = np.setdiff1d(np.arange(coords.shape[0]), labelled)
    fig = go.Figure()
    if rest.size:
        fig.add_trace(go.Scattergl(x=coords[rest, 0], y=coords[rest, 1], mode="markers", name="other words",
                                   marker=dict(size=3, color="lightgrey"), text=[names[i] for i in rest],
                                   hovertemplate="%{text}<extra></extra>"))
    fig.add_trace(go.Scatter(x=coords[labelled, 0], y=coords[labelled, 1], mode="markers+text",
                             name=f"{labelled.size} most frequent", text=[names[i] for i in labelled],
                             textposition="top center", textfont=dict(size=11),
                             marker=dict(size=6, color=PALETTE[0]), hovertemplate="%{text}<extra></extra>"))
    ev = [float(e) for e in explained]
    fig.update_layout(title=esc(title) if title else None, height=620, margin=dict(MARGIN, t=40 if title else 10),
                      xaxis_title=f"PC1 ({ev[0]:.1%} of variance)",
                      yaxis_title=f"PC2 ({ev[1]:.1%} of variance)" if len(ev) > 1 else "",
                      legend=dict(orientation="h", y=-0.12))
    return fig

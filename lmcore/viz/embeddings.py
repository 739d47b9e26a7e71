"""Word representations: a 2-D map of the most frequent words, to scale, with labels that never overlap."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import plotly.graph_objects as go

from lmcore.viz.next_word import shown
from lmcore.viz.style import MARGIN, PALETTE, plain

PLOT_WIDTH = 900         # px of the plot area assumed when placing labels: a little less than at 1440 px (more only spreads them)
PLOT_HEIGHT = (360, 700)  # px: the plot is as tall as the map's shape asks, within these
FONT = 11                # px of a label
PAD = 0.04               # share of the map's extent added on every side
GAP = 1                  # px between a point and its label: Plotly sets a marker-less point's text right against it

# Where a label may go around its point, tried in this order: Plotly's textposition, and the lower-left corner of
# the label's box (width w, height h, y up) relative to the point.
SPOTS = {"top center": lambda w, h: (-w / 2, GAP), "bottom center": lambda w, h: (-w / 2, -GAP - h),
         "middle right": lambda w, h: (GAP, -h / 2), "middle left": lambda w, h: (-GAP - w, -h / 2)}


def label_size(word: str, font: int = FONT) -> tuple[float, float]:
    """(width, height) in px that a label takes, on the generous side (0.62 em a character, 1.3 em a line)."""
    return 0.62 * font * len(word) + 4, 1.3 * font


def axis_ranges(coords: np.ndarray) -> tuple[tuple[float, float], tuple[float, float]]:
    """(x range, y range) around the points with PAD on each side."""
    low, high = coords.min(axis=0), coords.max(axis=0)
    pad = PAD * max(float((high - low).max()), 1e-9)
    return (low[0] - pad, high[0] + pad), (low[1] - pad, high[1] + pad)


def plot_size(coords: np.ndarray) -> tuple[float, float]:
    """(width, height) px of the plot area: PLOT_WIDTH wide and as tall as the map's shape on equal axes."""
    (x0, x1), (y0, y1) = axis_ranges(coords)
    return PLOT_WIDTH, float(np.clip(PLOT_WIDTH * (y1 - y0) / (x1 - x0), *PLOT_HEIGHT))


def to_pixels(coords: np.ndarray, size: tuple[float, float]) -> np.ndarray:
    """(n, 2) px of each point in a plot area of this size (origin lower left, y up), drawn on equal axes as
    scaleanchor does: one scale for x and y, the tighter of the two, the map centred along the other axis."""
    coords = np.asarray(coords, dtype=float)
    (x0, x1), (y0, y1) = axis_ranges(coords)
    scale = min(size[0] / (x1 - x0), size[1] / (y1 - y0))
    centre = np.array([(x0 + x1) / 2, (y0 + y1) / 2])
    return (coords - centre) * scale + np.array(size) / 2


def label_box(anchor: np.ndarray, size: np.ndarray, spot: str) -> np.ndarray:
    """[left, bottom, right, top] px of a label of this size at this spot around its point."""
    dx, dy = SPOTS[spot](*size)
    return np.array([anchor[0] + dx, anchor[1] + dy, anchor[0] + dx + size[0], anchor[1] + dy + size[1]])


def place_labels(anchors: np.ndarray, sizes: np.ndarray, order: Sequence[int],
                 bounds: tuple[float, float] | None = None) -> dict[int, str]:
    """Greedy placement: in `order` (most wanted first) each label takes the first spot around its point (above,
    below, right, left) whose box overlaps no box placed before and stays within bounds (width, height);
    a label with no free spot is left to hover.

    anchors (n, 2) px of each point (y up); sizes (n, 2) px (width, height) of its label.
    Returns {index: textposition} in placement order."""
    anchors, sizes = np.asarray(anchors, dtype=float), np.asarray(sizes, dtype=float)
    boxes = np.empty((0, 4))  # (placed, [left, bottom, right, top])
    placed: dict[int, str] = {}
    for i in order:
        for spot in SPOTS:
            box = label_box(anchors[i], sizes[i], spot)
            if bounds is not None and (box[0] < 0 or box[1] < 0 or box[2] > bounds[0] or box[3] > bounds[1]):
                continue
            apart = ((box[2] <= boxes[:, 0]) | (boxes[:, 2] <= box[0])
                     | (box[3] <= boxes[:, 1]) | (boxes[:, 3] <= box[1]))
            if apart.all():
                boxes = np.vstack([boxes, box])
                placed[int(i)] = spot
                break
    return placed


def word_map_figure(coords: np.ndarray, words: Sequence[str], kept: Sequence[float], highlight: Sequence[int] = (),
                    axis_titles: tuple[str, str] = ("", ""), ticks: bool = True) -> go.Figure:
    """coords (n, 2) one point per word, words most frequent first, drawn on equal axes; labels placed greedily
    (the highlighted ones first, then by frequency), the rest named on hover with their share of neighbours kept;
    `highlight` (a word and its neighbours) in red, the first one largest.

    Words are escaped: Plotly reads tags such as <br> and <a> in text and hover labels."""
    coords = np.asarray(coords, dtype=float).reshape(-1, 2)
    if not len(coords):
        coords = np.zeros((0, 2))
    names = [plain(shown(w)) for w in words]
    highlight = [int(i) for i in highlight]
    wanted = highlight + [i for i in range(len(words)) if i not in set(highlight)]
    size = plot_size(coords) if len(coords) else (PLOT_WIDTH, PLOT_HEIGHT[0])
    sizes = np.array([label_size(shown(w)) for w in words]).reshape(-1, 2)
    placed = place_labels(to_pixels(coords, size), sizes, wanted, bounds=size) if len(coords) else {}
    labelled = list(placed)
    hover = [f"<b>{name}</b><br>frequency rank {i + 1}<br>neighbours kept {share:.0%}"
             for i, (name, share) in enumerate(zip(names, kept))]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=coords[:, 0], y=coords[:, 1], mode="markers", name="words",
                             marker=dict(size=5, color=PALETTE[0], opacity=0.55), hovertext=hover, hoverinfo="text"))
    if highlight:
        fig.add_trace(go.Scatter(x=coords[highlight, 0], y=coords[highlight, 1], mode="markers", name="highlighted",
                                 marker=dict(size=[13] + [9] * (len(highlight) - 1), color=PALETTE[1],
                                             line=dict(width=1, color="white")),
                                 hovertext=[hover[i] for i in highlight], hoverinfo="text"))
    fig.add_trace(go.Scatter(x=coords[labelled, 0], y=coords[labelled, 1], mode="text", name="labels",
                             text=[names[i] for i in labelled], textposition=[placed[i] for i in labelled],
                             textfont=dict(size=FONT, color=["#b2182b" if i in highlight else "#333" for i in labelled],
                                           shadow="auto"),  # a halo in the background colour: readable over dots
                             hoverinfo="skip", cliponaxis=False))
    (x0, x1), (y0, y1) = axis_ranges(coords) if len(coords) else ((-1, 1), (-1, 1))
    axis = dict(showticklabels=ticks, zeroline=False, showgrid=ticks)
    margin = dict(MARGIN, t=10, b=40)
    fig.update_layout(height=int(size[1]) + margin["t"] + margin["b"], margin=margin, showlegend=False,
                      hoverlabel=dict(align="left"),
                      xaxis=dict(axis, title=axis_titles[0], range=[x0, x1]),
                      yaxis=dict(axis, title=axis_titles[1], range=[y0, y1], scaleanchor="x", scaleratio=1))
    return fig

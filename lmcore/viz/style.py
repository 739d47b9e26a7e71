"""Colours and layout shared by every figure, so the views look like one tool."""
from __future__ import annotations

import html

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")
# Diverging scale for activations in [-1, 1] (blue negative, white 0, red positive), as in Karpathy et al.
DIVERGING = "RdBu_r"
MARGIN = dict(l=40, r=10, t=40, b=40)


def plain(text) -> str:
    """Text shown as typed in a Plotly label, legend or title: Plotly reads tags such as <b>, <br> and <a>
    in them (and shows entities as characters), so anything from a user is escaped with this."""
    return html.escape(str(text), quote=False)


def run_colour(i: int) -> str:
    return PALETTE[i % len(PALETTE)]

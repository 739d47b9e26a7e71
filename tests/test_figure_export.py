"""Issue 18 part 3: every figure downloads as PNG at slide resolution or as SVG, and has a style for slides."""
from __future__ import annotations

import plotly.graph_objects as go
import pytest

from lmcore.viz.style import SLIDE_FONT, download_config, for_slides


def test_the_camera_saves_a_slide_sized_png_or_an_svg_named_after_the_figure():
    png = download_config("context use / FFNN")["toImageButtonOptions"]
    assert png["format"] == "png" and png["filename"] == "context-use---FFNN"
    assert png["width"] * png["scale"] >= 3200 and png["height"] * png["scale"] >= 1800  # 16:9 at 2×
    svg = download_config("x", "svg")["toImageButtonOptions"]
    assert svg["format"] == "svg" and svg["scale"] == 1
    with pytest.raises(ValueError, match="png or svg"):
        download_config("x", "gif")


def test_the_style_for_slides_is_larger_plainer_and_leaves_the_figure_alone():
    fig = go.Figure(go.Scatter(x=[1, 2], y=[3, 4], mode="lines"))
    fig.update_layout(font=dict(size=12))
    slide = for_slides(fig)
    assert slide.layout.font.size == SLIDE_FONT and slide.layout.xaxis.showgrid is False
    assert slide.data[0].line.width == 3
    assert fig.layout.font.size == 12 and fig.data[0].line.width is None  # a copy: the page's figure is unchanged

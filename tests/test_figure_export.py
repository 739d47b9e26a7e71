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
    # tick labels too: Streamlit's theme had kept them at 12 px grey on a slide
    assert slide.layout.xaxis.tickfont.size == slide.layout.yaxis.tickfont.size == SLIDE_FONT - 2 >= 16


# the lecture's ten figures and three pages' own; every page draws through appstate.figures.chart, which a grep
# of views/ would also show (test_every_page_draws_through_chart)
PAGES = {"views/lecture.py": {}, "views/gates.py": {}, "views/memory.py": {}, "views/interventions.py": {}}


@pytest.mark.parametrize("page", sorted(PAGES))
def test_every_figure_of_a_page_downloads_as_the_sidebar_says(page, lmcore_home):
    """Each chart's toolbar camera saves a slide-sized PNG named after the figure; with SVG chosen (in the URL, so a
    link keeps it) every chart saves SVG, and the style for slides enlarges every chart's type."""
    import json

    from streamlit.testing.v1 import AppTest

    from .conftest import REPO

    def charts(**params):
        at = AppTest.from_file(str(REPO / "app.py"), default_timeout=300)
        for k, v in {**PAGES[page], **params}.items():
            at.query_params[k] = v
        at.run()
        at.switch_page(page).run()
        assert not at.exception, [e.value for e in at.exception]
        found = at.get("plotly_chart")
        assert found, page
        return [(json.loads(c.proto.config), json.loads(c.proto.spec)) for c in found]

    for config, _ in charts():
        options = config["toImageButtonOptions"]
        assert options["format"] == "png" and options["filename"].startswith(page[6:-3].replace("_", "-"))
        assert options["width"] * options["scale"] >= 3200
    for config, spec in charts(fig_format="SVG", fig_slides="true"):
        assert config["toImageButtonOptions"]["format"] == "svg"
        assert spec["layout"]["font"]["size"] == SLIDE_FONT


def test_every_page_draws_through_chart():
    """No page calls st.plotly_chart itself: each figure gets the sidebar's download format and slide style."""
    from pathlib import Path

    from .conftest import REPO
    pages = sorted((REPO / "views").glob("*.py"))
    assert pages and not [p.name for p in pages if "plotly_chart(" in Path(p).read_text()]

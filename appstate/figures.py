"""Every figure a page draws goes out through `chart`, so the sidebar's two choices apply to all of them: the
format the toolbar's camera saves (PNG at slide resolution, or SVG; drawn in the browser) and the style for
slides (larger type, no gridlines). Tables download as CSV from st.dataframe's own toolbar."""
from __future__ import annotations

import streamlit as st

from lmcore.viz.style import IMAGE_FORMATS, download_config, for_slides

FORMAT_KEY, SLIDES_KEY = "fig_format", "fig_slides"


def figure_controls() -> None:
    """The sidebar's figure settings (app.py draws them once for every page; kept in the URL)."""
    with st.sidebar.expander("Figures", icon=":material/image:"):
        st.radio("The camera in a figure's toolbar saves", [f.upper() for f in IMAGE_FORMATS], key=FORMAT_KEY,
                 horizontal=True, bind="query-params",
                 help="PNG: 3200 × 1800 pixels, a 16:9 slide at twice its resolution; SVG: lines and text stay "
                      "sharp at any size. Hover a figure to see its toolbar.")
        st.toggle("Style for slides", key=SLIDES_KEY, bind="query-params",
                  help="Larger type, no gridlines, thicker lines: the figures as they read from the back of a room.")


def chart(fig, name: str, container=st, **kwargs):
    """st.plotly_chart with the sidebar's choices: name is the downloaded file's name ("context-use")."""
    slides = bool(st.session_state.get(SLIDES_KEY, False))
    image_format = (st.session_state.get(FORMAT_KEY) or "png").lower()
    kwargs.setdefault("width", "stretch")
    return container.plotly_chart(for_slides(fig) if slides else fig,
                                  config=download_config(name, image_format), **kwargs)

"""Widget values that last: in the URL, across pages, following a default until the user edits it; the runs a
page shows; the controls every page with training curves shares."""
from __future__ import annotations

import streamlit as st

URL = "query-params"  # a bound widget's value lives in the page's URL, under its key


def selected_run_ids(key: str = "show") -> list[int]:
    raw = st.query_params.get(key, "")
    return [int(x) for x in raw.split(",") if x.strip().isdigit()]


def set_selected_run_ids(ids: list[int], key: str = "show") -> None:
    st.query_params[key] = ",".join(str(i) for i in ids)


def keep_across_pages(key: str) -> None:
    """A keyed widget's value comes back when the user returns to its page (Streamlit forgets the widgets of a
    page left behind); a value in the URL wins. Call before the widget, every run."""
    kept = f"_kept_{key}"
    if key in st.session_state:
        st.session_state[kept] = st.session_state[key]  # as of the end of the last run (the user's latest edit)
    elif kept in st.session_state and key not in st.query_params:
        st.session_state[key] = st.session_state[kept]


def follow_default(key: str, default, context=None, fill: bool = False) -> None:
    """A keyed widget's value follows its default while the user has not edited it: when the default changes
    (the chosen run's sentence, the preset's value), the value moves with it unless the user changed it.

    context: what the default is computed from (the run, the text, …); when it changes, the value goes back to
    the default even if the user edited it (a unit number means nothing on another run). fill: the widget takes
    no value of its own, so a missing value is set to the default; otherwise the widget takes value=default, and
    on a fresh page the URL's value, if any, stands. Call before the widget."""
    marker = f"_default_of_{key}"
    moved = False
    if marker in st.session_state:
        old_context, old_default = st.session_state[marker]
        moved = old_context != context or (key in st.session_state and default != old_default
                                           and st.session_state[key] == old_default)
    if moved or (fill and key not in st.session_state):
        st.session_state[key] = default
    st.session_state[marker] = (context, default)


def reset_default(key: str, default) -> None:
    """Set a widget's value and the default it follows (another preset chosen: its values, unedited)."""
    st.session_state[key] = default
    st.session_state[f"_default_of_{key}"] = (None, default)


def field(widget, label: str, key: str, default, *args, context=None, **kwargs):
    """A form field bound to the URL whose value follows its default (the preset's or the corpus recipe's)
    until the user edits it, and comes back when the user returns to the page. context: see follow_default (a
    new preset or run puts every field back to its default, edited or not)."""
    keep_across_pages(key)
    follow_default(key, default, context)
    if getattr(widget, "__name__", None) in ("selectbox", "radio"):  # st.selectbox or a column's
        return widget(label, *args, index=list(args[0]).index(default), key=key, bind=URL, **kwargs)
    return widget(label, *args, value=default, key=key, bind=URL, **kwargs)


# --- readable curves (issue 13, item 3): the same controls on every page that draws training curves ---
def curve_controls(key: str, log_default: bool = True, smoothing_default: float = 0.0, container=st) -> dict:
    """A log/linear switch and TensorBoard's smoothing slider, kept in the URL as `{key}scale` and
    `{key}smooth`; key is the page's prefix ("cmp_"), since a bound key names the value on every page.
    Returns keyword arguments for lmcore.viz.training.curves_figure (log_y, smoothing)."""
    left, right = container.columns(2)
    scale = left.radio("y axis", ["log", "linear"], index=0 if log_default else 1, horizontal=True,
                       key=f"{key}scale", bind=URL,
                       help="log: a halving looks the same at 1,000 as at 100, so early and late training both show")
    smoothing = right.slider("Smoothing", 0.0, 0.99, smoothing_default, 0.01, key=f"{key}smooth", bind=URL,
                             help="TensorBoard's exponential moving average (0: off; 0.9: strong). The raw curve "
                                  "stays faint behind the smoothed one.")
    return {"log_y": scale == "log", "smoothing": float(smoothing)}

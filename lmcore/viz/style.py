"""Colours and layout shared by every figure, so the views look like one tool."""
from __future__ import annotations

import html
import math
import numbers
import zlib

import numpy as np
import plotly.graph_objects as go

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")
# Diverging scale for activations in [-1, 1] (blue negative, white 0, red positive), as in Karpathy et al.
DIVERGING = "RdBu_r"
MARGIN = dict(l=40, r=10, t=40, b=40)
NOTE_FONT = dict(size=11, color="#666")
SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def plain(text) -> str:
    """Text shown as typed in a Plotly label, legend or title: Plotly reads tags such as <b>, <br> and <a>
    in them, so anything from a user is escaped with this. Only &, < and > are escaped: Plotly turns
    &amp; &lt; &gt; back into characters but would print &quot; or &#x27; literally."""
    return html.escape(str(text), quote=False)


DEMO_ARCHITECTURES = ("lstm", "gru", "elman", "ffnn")  # a demo's key ends in one: "demo:agreement-ffnn"


def run_colour(run: int | str) -> str:
    """One colour per run on every page, decided by the run alone (never by its place in a figure).

    run: a store run's id (12) or key ("run:12", both give the same colour), a demo's key ("demo:agreement-lstm":
    by its architecture, so the demos of one corpus, drawn together, never share one), or any name (hashed).
    Consecutive run ids get different colours."""
    if isinstance(run, str) and run.startswith("run:") and run[4:].isdigit():
        run = int(run[4:])
    if isinstance(run, numbers.Integral):
        return PALETTE[int(run) % len(PALETTE)]
    arch = str(run).rsplit("-", 1)[-1]
    if str(run).startswith("demo:") and arch in DEMO_ARCHITECTURES:
        return PALETTE[DEMO_ARCHITECTURES.index(arch)]
    return PALETTE[zlib.crc32(str(run).encode()) % len(PALETTE)]


def faded(colour: str, alpha: float) -> str:
    """A "#rrggbb" colour as rgba with this opacity (a raw curve behind its smoothed one, a band)."""
    r, g, b = (int(colour[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def readable_number(x: float) -> str:
    """3 significant digits with thousands separators: 2,000 · 836,000 · 6.4 · 0.0031."""
    if not math.isfinite(x):
        return "infinite"
    if abs(x) >= 1e6:  # 8.5 × 10²² rather than 85,000,000,000,000,000,000,000
        mantissa, exponent = f"{x:.2e}".split("e")
        return f"{float(mantissa):g} × 10{str(int(exponent)).translate(SUPERSCRIPT)}"
    if abs(x) >= 1000:
        return f"{float(f'{x:.3g}'):,.0f}"
    return f"{x:.3g}"


# --- an axis range that outliers cannot take over ---------------------------------------------------
FENCE = 7.0  # how many spreads above the median a point must lie to be an outlier
MIN_POINTS = 5  # with fewer points nothing can be called an outlier
MIN_DECADES = 0.25  # on a log axis, the least spread the fence counts (FENCE × this above the median)
LINEAR_TIMES = 10.0  # on a linear axis, the fence is at least this many times the median


def _round_up(x: float) -> float:
    """Up to 2 significant digits, so the axis top (and the note that names it) is a round number."""
    if x <= 0:
        return x
    scale = 10 ** (math.floor(math.log10(x)) - 1)
    return math.ceil(x / scale - 1e-9) * scale


def outlier_ceiling(values, log: bool) -> float | None:
    """The value above which points are outliers, or None when no point is: median + 7 × (median − 5th
    percentile), in log10 units on a log axis; on a linear one never below 10 × the median (of positive values).

    The spread is measured below the median only, so up to half of the points (one run that blew up among
    three) can be outliers without dragging the fence up with them, and from the 5th percentile rather than
    the lower quartile. On a log axis it is at least a quarter of a decade, so the fence stands at least 1.75
    decades (56×) above the median: a curve that flattens out after a start 14× higher (a perplexity from 40 to
    a plateau at 2.8) keeps its start, which a floor of 0.05 decade had cut. On a linear axis a loss from 7 down
    to 1 keeps its start; a point 15× the rest, which would squash them to the axis, does not. One spike to 836k
    among values of 100–300 is cut on either axis; a perplexity of 48 at k = 1 above curves at 14–27 is not."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v) & ((v > 0) if log else True)]
    if v.size < MIN_POINTS:
        return None
    a = np.log10(v) if log else v
    low, median = np.percentile(a, [5, 50])
    fence = median + FENCE * max(median - low, MIN_DECADES if log else 0.05 * abs(median))
    if not log and median > 0:
        fence = max(fence, LINEAR_TIMES * median)
    if a.max() <= fence:
        return None
    return _round_up(10 ** fence if log else fence)


def log_ticks(low: float, high: float) -> list[float]:
    """Round tick values for a log axis from low to high, each labelled in full: Plotly's own labels between
    decades are bare digits, so 20 reads "2" just above 10."""
    decades = range(math.floor(math.log10(low)) - 1, math.ceil(math.log10(high)) + 1)
    for steps in ((1,), (1, 2, 5), (1, 2, 3, 5), (1, 1.5, 2, 3, 4, 5, 6, 7, 8, 9)):
        ticks = [m * 10.0 ** d for d in decades for m in steps if low * 0.97 <= m * 10.0 ** d <= high * 1.03]
        if len(ticks) >= 4 or steps[-1] == 9:
            return ticks if len(ticks) <= 12 else ticks[::math.ceil(len(ticks) / 10)]
    return []


def _widen_flat(fig: go.Figure, finite: np.ndarray, log: bool, ceiling) -> None:
    """A constant curve (an lr that never decayed) on a range around its value: Plotly's own range for a flat
    line is value ± 1, which draws lr 0.003 at "0" between −1 and 1."""
    if ceiling is not None or not finite.size or finite.max() > finite.min() or log:
        return
    value = float(finite[0])
    half = 0.5 * abs(value) if value else 1.0
    fig.update_yaxes(range=[value - half, value + half])


def fit_y_axis(fig: go.Figure, values, log: bool, keep=(), what: str = "points", cut: bool = True) -> int:
    """Put the y axis on a log or linear scale and keep outliers (and infinite values) from taking it
    over (unless not `cut`); `keep` (e.g. baselines) always stays in view. When points are cut, the figure says how
    many. Returns the number of points not shown."""
    v = np.asarray(values, dtype=float)
    finite = v[np.isfinite(v)]
    infinite = int(np.isinf(v).sum())  # an overflow; NaN is a value never measured, drawn as a gap
    fig.update_yaxes(type="log" if log else "linear")
    ceiling = outlier_ceiling(finite, log) if cut else None
    kept = [float(k) for k in keep if k is not None and math.isfinite(k) and (k > 0 or not log)]
    if ceiling is not None and kept and max(kept) > ceiling:
        ceiling = _round_up(max(kept) * 1.05)
    above = int((finite > ceiling).sum()) if ceiling is not None else 0
    if ceiling is not None:  # the axis ends just above the highest point kept: nothing lies between it and the fence
        shown = np.concatenate([finite[finite <= ceiling], kept])
        shown = shown[shown > 0] if log else shown
        low, top = (float(shown.min()), float(shown.max())) if shown.size else (ceiling / 10, ceiling)
        if log:
            low, top = math.log10(low), math.log10(top)
        pad = 0.05 * max(top - low, 0.1 if log else 1e-9)
        fig.update_yaxes(range=[low - pad, top + pad])
        ceiling = min(_round_up(10 ** top if log else top), ceiling)  # a round number for the note
    _widen_flat(fig, np.concatenate([finite, kept]), log, ceiling)
    if log:
        shown = np.concatenate([finite[finite <= ceiling] if ceiling is not None else finite, kept])
        shown = shown[shown > 0]
        if shown.size:
            ticks = log_ticks(float(shown.min()), float(shown.max()))
            fig.update_yaxes(tickvals=ticks, ticktext=[readable_number(t) for t in ticks])
    hidden = above + infinite
    if hidden:
        parts = []
        if above:
            parts.append(f"{above:,} {what if above > 1 else what.rstrip('s')} above {readable_number(ceiling)}")
        if infinite:
            parts.append(f"{infinite:,} infinite (a run that blew up)")
        # top left: Plotly's toolbar takes the top right on hover
        fig.add_annotation(text=" and ".join(parts) + " not shown", xref="paper", yref="paper", x=0, y=1,
                           xanchor="left", yanchor="bottom", showarrow=False, font=NOTE_FONT)
    return hidden


# --- figures for slides and their download ------------------------------------------------------------------
SLIDE_PX = (1600, 900)        # a 16:9 slide's picture at full width; PNGs are drawn at SLIDE_SCALE × this
SLIDE_SCALE = 2
SLIDE_FONT = 20               # px: readable from the back of a lecture room
IMAGE_FORMATS = ("png", "svg")


def for_slides(fig: go.Figure) -> go.Figure:
    """The same figure for a slide: larger type, no gridlines, a white background, thicker lines. A copy."""
    out = go.Figure(fig)
    out.update_layout(font=dict(size=SLIDE_FONT), title_font=dict(size=SLIDE_FONT + 4), plot_bgcolor="white",
                      paper_bgcolor="white", legend=dict(font=dict(size=SLIDE_FONT - 2)))
    # tick labels set here too: Streamlit's theme draws them at 12 px grey whatever the layout's font says
    ticks = dict(size=SLIDE_FONT - 2, color="black")
    out.update_xaxes(showgrid=False, linecolor="black", ticks="outside", title_font=dict(size=SLIDE_FONT),
                     tickfont=ticks)
    out.update_yaxes(showgrid=False, linecolor="black", ticks="outside", title_font=dict(size=SLIDE_FONT),
                     tickfont=ticks)
    for trace in out.data:
        if getattr(trace, "mode", None) and "lines" in trace.mode and trace.line.width in (None, 1, 2):
            trace.line.width = 3
    return out


def download_config(name: str, image_format: str = "png") -> dict:
    """Plotly's config for a chart: the toolbar's camera saves `name`.png at slide resolution, or `name`.svg,
    drawn in the browser (no server-side renderer)."""
    if image_format not in IMAGE_FORMATS:
        raise ValueError(f"unknown image format {image_format!r}; choose png or svg")
    safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in name).strip("-") or "figure"
    return {"displaylogo": False,
            "toImageButtonOptions": {"format": image_format, "filename": safe[:80], "width": SLIDE_PX[0],
                                     "height": SLIDE_PX[1], "scale": SLIDE_SCALE if image_format == "png" else 1}}

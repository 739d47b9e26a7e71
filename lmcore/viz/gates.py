"""Gate figures: Graves (2012) Fig. 4.4 from a real model, gate saturation (Karpathy et al. 2015),
histograms of gate values and the state over time. Data in, `go.Figure` out; no Streamlit here.

Fig. 4.4 ("O: open gate, —: closed gate, black: high activation, white: low activation"): one node
per time step, shaded by how sensitive the hidden state is to the input at one source step; around
each node, the gates as glyphs. LSTM: input gate i below, forget gate f to the left, output gate o
above. GRU (no output gate; its state is its output): update gate z to the left, where the past comes
in (z open keeps h_{t-1}, as an LSTM's open forget gate with a closed input gate does), reset gate r
below (r open lets h_{t-1} into the candidate n). Elman RNN: no gates.

LSTM variants (Greff et al. 2016) keep the places: a gate the variant removes (NIG, NFG, NOG) is drawn
as permanently open, in grey, and each figure takes `notes` (`inspect.trace.gate_notes`) to say so.
"""
from __future__ import annotations

import html
from typing import NamedTuple

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from lmcore.nn.architectures import GATE_LABELS, SIGMOID_GATES
from lmcore.viz.style import MARGIN, run_colour

OPEN, CLOSED, PARTLY = "O", "—", "◐"
# Where each gate sits around its node: (dx, dy) in node spacings, and the side's name.
PLACES: dict[str, dict[str, tuple[float, float, str]]] = {
    "lstm": {"i": (0.0, -1.0, "below"), "f": (-1.0, 0.0, "left"), "o": (0.0, 1.0, "above")},
    "gru": {"z": (-1.0, 0.0, "left"), "r": (0.0, -1.0, "below")},
    "elman": {},
    "irnn": {},
}
DX, DY = 0.45, 0.55  # glyph offsets from the node: x in time steps, y in figure units


class Glyph(NamedTuple):
    gate: str     # "i", "f", "o", "z", "r"
    t: int        # time step (absolute: position in the whole text)
    x: float
    y: float
    glyph: str    # OPEN, CLOSED or PARTLY
    value: float  # the gate's value in [0, 1]


def gate_glyph(value: float, closed_below: float = 0.1, open_above: float = 0.9) -> str:
    """"O" above `open_above`, "—" below `closed_below`, "◐" in between."""
    if not 0.0 <= closed_below <= open_above <= 1.0:
        raise ValueError(f"need 0 ≤ closed_below ≤ open_above ≤ 1 (got {closed_below}, {open_above})")
    return OPEN if value > open_above else CLOSED if value < closed_below else PARTLY


def glyph_layout(gates: dict[str, np.ndarray], arch: str, closed_below: float = 0.1, open_above: float = 0.9,
                 start: int = 0, constant: tuple[str, ...] = ()) -> list[Glyph]:
    """One Glyph per (gate, step) for the gates `arch` draws; gates: name -> (T,) values.

    The node of step t sits at (start + t, 0); gates the architecture does not draw are ignored.
    Gates in `constant` (removed by an LSTM variant: the constant 1) are OPEN whatever the thresholds.
    """
    out = []
    for name, (dx, dy, _) in PLACES[arch].items():
        for k, value in enumerate(np.asarray(gates[name], dtype=float)):
            glyph = OPEN if name in constant else gate_glyph(value, closed_below, open_above)
            out.append(Glyph(name, start + k, start + k + dx * DX, dy * DY, glyph, float(value)))
    return out


def fig44_window(n_steps: int, source: int, width: int = 40, before: int = 2) -> tuple[int, int]:
    """(start, stop) of a window of at most `width` steps that shows the source and what follows it."""
    width = max(1, min(width, n_steps))
    start = max(0, min(source - before, n_steps - width))
    return start, start + width


# --- readable at 1440 px -------------------------------------------------------------------------------
# Sizes in px. At a 1440 px wide browser window with the sidebar open, the page's main column (and so a
# full-width figure) is about 980 px wide (measured in Chromium). A figure shows a window of the text that
# fits at these sizes rather than shrinking glyphs and labels until a whole text fits.
FIGURE_PX = 980     # a full-width figure at 1440 px
AXIS_PX = 150       # left margin of a Graves figure: the row names ("forget gate f ◂ h_t")
RIGHT_PX = 20
GLYPH_PX = 18       # a gate glyph (O, —, ◐)
NODE_PX = 24        # the circle of h_t
FONT_PX = 13        # token labels, row names, axis titles
CHAR_PX = 0.5 * FONT_PX  # the mean width of a lowercase character of the app's sans-serif font, about
TOKEN_PX = 54       # least room per token: the node, the glyph on its left, a 7-character label
ROW_PX = 46         # one row of glyphs or nodes


def plot_width_px(figure_px: float = FIGURE_PX, axis_px: float = AXIS_PX) -> float:
    return figure_px - axis_px - RIGHT_PX


def tokens_that_fit(figure_px: float = FIGURE_PX, axis_px: float = AXIS_PX) -> int:
    """The most tokens a figure this wide shows with TOKEN_PX each: the largest window."""
    return max(1, int(plot_width_px(figure_px, axis_px) // TOKEN_PX))


def token_spacing_px(n_tokens: int, figure_px: float = FIGURE_PX, axis_px: float = AXIS_PX) -> float:
    """px between neighbouring tokens when `n_tokens` share the plot's width (its x range is n_tokens wide)."""
    return plot_width_px(figure_px, axis_px) / max(n_tokens, 1)


def token_label(token, max_chars: int) -> str:
    """A token as a one-line label: spaces and line ends made visible, cut to `max_chars` with …, escaped."""
    shown = str(token).replace(" ", "␣").replace("\n", "↵").replace("\t", "⇥") or "∅"
    if len(shown) > max_chars:
        shown = shown[:max(1, max_chars - 1)] + "…"
    return html.escape(shown)


def token_ticks(tokens: list[str], steps, spacing_px: float = TOKEN_PX) -> tuple[list[int], list[str]]:
    """Horizontal tick labels for tokens at these steps, `spacing_px` apart: each token cut to the room it
    has, its step number in grey below it (the number the source and window sliders use)."""
    room = max(2, int((spacing_px - 6) // CHAR_PX))  # 6 px between neighbouring labels
    steps = [int(t) for t in steps]
    return steps, [f"{token_label(tok, room)}<br><span style='color:#888888'>{t}</span>"
                   for t, tok in zip(steps, tokens)]


def _escape(tokens) -> list[str]:
    return [html.escape(str(t)) for t in tokens]  # plotly reads a subset of HTML in text


def row_names(arch: str) -> dict[float, str]:
    """y position -> the name of that row of a Fig. 4.4: h_t in the middle (with the gate on its left),
    a gate above or below."""
    rows: dict[float, list[str]] = {0.0: []}
    for name, (dx, dy, _) in PLACES.get(arch, {}).items():
        rows.setdefault(dy * DY, []).append(GATE_LABELS[name] + (" ◂" if dx < 0 else ""))
    return {y: " ".join(names + (["h_t"] if y == 0 else [])) for y, names in sorted(rows.items())}


def _glyph_key(thresholds: tuple[float, float] | None) -> str:
    if thresholds is None:
        return "O open · — closed · ◐ in between"
    closed_below, open_above = thresholds
    return f"O open (&gt; {open_above:g}) · — closed (&lt; {closed_below:g}) · ◐ in between"  # Plotly reads tags


def fig44_figure(tokens: list[str], sensitivity: np.ndarray, glyphs: list[Glyph], start: int = 0,
                 source: int | None = None, arch: str = "lstm", title: str = "",
                 notes: dict[str, str] | None = None, constant: tuple[str, ...] = (),
                 thresholds: tuple[float, float] | None = None, figure_px: float = FIGURE_PX) -> go.Figure:
    """Graves' Fig. 4.4 over a window of steps start..start+T-1: nodes shaded white (0) → black (1) by
    `sensitivity` (already normalised to [0, 1], e.g. by its peak over the whole text), the gate glyphs
    around them, the source step ringed in red. Sized to be read at `figure_px` wide: pass a window of at
    most `tokens_that_fit(figure_px)` tokens. notes: gate -> what to say about it (in the subtitle and on
    hover); constant: gates drawn in grey, permanently open (a variant without them); thresholds:
    (closed_below, open_above), said in the glyph key."""
    notes = notes or {}
    steps = np.arange(start, start + len(tokens))
    shown = _escape(tokens)
    s = np.clip(np.asarray(sensitivity, dtype=float), 0.0, 1.0)
    fig = go.Figure()
    fig.add_trace(go.Scatter(
        x=steps, y=np.zeros(len(steps)), mode="markers", name="h_t", showlegend=False,
        marker=dict(size=NODE_PX, color=s, cmin=0.0, cmax=1.0, colorscale=[[0, "white"], [1, "black"]],
                    line=dict(color="black", width=1.5)),
        customdata=np.stack([shown, s.round(3)], axis=1) if len(steps) else None,
        hovertemplate="step %{x}: %{customdata[0]}<br>sensitivity to x_source: %{customdata[1]}<extra></extra>"))
    if source is not None and start <= source < start + len(tokens):
        fig.add_trace(go.Scatter(x=[source], y=[0], mode="markers", name="source step", hoverinfo="skip",
                                 marker=dict(symbol="circle-open", size=NODE_PX + 12, color="#d62728",
                                             line=dict(width=2.5))))
    places = PLACES.get(arch, {})
    for name, (_, _, side) in places.items():
        mine = [g for g in glyphs if g.gate == name]
        fig.add_trace(go.Scatter(
            x=[g.x for g in mine], y=[g.y for g in mine], mode="text", text=[g.glyph for g in mine],
            textfont=dict(size=GLYPH_PX, color="#999999" if name in constant else "black"),
            name=f"{name} ({side})", showlegend=False,
            customdata=[[notes.get(name, GATE_LABELS[name]), round(g.value, 3)] for g in mine],
            hovertemplate="step %{x:.0f}: %{customdata[0]} = %{customdata[1]}<extra></extra>"))
    lines = [_glyph_key(thresholds) if places else "no gates", "circle: h_t, black where it depends most on x_source"]
    lines = [" · ".join(lines)]
    if notes:
        lines.append(html.escape("; ".join(notes.values())))
    if source is not None and source < start:
        lines.append(f"the source step {source} is left of this window")
    rows = row_names(arch)
    top = 40 + 17 * len(lines)
    fig.update_layout(title=dict(text=title, font=dict(size=15), subtitle=dict(text="<br>".join(lines),
                                                                                font=dict(size=FONT_PX))),
                      height=top + 50 + ROW_PX * len(rows), font=dict(size=FONT_PX),
                      margin=dict(l=AXIS_PX, r=RIGHT_PX, t=top, b=50), plot_bgcolor="white", showlegend=False,
                      hovermode="closest")
    tickvals, ticktext = token_ticks(tokens, steps, token_spacing_px(len(tokens), figure_px))
    fig.update_xaxes(tickvals=tickvals, ticktext=ticktext, tickangle=0, showgrid=False, zeroline=False,
                     tickfont=dict(size=FONT_PX), fixedrange=True,
                     range=[start - 0.7, start + len(tokens) - 0.7])  # room for the first step's left glyph
    fig.update_yaxes(tickvals=list(rows), ticktext=list(rows.values()), tickfont=dict(size=FONT_PX),
                     showgrid=False, zeroline=False, showline=False, fixedrange=True,
                     range=[min(rows) - 0.5 * DY, max(rows) + 0.5 * DY])
    return fig


# --- saturation and histograms -------------------------------------------------------------------
def sigmoid_gates(layer: dict[str, np.ndarray]) -> list[str]:
    """The gates of one trace layer where open (≈1) and closed (≈0) mean something, in a fixed order."""
    return [g for g in SIGMOID_GATES if g in layer]


def saturation_fractions(values: np.ndarray, closed_below: float = 0.1, open_above: float = 0.9):
    """values: (T, H) one gate over T steps. Per unit, the fraction of steps below `closed_below`
    (left-saturated) and above `open_above` (right-saturated): two arrays of shape (H,)."""
    values = np.asarray(values, dtype=float)
    return (values < closed_below).mean(axis=0), (values > open_above).mean(axis=0)


def _panel_titles(gates: list[str], notes: dict[str, str] | None) -> list[str]:
    """One title per gate panel; a gate with a note is marked † and the note goes in the subtitle."""
    return [GATE_LABELS[g] + (" †" if g in (notes or {}) else "") for g in gates]


def _title(title: str, gates: list[str], notes: dict[str, str] | None) -> dict:
    said = [f"† {notes[g]}" for g in gates if g in (notes or {})]
    return dict(text=title, font=dict(size=15),
                subtitle=dict(text=html.escape("; ".join(said)), font=dict(size=FONT_PX)))


def _top(gates: list[str], notes: dict[str, str] | None) -> int:
    """Top margin: room for the subtitle above the panel titles when there is one."""
    return 100 if any(g in (notes or {}) for g in gates) else 75


def _readable(fig: go.Figure, title: dict, height: int, top: int) -> go.Figure:
    """Fonts of at least FONT_PX everywhere, panel titles a little larger."""
    fig.update_layout(title=title, height=height, margin=dict(MARGIN, l=60, t=top, b=50), font=dict(size=FONT_PX))
    fig.update_annotations(font=dict(size=14))
    return fig


def saturation_figure(layer: dict[str, np.ndarray], closed_below: float = 0.1, open_above: float = 0.9,
                      title: str = "", notes: dict[str, str] | None = None) -> go.Figure:
    """Karpathy et al. (2015) Fig. 3: one point per unit, one panel per gate; x: fraction of steps
    left-saturated, y: fraction right-saturated. Points near (0, 0) are gates that are rarely saturated; the
    dotted line x + y = 1 bounds them (a gate is never both). notes: gate -> what the subtitle says
    about it (a removed gate, the constant 1, sits at (0, 1) for every unit: permanently open)."""
    gates = sigmoid_gates(layer)
    fig = make_subplots(rows=1, cols=max(1, len(gates)), subplot_titles=_panel_titles(gates, notes),
                        shared_yaxes=True, horizontal_spacing=0.09)
    for k, name in enumerate(gates, start=1):
        left, right = saturation_fractions(layer[name], closed_below, open_above)
        fig.add_trace(go.Scatter(x=[0, 1], y=[1, 0], mode="lines", line=dict(dash="dot", color="#bbbbbb"),
                                 hoverinfo="skip", showlegend=False), row=1, col=k)
        fig.add_trace(go.Scatter(x=left, y=right, mode="markers", showlegend=False,
                                 marker=dict(size=7, opacity=0.6, color=run_colour(SIGMOID_GATES.index(name))),
                                 text=[f"unit {u}" for u in range(left.size)],
                                 hovertemplate="%{text}<br>closed %{x:.0%} · open %{y:.0%}<extra></extra>"),
                      row=1, col=k)
        fig.update_xaxes(title_text=f"steps closed (< {closed_below:g})", range=[-0.03, 1.03], tickformat=".0%",
                         row=1, col=k)
    fig.update_yaxes(title_text=f"steps open (> {open_above:g})", range=[-0.03, 1.03], tickformat=".0%", row=1, col=1)
    return _readable(fig, _title(title, gates, notes), 360, _top(gates, notes))


def gate_histogram_figure(layer: dict[str, np.ndarray], closed_below: float = 0.1, open_above: float = 0.9,
                          title: str = "", notes: dict[str, str] | None = None) -> go.Figure:
    """One histogram per sigmoid gate of all its values (every step, every unit), with the thresholds;
    notes: as in saturation_figure. A value of exactly 1 (a saturated fp32 sigmoid, a removed gate)
    counts in the last bin."""
    gates = sigmoid_gates(layer)
    fig = make_subplots(rows=1, cols=max(1, len(gates)), subplot_titles=_panel_titles(gates, notes),
                        horizontal_spacing=0.09)
    for k, name in enumerate(gates, start=1):
        values = np.minimum(np.asarray(layer[name], dtype=float).ravel(), 1 - 1e-9)  # [0.975, 1) takes the 1s
        fig.add_trace(go.Histogram(x=values, xbins=dict(start=0, end=1, size=0.025),
                                   histnorm="probability", showlegend=False, marker_color="#555555"), row=1, col=k)
        for v in (closed_below, open_above):
            fig.add_vline(x=v, line=dict(dash="dot", color="#d62728", width=1), row=1, col=k)
        fig.update_xaxes(title_text="value", range=[0, 1], row=1, col=k)
    fig.update_yaxes(title_text="fraction of values", row=1, col=1)
    fig.update_layout(bargap=0.05)
    return _readable(fig, _title(title, gates, notes), 320, _top(gates, notes))


def state_over_time_figure(values: np.ndarray, tokens: list[str], name: str = "cell state c", title: str = "",
                           window: tuple[int, int] | None = None, figure_px: float = FIGURE_PX) -> go.Figure:
    """values: (T, H). A box per time step of the H units' values; along the bottom as many tokens as fit
    horizontally at `figure_px` wide (every k-th one for a long text); `window` (start, stop): the steps a
    Graves figure shows, shaded."""
    values = np.asarray(values, dtype=float)
    T, H = values.shape
    steps = np.repeat(np.arange(T), H)
    fig = go.Figure(go.Box(x=steps, y=values.ravel(), boxpoints=False, marker_color="#1f77b4", line=dict(width=1),
                           name=name, showlegend=False))
    every = int(np.ceil(T / tokens_that_fit(figure_px, axis_px=70)))  # a label per TOKEN_PX at most
    ticks = np.arange(0, T, every)
    tickvals, ticktext = token_ticks([tokens[t] for t in ticks], ticks, token_spacing_px(T, figure_px, 70) * every)
    fig.update_xaxes(tickvals=tickvals, ticktext=ticktext, tickangle=0, range=[-0.6, T - 0.4])
    if window is not None:
        fig.add_vrect(x0=window[0] - 0.5, x1=window[1] - 0.5, fillcolor="#d62728", opacity=0.08, line_width=0)
        fig.add_annotation(x=window[0] - 0.5, y=1, xref="x", yref="paper", xanchor="left", yanchor="bottom",
                           text="window of the figures above", showarrow=False, font=dict(color="#d62728"))
    fig.update_yaxes(title_text=name)
    fig.update_layout(title=dict(text=title, font=dict(size=15)), height=350, font=dict(size=FONT_PX),
                      margin=dict(MARGIN, l=60, t=60, b=55))
    return fig

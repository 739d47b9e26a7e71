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

from ..inspect.sensitivity import Units, unit_index
from ..inspect.trace import GATE_NAMES, SIGMOID_GATES
from .style import MARGIN, run_colour

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


def select_units(values: np.ndarray, units: Units = None) -> np.ndarray:
    """(T, H) values → (T,): one unit's column, or the mean over a set of units (None: all)."""
    values = np.asarray(values)
    return values[:, unit_index(units, values.shape[1])].reshape(values.shape[0], -1).mean(axis=1)


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


def _escape(tokens) -> list[str]:
    return [html.escape(str(t)) for t in tokens]  # plotly reads a subset of HTML in text


def fig44_figure(tokens: list[str], sensitivity: np.ndarray, glyphs: list[Glyph], start: int = 0,
                 source: int | None = None, arch: str = "lstm", title: str = "",
                 node_size: float | None = None, notes: dict[str, str] | None = None,
                 constant: tuple[str, ...] = ()) -> go.Figure:
    """Graves' Fig. 4.4: nodes at steps start..start+T-1 shaded white (0) → black (1) by `sensitivity`
    (already normalised to [0, 1]), the gate glyphs around them, the source step ringed in red.
    node_size: marker size in px (glyphs scale with it); default: smaller as the window grows.
    notes: gate -> what to say about it (in the subtitle and on hover); constant: gates drawn in grey,
    permanently open (a variant without them)."""
    notes = notes or {}
    steps = np.arange(start, start + len(tokens))
    shown = _escape(tokens)
    s = np.clip(np.asarray(sensitivity, dtype=float), 0.0, 1.0)
    size = node_size or float(np.clip(160 / max(len(steps), 1), 6, 12))  # room for the left glyph between nodes
    fig = go.Figure()
    fig.add_trace(go.Scatter(
        x=steps, y=np.zeros(len(steps)), mode="markers", name="h_t", showlegend=False,
        marker=dict(size=size, color=s, cmin=0.0, cmax=1.0, colorscale=[[0, "white"], [1, "black"]],
                    line=dict(color="black", width=1)),
        customdata=np.stack([shown, s.round(3)], axis=1) if len(steps) else None,
        hovertemplate="step %{x}: %{customdata[0]}<br>sensitivity to x_source: %{customdata[1]}<extra></extra>"))
    if source is not None and start <= source < start + len(tokens):
        fig.add_trace(go.Scatter(x=[source], y=[0], mode="markers", name="source step", hoverinfo="skip",
                                 marker=dict(symbol="circle-open", size=size + 8, color="#d62728", line=dict(width=2))))
    places = PLACES.get(arch, {})
    for name, (_, _, side) in places.items():
        mine = [g for g in glyphs if g.gate == name]
        fig.add_trace(go.Scatter(
            x=[g.x for g in mine], y=[g.y for g in mine], mode="text", text=[g.glyph for g in mine],
            textfont=dict(size=max(8.0, size * 0.9), color="#999999" if name in constant else "black"),
            name=f"{name} ({side})", showlegend=False,
            customdata=[[notes.get(name, GATE_NAMES[name]), round(g.value, 3)] for g in mine],
            hovertemplate="step %{x:.0f}: %{customdata[0]} = %{customdata[1]}<extra></extra>"))
    where = " · ".join(f"{GATE_NAMES[name]} {side}" for name, (_, _, side) in places.items()) or "no gates"
    if notes:
        where += "<br>" + html.escape("; ".join(notes.values()))
    fig.update_layout(title=dict(text=title, font=dict(size=14), subtitle=dict(text=where, font=dict(size=11))),
                      height=250, margin=dict(l=10, r=10, t=55, b=10), plot_bgcolor="white", showlegend=False,
                      hovermode="closest")
    fig.update_xaxes(tickvals=steps, ticktext=shown, tickangle=-60, showgrid=False, zeroline=False,
                     range=[start - 0.8, start + len(tokens) - 0.2])
    fig.update_yaxes(visible=False, range=[-1.5 * DY, 1.5 * DY], fixedrange=True)
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
    return [GATE_NAMES[g] + (" †" if g in (notes or {}) else "") for g in gates]


def _title(title: str, gates: list[str], notes: dict[str, str] | None) -> dict:
    said = [f"† {notes[g]}" for g in gates if g in (notes or {})]
    return dict(text=title, font=dict(size=14), subtitle=dict(text=html.escape("; ".join(said)), font=dict(size=11)))


def _top(gates: list[str], notes: dict[str, str] | None) -> int:
    """Top margin: room for the subtitle above the panel titles when there is one."""
    return 95 if any(g in (notes or {}) for g in gates) else 70


def saturation_figure(layer: dict[str, np.ndarray], closed_below: float = 0.1, open_above: float = 0.9,
                      title: str = "", notes: dict[str, str] | None = None) -> go.Figure:
    """Karpathy et al. (2015) Fig. 3: one point per unit, one panel per gate; x: fraction of steps
    left-saturated, y: fraction right-saturated. Points near (0, 0) are gates that are rarely saturated; the
    dotted line x + y = 1 bounds them (a gate is never both). notes: gate -> what the subtitle says
    about it (a removed gate, the constant 1, sits at (0, 1) for every unit: permanently open)."""
    gates = sigmoid_gates(layer)
    fig = make_subplots(rows=1, cols=max(1, len(gates)), subplot_titles=_panel_titles(gates, notes),
                        shared_yaxes=True, horizontal_spacing=0.06)
    for k, name in enumerate(gates, start=1):
        left, right = saturation_fractions(layer[name], closed_below, open_above)
        fig.add_trace(go.Scatter(x=[0, 1], y=[1, 0], mode="lines", line=dict(dash="dot", color="#bbbbbb"),
                                 hoverinfo="skip", showlegend=False), row=1, col=k)
        fig.add_trace(go.Scatter(x=left, y=right, mode="markers", showlegend=False,
                                 marker=dict(size=6, opacity=0.6, color=run_colour(SIGMOID_GATES.index(name))),
                                 text=[f"unit {u}" for u in range(left.size)],
                                 hovertemplate="%{text}<br>closed %{x:.0%} · open %{y:.0%}<extra></extra>"),
                      row=1, col=k)
        fig.update_xaxes(title_text=f"left-saturated (< {closed_below:g})", range=[-0.03, 1.03], row=1, col=k)
    fig.update_yaxes(title_text=f"right-saturated (> {open_above:g})", range=[-0.03, 1.03], row=1, col=1)
    fig.update_layout(title=_title(title, gates, notes), height=320, margin=dict(MARGIN, t=_top(gates, notes)))
    return fig


def gate_histogram_figure(layer: dict[str, np.ndarray], closed_below: float = 0.1, open_above: float = 0.9,
                          title: str = "", notes: dict[str, str] | None = None) -> go.Figure:
    """One histogram per sigmoid gate of all its values (every step, every unit), with the thresholds;
    notes: as in saturation_figure. A value of exactly 1 (a saturated fp32 sigmoid, a removed gate)
    counts in the last bin."""
    gates = sigmoid_gates(layer)
    fig = make_subplots(rows=1, cols=max(1, len(gates)), subplot_titles=_panel_titles(gates, notes),
                        horizontal_spacing=0.06)
    for k, name in enumerate(gates, start=1):
        values = np.minimum(np.asarray(layer[name], dtype=float).ravel(), 1 - 1e-9)  # [0.975, 1) takes the 1s
        fig.add_trace(go.Histogram(x=values, xbins=dict(start=0, end=1, size=0.025),
                                   histnorm="probability", showlegend=False, marker_color="#555555"), row=1, col=k)
        for v in (closed_below, open_above):
            fig.add_vline(x=v, line=dict(dash="dot", color="#d62728", width=1), row=1, col=k)
        fig.update_xaxes(title_text="value", range=[0, 1], row=1, col=k)
    fig.update_yaxes(title_text="fraction of values", row=1, col=1)
    fig.update_layout(title=_title(title, gates, notes), height=300, margin=dict(MARGIN, t=_top(gates, notes)),
                      bargap=0.05)
    return fig


def state_over_time_figure(values: np.ndarray, tokens: list[str], name: str = "cell state c",
                           title: str = "") -> go.Figure:
    """values: (T, H). A box per time step of the H units' values, tokens along the bottom."""
    values = np.asarray(values, dtype=float)
    T, H = values.shape
    steps = np.repeat(np.arange(T), H)
    fig = go.Figure(go.Box(x=steps, y=values.ravel(), boxpoints=False, marker_color="#1f77b4", line=dict(width=1),
                           name=name, showlegend=False))
    ticks = np.arange(T) if T <= 60 else np.arange(0, T, int(np.ceil(T / 60)))
    shown = _escape(tokens)
    fig.update_xaxes(tickvals=ticks, ticktext=[shown[t] for t in ticks], tickangle=-60)
    fig.update_yaxes(title_text=name)
    fig.update_layout(title=dict(text=title, font=dict(size=14)), height=320, margin=dict(MARGIN, t=50))
    return fig

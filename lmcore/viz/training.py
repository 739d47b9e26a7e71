"""Plotly figure builders: data in, `go.Figure` out. No Streamlit here, so tests call them directly."""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from lmcore.viz.style import faded, fit_y_axis, outlier_ceiling, plain, run_colour

ZIPF_POINTS = 2000  # ranks drawn: evenly spaced on the log axis beyond this, so a big vocabulary stays light


def zipf_spec(counts: np.ndarray, title: str = "Rank–frequency (Zipf) plot") -> dict:
    """The Zipf plot as a Vega-Lite spec: the first page draws it without loading Plotly's 4.7 MB script.

    Token counts, most frequent first, on log–log axes, with the ideal 1/rank line for reference."""
    counts = np.asarray(counts, dtype=float)
    ranks = np.unique(np.geomspace(1, max(counts.size, 1), ZIPF_POINTS).astype(int)) if counts.size else np.array([], int)
    rows = [{"rank": int(r), "count": float(counts[r - 1]), "series": "corpus"} for r in ranks]
    rows += [{"rank": int(r), "count": float(counts[0] / r), "series": "f ∝ 1/rank"} for r in ranks]
    log = {"type": "log"}
    return {
        "title": title, "height": 330, "data": {"values": rows},
        "layer": [
            {"transform": [{"filter": "datum.series == 'corpus'"}], "mark": {"type": "point", "filled": True, "size": 14},
             "encoding": {"x": {"field": "rank", "type": "quantitative", "scale": log},
                          "y": {"field": "count", "type": "quantitative", "scale": log},
                          "color": {"field": "series", "type": "nominal", "title": None},
                          "tooltip": [{"field": "rank"}, {"field": "count"}]}},
            {"transform": [{"filter": "datum.series != 'corpus'"}], "mark": {"type": "line", "strokeDash": [2, 3]},
             "encoding": {"x": {"field": "rank", "type": "quantitative", "scale": log},
                          "y": {"field": "count", "type": "quantitative", "scale": log},
                          "color": {"field": "series", "type": "nominal", "title": None,
                                    "scale": {"range": ["#1f77b4", "grey"]}}}}]}


AXIS_NAMES = {"step": "training step", "epoch": "epoch", "wall_time": "wall time (s)",
              "valid_ppl": "validation perplexity", "train_loss": "training loss (nats/token)", "lr": "learning rate"}
MARKERS_UP_TO = 60  # points per run: beyond this, markers only clutter the line


def smooth(values, weight: float) -> np.ndarray:
    """TensorBoard's smoothing: an exponential moving average s_t = w s_{t-1} + (1 − w) v_t, divided by
    1 − w^t so the start is not pulled towards 0 (the first point equals the raw one). weight in [0, 1);
    non-finite values are kept as they are and skipped."""
    if not 0.0 <= weight < 1.0:
        raise ValueError(f"smoothing weight must be in [0, 1), got {weight}")
    out = np.array(values, dtype=float)
    average, norm = 0.0, 0.0
    for t, v in enumerate(out):
        if not np.isfinite(v):
            continue
        average = weight * average + (1 - weight) * v
        norm = weight * norm + (1 - weight)
        out[t] = average / norm
    return out


def _hover(label: str, config: str | None, x: str, y: str, smoothed: bool) -> dict:
    """Per-run hover: the run, the value (and the raw one under smoothing), the run's config.
    The run's own text travels in `meta`, so a "%{...}" in a run name is shown, not read as a field."""
    value = f"{AXIS_NAMES.get(y, y)} %{{y:.4~g}}" + (" (raw %{customdata:.4~g})" if smoothed else "")
    config_lines = "<br>".join(plain(line) for line in (config or "").splitlines())
    return dict(meta=[plain(label), config_lines],
                hovertemplate=f"%{{meta[0]}}<br>{value} at {AXIS_NAMES.get(x, x)} %{{x:.4~g}}"
                              + ("<br>%{meta[1]}" if config_lines else "") + "<extra></extra>")


def curves_figure(metrics: pd.DataFrame, labels: dict[int, str], x: str = "step", y: str = "valid_ppl",
                  baselines: dict[str, float] | None = None, log_y: bool = True, smoothing: float = 0.0,
                  configs: dict[int, str] | None = None, cut_outliers: bool = True, legend: bool = True) -> go.Figure:
    """One line per run of `y` against `x` from rows of the metrics table; baselines as dashed lines.

    Each run keeps its colour (run_colour of its id) on every page. smoothing > 0 draws TensorBoard's
    smoothed curve over the raw one, which stays faint in the same colour. The y range ignores outliers
    (a spike of one run does not squash the others) and the figure says how many points it leaves out;
    the smoothing skips those points too, so one spike does not carry a smoothed curve off the chart.
    configs: per run id, lines of "key: value" shown on hover. cut_outliers False: every point in range (a
    schedule, such as the lr, has no outliers). legend False: for a narrow figure beside others that name the runs."""
    fig = go.Figure()
    runs = {run_id: metrics[metrics["run_id"] == run_id].sort_values("step") if len(metrics) else metrics
            for run_id in labels}
    values = [rows[y].to_numpy(dtype=float) for rows in runs.values() if len(rows)]
    ceiling = outlier_ceiling(np.concatenate(values), log_y) if values and cut_outliers else None
    for run_id, rows in runs.items():
        xs = rows[x].to_numpy(dtype=float) if len(rows) else np.array([])
        raw = rows[y].to_numpy(dtype=float) if len(rows) else np.array([])
        raw = np.where(np.isfinite(raw), raw, np.nan)  # a blown-up value is a gap, not "Infinity"
        colour = run_colour(run_id)
        mode = "lines+markers" if len(rows) <= MARKERS_UP_TO else "lines"
        hover = _hover(labels[run_id], (configs or {}).get(run_id), x, y, smoothing > 0)
        if smoothing > 0:
            bulk = raw if ceiling is None else np.where(raw > ceiling, np.nan, raw)
            fig.add_trace(go.Scatter(x=xs, y=raw, mode="lines", line=dict(color=faded(colour, 0.3), width=1),
                                     legendgroup=str(run_id), showlegend=False, hoverinfo="skip"))
            fig.add_trace(go.Scatter(x=xs, y=smooth(bulk, smoothing), customdata=raw, mode=mode, connectgaps=True,
                                     name=plain(labels[run_id]), legendgroup=str(run_id),
                                     line=dict(color=colour, width=2), marker=dict(size=5), **hover))
        else:
            fig.add_trace(go.Scatter(x=xs, y=raw, mode=mode, name=plain(labels[run_id]), legendgroup=str(run_id),
                                     line=dict(color=colour), **hover))
    xs = metrics[x].dropna() if len(metrics) else pd.Series([0, 1])
    fig.update_layout(showlegend=legend)
    return _with_baselines(fig, xs, values, baselines, x, y, log_y, cut_outliers)


def _with_baselines(fig: go.Figure, xs: pd.Series, values: list, baselines: dict[str, float] | None, x: str, y: str,
                    log_y: bool, cut_outliers: bool = True) -> go.Figure:
    """The curves' common end: each baseline a dashed line across the x range, axis titles, the y range fitted."""
    kept = []
    first, last = (xs.min(), xs.max()) if xs.min() < xs.max() else (xs.min() - 0.5, xs.max() + 0.5)  # one x: a line
    for name, value in (baselines or {}).items():
        if value and np.isfinite(value):  # a trace, not add_hline: shapes on a log axis take log10 units
            kept.append(value)
            fig.add_trace(go.Scatter(x=[first, last], y=[value, value], mode="lines", name=plain(name),
                                     line=dict(dash="dash", color="grey"),
                                     meta=[plain(name)], hovertemplate="%{meta[0]}: %{y:.4~g}<extra></extra>"))
    fig.update_layout(xaxis_title=AXIS_NAMES.get(x, x), yaxis_title=AXIS_NAMES.get(y, y), height=380,
                      legend=dict(orientation="h", y=-0.2), margin=dict(l=40, r=10, t=30, b=40))
    fit_y_axis(fig, np.concatenate(values) if values else [], log_y, keep=kept, cut=cut_outliers)
    return fig


def group_curves_figure(curves: dict[str, pd.DataFrame], keys: dict[str, int], x: str = "epoch",
                        y: str = "valid_ppl", band: str = "std", baselines: dict[str, float] | None = None,
                        log_y: bool = True) -> go.Figure:
    """One line per seed group (the mean over its seeds) with a band: mean ± std, or min–max; a group of one seed
    is its line. curves: lmcore.runs.seeds.group_curves; keys: group label -> its first run id (its colour)."""
    fig = go.Figure()
    values = []
    for label, c in curves.items():
        colour = run_colour(keys.get(label, label))
        low, high = (c["mean"] - c["std"], c["mean"] + c["std"]) if band == "std" else (c["min"], c["max"])
        xs = c[x].to_numpy(dtype=float)
        values.append(c["mean"].to_numpy(dtype=float))
        spread = (c["n"] > 1).any()
        if spread and len(xs) > 1:  # mode lines: Plotly's default for a few points added stray coloured dots
            fig.add_trace(go.Scatter(x=np.concatenate([xs, xs[::-1]]),
                                     y=np.concatenate([high.to_numpy(float), low.to_numpy(float)[::-1]]),
                                     mode="lines", fill="toself", fillcolor=faded(colour, 0.18), line=dict(width=0),
                                     legendgroup=label, showlegend=False, hoverinfo="skip"))
        seeds = int(c["n"].max())
        name = plain(label) + (f" ({seeds} seeds)" if seeds > 1 else "")
        # one evaluation each (a 1-epoch sweep): no band to draw, so the spread is an error bar on the point
        bar = dict(type="data", symmetric=False, array=(high - c["mean"]).to_numpy(float),
                   arrayminus=(c["mean"] - low).to_numpy(float), color=colour) if spread and len(xs) == 1 else None
        fig.add_trace(go.Scatter(x=xs, y=c["mean"], mode="lines+markers" if len(xs) <= MARKERS_UP_TO else "lines",
                                 error_y=bar, name=name, legendgroup=label, line=dict(color=colour, width=2),
                                 customdata=np.stack([c["std"], c["min"], c["max"], c["n"]], axis=1),
                                 hovertemplate=f"{name}<br>mean %{{y:.4~g}} ± %{{customdata[0]:.3~g}} "
                                               "(min %{customdata[1]:.4~g}, max %{customdata[2]:.4~g}, "
                                               "%{customdata[3]} seeds)<extra></extra>"))
    xs_all = pd.concat([c[x] for c in curves.values()]) if curves else pd.Series([0, 1])
    return _with_baselines(fig, xs_all, values, baselines, x, y, log_y)

"""Figures for Markov against memory: agreement accuracy by distance, perplexity against context length."""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from lmcore.viz.style import MARGIN, fit_y_axis, plain, run_colour

SPARSE_ITEMS = 20  # fewer sentences than this at the longest distances are pooled into one point


def pool_sparse_tail(table: pd.DataFrame, min_items: int = SPARSE_ITEMS) -> pd.DataFrame:
    """One model's accuracy_by_distance with its sparse longest distances pooled: the distances at the far end with
    fewer than min_items sentences each become one point (with the distance before them too while they hold fewer
    than min_items together): one sentence at distance 25, right or wrong, is not an accuracy of 1 or 0. Adds
    `label` ("7"; "22+" for a pool, drawn at 22). A table of fewer than 2 × min_items sentences (a few typed ones)
    is left as it is; rows without a distance are kept."""
    known = table.dropna(subset=["distance"]).sort_values("distance").reset_index(drop=True)
    known["label"] = known["distance"].astype(int).astype(str)
    start = len(known)  # the pool is known[start:]
    while start > 0 and known["items"].iloc[start - 1] < min_items:
        start -= 1
    if start > 0 and known["items"].iloc[start:].sum() < min_items:
        start -= 1
    if len(known) - start > 1 and known["items"].sum() >= 2 * min_items:
        pool = known.iloc[start:]
        items = int(pool["items"].sum())
        row = dict(pool.iloc[0], items=items, label=f"{int(pool['distance'].iloc[0])}+",
                   accuracy=float((pool["accuracy"] * pool["items"]).sum() / items))
        known = pd.concat([known.iloc[:start], pd.DataFrame([row])], ignore_index=True)
    return pd.concat([known, table[table["distance"].isna()].assign(label="")], ignore_index=True)


def pooled_by_model(table: pd.DataFrame, min_items: int = SPARSE_ITEMS) -> pd.DataFrame:
    """pool_sparse_tail for each model of a table of several, in the models' order."""
    return pd.concat([pool_sparse_tail(rows, min_items) for _, rows in table.groupby("model", sort=False)],
                     ignore_index=True)


def accuracy_by_distance_wide(table: pd.DataFrame) -> pd.DataFrame:
    """One row per distance (pooled as the figures draw them), one column per model, and how many sentences each
    row holds (the most of any model: a model with a smaller vocabulary reads fewer)."""
    pooled = pooled_by_model(table).dropna(subset=["distance"])
    wide = pooled.pivot_table(index=["distance", "label"], columns="model", values="accuracy", sort=False).sort_index()
    wide.insert(0, "sentences", pooled.groupby(["distance", "label"])["items"].max().reindex(wide.index))
    return wide.reset_index(level="distance", drop=True).rename_axis("words between").reset_index()


DISTANCE_HOVER = "%{customdata[0]} words apart: %{y:.2f} over %{customdata[1]} sentences"  # customdata: label, items


def label_distances(fig: go.Figure, pooled: pd.DataFrame, note: str = "") -> None:
    """The x axis of distances: a tick per distance drawn, a pool marked "22+" (its hover says how many sentences)."""
    ticks = pooled.dropna(subset=["distance"]).drop_duplicates("distance").sort_values("distance")
    fig.update_xaxes(title="words between subject and verb" + note, tickvals=ticks["distance"].tolist(),
                     ticktext=ticks["label"].tolist())


def _colour(name: str, i: int, run_keys: dict[str, str] | None) -> str:
    """The run's own colour (the same on every page) when its key is known, else one by position."""
    return run_colour(run_keys[name]) if run_keys and name in run_keys else run_colour(f"#{i}")


def agreement_figure(table: pd.DataFrame, run_keys: dict[str, str] | None = None) -> go.Figure:
    """Accuracy (P(correct verb) > P(wrong verb)) against words between subject and verb, one line per model.
    run_keys: model name -> run key ("run:12", "demo:agreement-lstm"), for each run's fixed colour."""
    fig, pooled = go.Figure(), pooled_by_model(table)
    for i, (name, rows) in enumerate(pooled.groupby("model", sort=False)):
        rows = rows.dropna(subset=["distance"])
        is_ngram = not (run_keys and name in run_keys) and "gram" in name
        fig.add_trace(go.Scatter(x=rows["distance"], y=rows["accuracy"], mode="lines+markers", name=plain(name),
                                 line=dict(color="grey" if is_ngram else _colour(name, i, run_keys),
                                           dash="dash" if is_ngram else "solid"),
                                 customdata=rows[["label", "items"]],
                                 hovertemplate=DISTANCE_HOVER))
    fig.add_hline(y=0.5, line=dict(color="grey", dash="dot"), annotation_text="chance")
    label_distances(fig, pooled)
    fig.update_layout(yaxis_title="agreement accuracy",
                      yaxis_range=[0, 1.02], height=380, margin=MARGIN, legend=dict(orientation="h", y=-0.25))
    return fig


def context_figure(curves: dict[str, pd.DataFrame], baseline: float | None = None, baseline_name: str = "n-gram",
                   log_y: bool = False, run_keys: dict[str, str] | None = None) -> go.Figure:
    """Perplexity when the model sees only the last k tokens; "all" drawn as a dotted level per run.

    The y range ignores outliers (one model's 95,651 at k = 1 does not flatten the others and the n-gram
    line, which always stays in view); the figure says how many points it leaves out."""
    fig = go.Figure()
    values = []
    for i, (name, df) in enumerate(curves.items()):
        colour = _colour(name, i, run_keys)
        limited = df[df["context"] != "all"]
        ppl = limited["ppl"].to_numpy(dtype=float)
        values.append(ppl)
        fig.add_trace(go.Scatter(x=limited["tokens"], y=np.where(np.isfinite(ppl), ppl, np.nan), mode="lines+markers",
                                 name=plain(name), line=dict(color=colour), legendgroup=str(i),
                                 hovertemplate="k = %{x}: perplexity %{y:,.4g}<extra></extra>"))
        full = df[df["context"] == "all"]["ppl"]
        if len(full):
            values.append(full.to_numpy(dtype=float))
            fig.add_trace(go.Scatter(x=[limited["tokens"].min(), limited["tokens"].max()], y=[full.iloc[0]] * 2,
                                     mode="lines", name=plain(f"{name}: all context"), legendgroup=str(i),
                                     line=dict(color=colour, dash="dot"),
                                     hovertemplate="all context: perplexity %{y:,.4g}<extra></extra>"))
    if baseline is not None:
        xs = pd.concat([df[df["context"] != "all"]["tokens"] for df in curves.values()]) if curves else pd.Series([1, 200])
        fig.add_trace(go.Scatter(x=[xs.min(), xs.max()], y=[baseline] * 2, mode="lines", name=plain(baseline_name),
                                 line=dict(color="grey", dash="dash"),
                                 hovertemplate="%{y:,.4g}<extra>" + plain(baseline_name) + "</extra>"))
    ks = sorted({int(k) for df in curves.values() for k in df.loc[df["context"] != "all", "tokens"]})
    fig.update_xaxes(type="log", title="tokens of context the model may see", tickvals=ks or None,
                     ticktext=[str(k) for k in ks] or None)  # the k measured, not Plotly's 2 3 4 … 9 per decade
    fig.update_layout(yaxis_title="validation perplexity", height=380, margin=dict(MARGIN, t=30),
                      legend=dict(orientation="h", y=-0.25))
    fit_y_axis(fig, np.concatenate(values) if values else [], log_y, keep=[baseline] if baseline is not None else ())
    return fig

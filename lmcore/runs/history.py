"""Every run of a data folder as one table, newest first: what the Train page lists whoever started the run."""
from __future__ import annotations

import math
import time

import pandas as pd

from lmcore.nn.architectures import model_name
from lmcore.runs.catalog import corpus_name, run_name

HISTORY_COLUMNS = ["run", "name", "model", "tags", "status", "corpus", "progress", "best valid ppl", "test ppl",
                   "started", "note"]


def _finite_or_nan(value) -> float:
    return float(value) if value is not None and math.isfinite(value) else math.nan


def _when(started: float | None, now: float) -> str:
    """'3 min ago' for recent starts, the date and time for older ones; '' for a run still queued."""
    if not started:
        return ""
    ago = now - started
    if ago < 60:
        return "just now"
    if ago < 3600:
        return f"{ago // 60:.0f} min ago"
    if ago < 86400:
        return f"{ago // 3600:.0f} h ago"
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(started))


def history_table(runs: list[dict], now: float | None = None) -> pd.DataFrame:
    """One row per store row (as RunStore.list_runs gives them), newest first; missing numbers stay NaN."""
    now = time.time() if now is None else now
    rows = []
    for run in sorted(runs, key=lambda r: r.id, reverse=True):
        cfg = run.cfg
        total = run.total_steps or 0
        rows.append({"run": run.id, "name": run_name(run), "model": model_name(cfg.model, size=True),
                     "tags": ", ".join(run.tags), "status": run.status + (" (archived)" if run.archived else ""),
                     "corpus": f"{corpus_name(run.corpus_source)} · {cfg.corpus.tokenizer}",
                     "progress": min(1.0, run.step / total) if total else 0.0,
                     "best valid ppl": _finite_or_nan(run.best_valid_ppl),
                     "test ppl": _finite_or_nan(run.test_ppl),
                     "started": _when(run.started_at or run.created_at, now), "note": run.note})
    return pd.DataFrame(rows, columns=HISTORY_COLUMNS)

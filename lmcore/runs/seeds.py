"""Runs that differ only by their seed, taken as one group: the comparison the seed cannot fake.

At these sizes the seed moves perplexity by more than the gap between models, so Compare shows a group's mean
± std (and its curves as a band) and says when two groups are closer than their seeds' spread: "within seed
noise" when |mean_a − mean_b| ≤ max(std_a, std_b), a difference a reseeding could undo (unknown with one seed).
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd

from lmcore.runs.store import Run


def seed_key(run: Run) -> str:
    """What a run's config says apart from its seed and name: equal keys, one group."""
    d = run.cfg.to_dict()
    d.pop("name", None)
    d["train"] = {k: v for k, v in d["train"].items() if k not in ("seed", "threads", "device")}
    return json.dumps(d, sort_keys=True, default=str)


@dataclass
class SeedGroup:
    label: str              # the first run's name: "LSTM 1×200"
    run_ids: list[int]      # in the order given
    seeds: list[int]

    @property
    def size(self) -> int:
        return len(self.run_ids)

    @property
    def distinct_seeds(self) -> list[int]:
        """Each seed once, in the order of its first run: two runs of one seed (a repeat) are one seed."""
        return list(dict.fromkeys(self.seeds))

    def per_seed(self, values: pd.Series) -> pd.Series:
        """Values indexed by run id (some may be missing) as one value per seed: the mean of that seed's runs."""
        seed_of = dict(zip(self.run_ids, self.seeds))
        values = values.dropna()
        return values.groupby([seed_of[i] for i in values.index], sort=False).mean()


def seed_groups(runs: list[Run]) -> list[SeedGroup]:
    """The runs grouped by seed_key, in the order of each group's first run; a label shared by two different
    groups gets the run id of its first run ("LSTM 1×200 (#4)")."""
    groups: dict[str, SeedGroup] = {}
    for run in runs:
        key = seed_key(run)
        if key not in groups:
            groups[key] = SeedGroup(run.cfg.label(), [], [])
        groups[key].run_ids.append(run.id)
        groups[key].seeds.append(run.cfg.train.seed)
    for g in groups.values():  # a sweep names each run "LSTM 1×64 seed 1": the group is every seed's
        if len(g.distinct_seeds) > 1:
            g.label = g.label.replace(f" seed {g.seeds[0]}", "", 1)
    taken: dict[str, int] = {}
    for g in groups.values():
        taken[g.label] = taken.get(g.label, 0) + 1
    for g in groups.values():
        if taken[g.label] > 1:
            g.label = f"{g.label} (#{g.run_ids[0]})"
    return list(groups.values())


def group_table(table: pd.DataFrame, groups: list[SeedGroup], metrics=("best valid ppl", "test ppl")) -> pd.DataFrame:
    """One row per group from a table with one row per run ("run" column): runs, seeds, parameters and each
    metric's mean, std, min and max over the group's finished seeds (std needs two; runs of one seed count once,
    as their mean)."""
    rows = []
    by_run = table.set_index("run")
    for g in groups:
        part = by_run.loc[[i for i in g.run_ids if i in by_run.index]]
        row = {"group": g.label, "runs": g.size, "seeds": ", ".join(map(str, g.distinct_seeds)),
               "parameters": part["parameters"].dropna().iloc[0] if part["parameters"].notna().any() else None}
        for m in metrics:
            values = g.per_seed(pd.to_numeric(part[m], errors="coerce"))  # n counts seeds, not repeats of one
            row.update({f"{m} mean": values.mean() if len(values) else None,
                        f"{m} std": values.std() if len(values) > 1 else None,
                        f"{m} min": values.min() if len(values) else None,
                        f"{m} max": values.max() if len(values) else None, f"{m} n": len(values)})
        rows.append(row)
    return pd.DataFrame(rows)


def _unknown(*values) -> bool:
    """Whether any of these (a mean, a std) is missing: None or NaN (a group of one seed has no std)."""
    return any(v is None or (isinstance(v, float) and np.isnan(v)) for v in values)


def within_noise(a_mean, a_std, b_mean, b_std) -> bool | None:
    """Whether two groups' difference is within their seeds' spread; None when either lacks a spread."""
    if _unknown(a_mean, a_std, b_mean, b_std):
        return None
    return abs(a_mean - b_mean) <= max(a_std, b_std)


def noise_marks(groups: pd.DataFrame, metric: str = "best valid ppl") -> list[str]:
    """For each group row, against the best group (lowest mean): "best", "within seed noise of the best",
    "apart from the best", or "one seed: spread unknown"."""
    means, stds = groups[f"{metric} mean"], groups[f"{metric} std"]
    if means.dropna().empty:
        return [""] * len(groups)
    best = means.astype(float).idxmin()
    marks = []
    for i in groups.index:
        if i == best:
            marks.append("best")
            continue
        close = within_noise(means[i], stds[i], means[best], stds[best])
        one_seed = "one seed: spread unknown" if _unknown(means[i], stds[i]) else \
            "the best has one seed: spread unknown"
        marks.append(one_seed if close is None else
                     "within seed noise of the best" if close else "apart from the best")
    return marks


def mean_pm(mean, std, n: int, digits: int = 2) -> str:
    """"67.90 ± 0.61 (3 seeds)", or "67.90" for one seed."""
    if mean is None or (isinstance(mean, float) and np.isnan(mean)):
        return ""
    if n < 2 or std is None or np.isnan(std):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f} ({n} seeds)"


def group_curves(metrics: pd.DataFrame, groups: list[SeedGroup], x: str, y: str) -> dict[str, pd.DataFrame]:
    """Per group, the y of its runs at each x value they share (rounded to 1e-6): columns x, mean, std, min, max,
    n (how many seeds reached that x)."""
    out = {}
    for g in groups:
        part = metrics[metrics["run_id"].isin(g.run_ids)][["run_id", x, y]].dropna()
        if part.empty:
            continue
        seed_of = dict(zip(g.run_ids, g.seeds))
        part = part.assign(_x=part[x].astype(float).round(6), _seed=part["run_id"].map(seed_of))
        part = part.groupby(["_x", "_seed"], sort=False)[y].mean().reset_index()  # a seed's repeats: one curve
        stats = part.groupby("_x")[y].agg(["mean", "std", "min", "max", "count"]).reset_index()
        stats.columns = [x, "mean", "std", "min", "max", "n"]
        out[g.label] = stats.fillna({"std": 0.0})
    return out


def summary_table(table: pd.DataFrame, groups: list[SeedGroup], band: str = "std") -> pd.DataFrame:
    """What Compare shows for groups: one row per group, each perplexity as "mean ± std (n seeds)" (band "std") or
    "mean (min–max, n seeds)" (band "range"), the group's size and seeds, and where it stands against the best."""
    stats = group_table(table, groups)
    marks = noise_marks(stats)
    rows = []
    for (_, s), mark in zip(stats.iterrows(), marks):
        row = {"group": s["group"], "runs": s["runs"], "seeds": s["seeds"], "parameters": s["parameters"]}
        for m, shown in (("best valid ppl", "valid ppl"), ("test ppl", "test ppl")):
            n = int(s[f"{m} n"])
            if band == "range" and n > 1:
                row[shown] = f"{s[f'{m} mean']:.2f} ({s[f'{m} min']:.2f}–{s[f'{m} max']:.2f}, {n} seeds)"
            else:
                row[shown] = mean_pm(s[f"{m} mean"], s[f"{m} std"], n)
        row["against the best"] = mark
        rows.append(row)
    return pd.DataFrame(rows)


def lecture_rows(lecture: pd.DataFrame, groups: list[SeedGroup]) -> pd.DataFrame:
    """The lecture's perplexity table (one row per run, with its "run" id) folded into one row per seed group:
    its perplexity the mean, with "± std" and the number of seeds; rows without a run (the baseline) kept."""
    of_run = {run_id: g for g in groups for run_id in g.run_ids}
    rows, done = [], set()
    for _, row in lecture.iterrows():
        group = of_run.get(row.get("run"))
        if group is None:
            rows.append({**row.to_dict(), "± std": None, "seeds": None})
            continue
        if group.label in done:
            continue
        done.add(group.label)
        part = lecture[lecture["run"].isin(group.run_ids)]
        values = group.per_seed(pd.to_numeric(part.set_index("run")["perplexity"], errors="coerce"))
        rows.append({**row.to_dict(), "perplexity": round(values.mean(), 1) if len(values) else None,
                     "± std": round(values.std(), 1) if len(values) > 1 else None, "seeds": len(values)})
    out = pd.DataFrame(rows)
    return out.sort_values("perplexity", na_position="last").reset_index(drop=True)

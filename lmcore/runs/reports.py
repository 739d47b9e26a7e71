"""Tables the pages and the CLI show, built from the corpus and the run store."""
from __future__ import annotations

import math
import re
import time

import pandas as pd

from lmcore.corpus.dataset import spec_fingerprint
from lmcore.corpus.report import bits_per
from lmcore.ngram import cached_baseline
from lmcore.nn.architectures import model_name
from lmcore.runs.catalog import corpus_name, run_name
from lmcore.runs.store import Run
from lmcore.training.stopping import CUT_SHORT

COMPARE_COLUMNS = ("run", "name", "tags", "architecture", "layers", "units", "parameters", "best valid ppl",
                   "test ppl", "optimizer", "lr", "final lr", "tokens/s", "training time (s)", "device", "status",
                   "corpus", "note")


def run_summary(run: dict) -> str:
    """A run's whole configuration in a few "key: value" lines (a curve's hover): model, sizes, training."""
    cfg = run.cfg
    m, t = cfg.model, cfg.train
    params = f" · {run.params:,} parameters" if run.params else ""
    extras = ", ".join(x for x in (f"dropout {m.dropout:g}" if m.dropout else "", "tied" if m.tied else "",
                                   "" if m.bias else "no bias") if x)
    clip = f"clip {t.clip:g}" if t.clip else "no clipping"
    return "\n".join([
        f"model: {model_name(m)} · {m.layers} layer{'s' if m.layers > 1 else ''} × {m.hidden} units · "
        f"embedding {m.emb}{params}" + (f" ({extras})" if extras else ""),
        f"training: {t.optimizer} lr {t.lr:g} (÷ {t.lr_decay:g} on a plateau) · {clip} · τ {t.bptt} · "
        f"batch {t.batch} · {t.epochs} epoch{'s' if t.epochs > 1 else ''} · seed {t.seed}",
        f"corpus: {corpus_name(cfg.corpus.source)} · {cfg.corpus.tokenizer} · min count {cfg.corpus.min_count}",
        f"status: {run.status}" + (f" on {run.device}" if run.device else "")])


_NOT_FINITE = ((re.compile(r"(?<![\w.])-?(inf|infinity)(?![\w])", re.IGNORECASE), "∞"),
               (re.compile(r"(?<![\w.])nan(?![\w])", re.IGNORECASE), "not a number"))


def cut_short(run) -> bool:
    """A done run that its max-steps or time budget ended before its epochs (its message says how far it got)."""
    return run.status == "done" and run.message.startswith(CUT_SHORT)


def readable_message(message: str | None) -> str:
    """A run's message for people: Python's "inf" and "nan" (a loss that blew up) written as ∞ and "not a
    number"; nothing for none."""
    text = message or ""
    for pattern, word in _NOT_FINITE:
        text = pattern.sub(word, text)
    return text


def best_runs(runs: list[Run]) -> dict[str, dict]:
    """The lowest finite validation perplexity among runs that finished ("done"), per architecture family as the
    Gates page groups them ("elman" holds the IRNN too; "ffnn" the feedforward models), and overall among the
    recurrent ones ("all": the run the inspection pages of hidden states, gates and gradients open on; the
    feedforward model carries no state through time, so it has none of those)."""
    best: dict[str, dict] = {}
    for run in runs:
        ppl = _finite(run.best_valid_ppl)
        if run.status != "done" or ppl is None:
            continue
        m = run.cfg.model
        family = "elman" if m.arch in ("elman", "irnn") else m.arch
        for group in ("all", family) if m.recurrent else (family,):
            if group not in best or ppl < best[group]["best_valid_ppl"]:
                best[group] = run
    return best


def _finite(value: float | None) -> float | None:
    """A perplexity that overflowed (a run that blew up) is shown as missing, never as 'Infinity'."""
    return value if value is not None and math.isfinite(value) else None


def _believable(run: dict, key: str) -> float | None:
    """A run's perplexity, missing when it overflowed or is over BLOWN_UP uniform guesses (a run that blew
    up: 7e36 says nothing more than its status "diverged" does, and no column is wide enough for it)."""
    value = _finite(run[key])
    if value is not None and run.vocab and value > BLOWN_UP * run.vocab:
        return None
    return value


def final_lr(metrics: pd.DataFrame) -> dict[int, float]:
    """Each run's learning rate at its latest evaluation (the schedule divides it when validation stalls)."""
    if not len(metrics):
        return {}
    return metrics.sort_values("step").groupby("run_id")["lr"].last().to_dict()


def compare_table(runs: list[Run], metrics: pd.DataFrame | None = None) -> pd.DataFrame:
    """metrics: the runs' evaluation rows (metrics_frame), for the lr each run ended with."""
    lr_now = final_lr(metrics) if metrics is not None else {}
    rows = []
    for run in runs:
        cfg = run.cfg
        ended = run.finished_at or time.time()
        rows.append({"run": run.id, "name": run_name(run), "tags": ", ".join(run.tags), "note": run.note,
                     "architecture": model_name(cfg.model),
                     "layers": cfg.model.layers, "units": cfg.model.hidden, "parameters": run.params,
                     "best valid ppl": _believable(run, "best_valid_ppl"), "test ppl": _believable(run, "test_ppl"),
                     "optimizer": cfg.train.optimizer, "lr": cfg.train.lr, "final lr": lr_now.get(run.id),
                     "tokens/s": run.tokens_per_s,
                     "training time (s)": round(ended - run.started_at, 1) if run.started_at else None,
                     "device": run.device, "status": run.status, "corpus": corpus_name(run.corpus_source)})
    return pd.DataFrame(rows, columns=list(COMPARE_COLUMNS))


def add_bits(table: pd.DataFrame, specs: list, sizes_for) -> pd.DataFrame:
    """The table with each row's validation perplexity also as bits per character and per word of the validation
    text, comparable between tokenizers (lmcore.corpus.report.text_sizes). specs: each row's CorpusSpec, in the
    table's order (the runs', then distinct_specs' for the baseline rows); sizes_for(spec) -> text_sizes(spec)."""
    per_char, per_word = [], []
    for spec, ppl in zip(specs, table["best valid ppl"]):
        sizes = sizes_for(spec)["valid"] if spec is not None else {}
        ppl = None if pd.isna(ppl) else float(ppl)
        per_char.append(bits_per(ppl, sizes, "chars"))
        per_word.append(bits_per(ppl, sizes, "words"))
    return table.assign(**{"valid bits/char": per_char, "valid bits/word": per_word})


def distinct_specs(runs: list[Run]) -> list:
    """The runs' corpus specs, each once, in the order of the runs (the baseline's rows, one per spec)."""
    seen, specs = set(), []
    for run in runs:
        key = spec_fingerprint(run.cfg.corpus)
        if key not in seen:
            seen.add(key)
            specs.append(run.cfg.corpus)
    return specs


def mixed_tokenizers(specs) -> bool:
    """Whether these corpus specs split text into different tokens (char against word): then perplexities are
    per different units and only bits per character or word compare them."""
    return len({spec.tokenizer for spec in specs if spec is not None}) > 1


def baseline_rows(store, runs: list[Run], order: int = 3) -> pd.DataFrame:
    """One Kneser–Ney row per distinct corpus spec among the runs (computed once, kept in the store)."""
    rows = []
    for spec in distinct_specs(runs):
        b = cached_baseline(store, spec, order)
        rows.append({"run": None, "name": f"Kneser–Ney {order}-gram", "architecture": f"{order}-gram (KN)",
                     "layers": None, "units": None, "parameters": None, "best valid ppl": b["valid_ppl"],
                     "test ppl": b["test_ppl"], "tokens/s": None, "training time (s)": round(b["seconds"], 1),
                     "device": "cpu", "status": "baseline", "corpus": corpus_name(spec.source)})
    return pd.DataFrame(rows, columns=list(COMPARE_COLUMNS))


def metrics_frame(store, run_ids: list[int]) -> pd.DataFrame:
    cols = ["run_id", "step", "epoch", "lr", "train_loss", "valid_loss", "valid_ppl", "tokens_per_s", "wall_time"]
    return pd.DataFrame(store.metrics(run_ids), columns=cols)



def lecture_table(runs: list[Run], baseline: pd.DataFrame | None = None) -> pd.DataFrame:
    """The perplexity table of Le et al. (2015) as the lecture shows it, from the user's runs:
    method, units, layers, parameters, perplexity (test where known, else best validation), and the run's id
    (none for the baseline: seeds.lecture_rows folds a seed group into one row by it). A feedforward
    run is a row like the others, its window said (the lecture before's model, between the n-gram and the RNN)."""
    rows = []
    for run in runs:
        cfg = run.cfg
        m = cfg.model
        method = f"{model_name(m)} ({m.layers} layer{'s' if m.layers > 1 else ''}, {m.hidden} units" + \
            (f", a window of {m.window - 1} words)" if not m.recurrent else ")")  # "FFNN n=5 (1 layer, 200 units, …)"
        ppl = _believable(run, "test_ppl") if run.test_ppl is not None else _believable(run, "best_valid_ppl")
        rows.append({"method": method, "units": m.hidden, "layers": m.layers, "parameters": run.params,
                     "perplexity": None if ppl is None else round(ppl, 1),
                     "split": "test" if run.test_ppl is not None else "valid", "run": run.id})
    if baseline is not None:
        for _, b in baseline.iterrows():
            rows.append({"method": b["name"], "units": None, "layers": None, "parameters": None,
                         "perplexity": round(b["test ppl"], 1), "split": "test", "run": None})
    table = pd.DataFrame(rows, columns=["method", "units", "layers", "parameters", "perplexity", "split", "run"])
    return table.sort_values("perplexity", na_position="last").reset_index(drop=True)


LE_2015 = pd.DataFrame([("LSTM (512 units)", 68.8), ("IRNN (4 layers, 512 units)", 69.4),
                        ("IRNN (1 layer, 1024 units + linear projection)", 70.2),
                        ("RNN (4 layers, 512 tanh units)", 71.8),
                        ("RNN (1 layer, 1024 tanh units + linear projection)", 72.5)],
                       columns=["method", "perplexity"])


# --- sweeps (Greff et al. 2016's comparisons) ------------------------------------------------------
# A finished run whose perplexity is over this many times a uniform guess's (the vocabulary size) blew up
# though its numbers stayed finite (an LSTM without output activation reached 1e240 once): it is shown
# as "blew up" and kept out of the summaries, where one such number would swamp (or overflow) the mean.
BLOWN_UP = 10

SWEEP_COLUMNS = ("run", "model", "setting", "arch", "variant", "hidden", "lr", "seed", "parameters",
                 "best valid ppl", "test ppl", "status")


def sweep_table(runs: list[Run]) -> pd.DataFrame:
    """One row per run of a sweep: its model, its setting (the hyperparameters other than the model and the
    seed, e.g. "1×64 lr 20"), seed, parameters and perplexities. Ordered as the grid was."""
    rows = []
    for run in runs:
        cfg = run.cfg
        m, t = cfg.model, cfg.train
        rows.append({"run": run.id, "model": model_name(m), "setting": f"{m.layers}×{m.hidden} lr {t.lr:g}",
                     "arch": m.arch, "variant": m.variant if m.arch == "lstm" else m.gru_convention if m.arch == "gru"
                     else "", "hidden": m.hidden, "lr": t.lr, "seed": t.seed, "parameters": run.params,
                     "best valid ppl": run.best_valid_ppl, "test ppl": run.test_ppl, "status": _status(run)})
    return pd.DataFrame(rows, columns=list(SWEEP_COLUMNS))


def _status(run: dict) -> str:
    ppl = [p for p in (run.best_valid_ppl, run.test_ppl) if p is not None]
    if run.status == "done" and run.vocab and any(p > BLOWN_UP * run.vocab for p in ppl):
        return "blew up"
    return run.status


def sweep_summary(table: pd.DataFrame, metric: str = "test ppl") -> pd.DataFrame:
    """Per model and setting: runs finished, mean / std / min / max of the metric over seeds, parameters."""
    done = table[table["status"] == "done"].dropna(subset=[metric])
    cols = ["model", "setting", "runs", "parameters", f"mean {metric}", f"std {metric}", f"min {metric}",
            f"max {metric}"]
    if done.empty:
        return pd.DataFrame(columns=cols)
    g = done.groupby(["model", "setting"], sort=False)
    out = g.agg(runs=(metric, "size"), parameters=("parameters", "first"), mean=(metric, "mean"),
                std=(metric, "std"), min=(metric, "min"), max=(metric, "max")).reset_index()
    out.columns = cols
    return out


def change_from_reference(table: pd.DataFrame, metric: str = "test ppl", reference: str = "LSTM") -> pd.DataFrame:
    """Greff's comparison: for each run, metric − the reference model's metric with the same seed and setting;
    then per model and setting the mean ± std of that difference over seeds (positive: worse than the
    reference). Seeds the reference lacks (not done) are left out, and counted in "seeds"."""
    cols = ["model", "setting", "seeds", f"mean Δ {metric}", f"std Δ {metric}", f"mean {metric}"]
    done = table[table["status"] == "done"].dropna(subset=[metric])
    ref = done[done["model"] == reference].set_index(["setting", "seed"])[metric]
    rows = []
    for (model, setting), group in done.groupby(["model", "setting"], sort=False):
        keys = list(zip(group["setting"], group["seed"]))
        deltas = [v - ref[k] for v, k in zip(group[metric], keys) if k in ref.index]
        s = pd.Series(deltas, dtype=float)
        rows.append({"model": model, "setting": setting, "seeds": len(deltas),
                     f"mean Δ {metric}": s.mean() if len(s) else None,
                     f"std Δ {metric}": s.std() if len(s) > 1 else None, f"mean {metric}": group[metric].mean()})
    return pd.DataFrame(rows, columns=cols)

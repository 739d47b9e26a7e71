"""The lecture's claims, measured on the Train page's default lineup: does the app teach what the lecture says?

For each seed: the default lineup (lecture RNN, LSTM, GRU), built by `presets.run_config` exactly as the
Train page builds it, is queued in a fresh run store and trained through the real job queue (one process a
run, the default number of parallel slots); the lineup's wall time runs from the click's equivalent
(submit) to the last run's end. Then each claim is checked on the trained runs:

- neural vs n-gram: LSTM and GRU below the Kneser–Ney 3-gram (validation perplexity, same vocabulary);
- gated vs simple: LSTM and GRU below the lecture's σ-RNN;
- GRU vs LSTM: fewer parameters and a perplexity within 10% of the LSTM's;
- gradient decay: ‖∂ℓ_t/∂h_{t−k}‖ of the LSTM at least 10× the σ-RNN's at k = 20 (also shown at k = 10, 50),
  measured as the Gradients page measures it (the last epoch's weights, the validation text);
- long-range agreement: the same lineup on the built-in agreement corpus (the page's recipe for that corpus,
  presets.CORPUS_RECIPES); accuracy on validation items whose verb is 4 or more words from its subject: LSTM
  and GRU at least 0.75 and 0.1 above both the σ-RNN and the 3-gram (which cannot see that far back);
- context use: the LSTM's perplexity with 50 tokens of context below that with 5.

    python benchmarks/bench_lecture_claims.py                 # seeds 1111 1112 1113
    python benchmarks/bench_lecture_claims.py --seeds 1111    # one seed, about 6 minutes
Run it on an otherwise idle machine: the wall time is one of the claims (≤ 240 s on 2 cores).
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
import _checkout  # noqa: E402,F401 -- lmcore from this checkout, huge pages as lmcore's processes (first)

from lmcore.corpus.dataset import CorpusSpec  # noqa: E402
from lmcore.corpus.loading import load_corpus  # noqa: E402
from lmcore.inspect.gradients import loss_gradient_decay  # noqa: E402
from lmcore.inspect.memory import agreement_items, context_perplexity, lm_margins, ngram_margins, usable  # noqa: E402
from lmcore.ngram import (
    KneserNeyLM,  # noqa: E402
    cached_baseline,  # noqa: E402
)
from lmcore.runs import service  # noqa: E402
from lmcore.runs.catalog import store_runs, training_checkpoints  # noqa: E402
from lmcore.runs.store import RunStore  # noqa: E402
from lmcore.training.checkpoints import load_checkpoint  # noqa: E402
from lmcore.training.presets import DEFAULT_LINEUP, default_lineup  # noqa: E402

WALL_LIMIT_S = 240.0
FAR = 4  # words between subject and verb that a 3-gram cannot bridge


def train_lineup(home: Path, spec: CorpusSpec, seed: int, **train) -> tuple[dict[str, dict], float]:
    """The default lineup on `spec`, through the job queue; {preset: run row} and the wall time."""
    corpus = load_corpus(spec)
    store = RunStore(home)
    configs = default_lineup(spec, len(corpus.vocab), corpus.train.size, seed=seed, **train)
    t0 = time.perf_counter()
    ids = service.queue(store, configs, start=False)
    service.pump(store)
    runs = service.wait_for(store, ids, timeout=1800, poll=0.5)
    wall = time.perf_counter() - t0
    bad = [f"#{r['id']} {r['status']}: {r['message']}" for r in runs if r["status"] != "done"]
    if bad:
        raise SystemExit("a run did not finish: " + "; ".join(bad))
    return dict(zip(DEFAULT_LINEUP, runs)), wall


def last_epoch_model(store: RunStore, run: dict):
    ref = next(r for r in store_runs(store) if r.key == f"run:{run['id']}")
    return load_checkpoint(training_checkpoints(store, ref)[-1][1])[0]


def docs_claims(home: Path, seed: int) -> dict:
    spec = CorpusSpec()
    runs, wall = train_lineup(home, spec, seed)
    store, corpus = RunStore(home), load_corpus(spec)
    kn = cached_baseline(store, spec, 3)["valid_ppl"]  # the row Compare shows
    ppl = {name: run["best_valid_ppl"] for name, run in runs.items()}
    params = {name: run["params"] for name, run in runs.items()}
    models = {name: last_epoch_model(store, run) for name, run in runs.items()}
    ids = corpus.valid[:5000]
    decay = {name: loss_gradient_decay(models[name], ids, K=50, positions=32).mean for name in ("lecture RNN", "LSTM")}
    context = context_perplexity(models["LSTM"], corpus.valid, lengths=(5, 50), max_targets=5000)
    context = dict(zip(context["context"], context["ppl"]))
    return {"wall_s": wall, "kn3": kn, "ppl": ppl, "params": params,
            "decay": {k: {name: float(curve[k]) for name, curve in decay.items()} for k in (10, 20, 50)},
            "context": {"5": context["5"], "50": context["50"]}}


def agreement_claims(home: Path, seed: int) -> dict:
    spec = CorpusSpec(source="builtin:agreement")
    runs, wall = train_lineup(home, spec, seed)
    store, corpus = RunStore(home), load_corpus(spec)
    items = [it for it in usable(agreement_items(), corpus.vocab) if it.distance is not None and it.distance >= FAR]
    kn = KneserNeyLM(3).fit(corpus.train, len(corpus.vocab))
    accuracy = {"3-gram": float((ngram_margins(kn, corpus.vocab, items) > 0).mean())}
    for name, run in runs.items():
        model = load_checkpoint(Path(store.checkpoints(run["id"])["best"]["path"]))[0]
        accuracy[name] = float((lm_margins(model, corpus.vocab, items) > 0).mean())
    return {"wall_s": wall, "items": len(items), "accuracy": accuracy}


def judge(d: dict, a: dict) -> list[tuple[str, str, bool]]:
    """(claim, measured, holds) for one seed."""
    p, kn = d["ppl"], d["kn3"]
    rnn, lstm, gru = p["lecture RNN"], p["LSTM"], p["GRU"]
    dec, acc, ctx = d["decay"], a["accuracy"], d["context"]
    ratio = {k: dec[k]["LSTM"] / max(dec[k]["lecture RNN"], 1e-300) for k in dec}
    return [
        ("LSTM and GRU below the KN 3-gram", f"LSTM {lstm:.1f}, GRU {gru:.1f}, KN3 {kn:.1f}", max(lstm, gru) < kn),
        ("LSTM and GRU below the σ-RNN", f"LSTM {lstm:.1f}, GRU {gru:.1f}, σ-RNN {rnn:.1f}", max(lstm, gru) < rnn),
        ("GRU: fewer parameters", f"GRU {d['params']['GRU']:,}, LSTM {d['params']['LSTM']:,}",
         d["params"]["GRU"] < d["params"]["LSTM"]),
        ("GRU within 10% of the LSTM", f"GRU/LSTM = {gru / lstm:.3f}", abs(gru / lstm - 1) <= 0.10),
        ("gradient at k=20: LSTM ≥ 10× σ-RNN",
         " · ".join(f"k={k}: {dec[k]['LSTM']:.2g} vs {dec[k]['lecture RNN']:.2g} ({ratio[k]:.2g}×)" for k in dec),
         ratio[20] >= 10),
        (f"agreement at ≥{FAR} words: LSTM, GRU above σ-RNN and 3-gram",
         ", ".join(f"{n} {v:.2f}" for n, v in acc.items()) + f" ({a['items']} items)",
         min(acc["LSTM"], acc["GRU"]) >= max(0.75, acc["lecture RNN"] + 0.1, acc["3-gram"] + 0.1)),
        ("LSTM uses context: ppl(50 tokens) < ppl(5)", f"{ctx['50']:.1f} vs {ctx['5']:.1f}", ctx["50"] < ctx["5"]),
        (f"lineup wall time ≤ {WALL_LIMIT_S:.0f} s", f"{d['wall_s']:.0f} s (agreement lineup {a['wall_s']:.0f} s)",
         d["wall_s"] <= WALL_LIMIT_S),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1111, 1112, 1113])
    parser.add_argument("--json", default=None, help="also write every measurement to this file")
    args = parser.parse_args()
    results, verdicts = [], []
    for seed in args.seeds:
        with tempfile.TemporaryDirectory(prefix="lecture-claims-") as home:
            d = docs_claims(Path(home) / "docs", seed)
            a = agreement_claims(Path(home) / "agreement", seed)
        rows = judge(d, a)
        results.append({"seed": seed, "docs": d, "agreement": a})
        verdicts.append(rows)
        print(f"\n## seed {seed}")
        for claim, measured, holds in rows:
            print(f"| {claim} | {measured} | {'holds' if holds else 'FAILS'} |", flush=True)
    print(f"\n## summary over {len(args.seeds)} seed(s)")
    print("| claim | holds on |\n|---|---|")
    for i, (claim, _, _) in enumerate(verdicts[0]):
        print(f"| {claim} | {sum(v[i][2] for v in verdicts)} of {len(verdicts)} |")
    walls = [r["docs"]["wall_s"] for r in results]
    print(f"\nlineup wall time: {', '.join(f'{w:.0f}' for w in walls)} s (median {np.median(walls):.0f} s)")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()

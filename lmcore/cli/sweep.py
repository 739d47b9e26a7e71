"""python -m lmcore sweep … | sweep --resume ID | sweeps [ID]: grids of runs through the job queue."""
from __future__ import annotations

import sys

from lmcore.cli.common import add_corpus_flags, as_machine_owner, corpus_spec, json_line
from lmcore.limits import load_limits
from lmcore.nn.architectures import ARCHS, GRU_CONVENTIONS, LSTM_VARIANTS, ModelConfig, count_params
from lmcore.runs import service, sweeps
from lmcore.runs.store import RunStore
from lmcore.training.config import OPTIMIZERS, RunConfig, TrainConfig


def add_parsers(command) -> None:
    m, t = ModelConfig(), TrainConfig()
    p = command("sweep", help="train a grid (architectures × LSTM variants × sizes × lr × seeds) through the queue")
    add_corpus_flags(p)
    p.add_argument("--resume", metavar="SWEEP", type=int, default=None,
                   help="queue again the runs of a sweep that did not finish (stopped, interrupted, failed); "
                        "finished ones are kept. Only --wait and --json apply with it")
    p.add_argument("--name", default="")
    p.add_argument("--arch", nargs="+", choices=list(ARCHS), default=["lstm"])
    p.add_argument("--variants", nargs="+", type=str.lower, choices=list(LSTM_VARIANTS), default=["vanilla"],
                   help="LSTM only (Greff et al. 2016): " + "; ".join(f"{k}: {v.name}" for k, v in LSTM_VARIANTS.items()))
    p.add_argument("--gru-conventions", nargs="+", choices=list(GRU_CONVENTIONS), default=["pytorch"])
    p.add_argument("--activation", default="tanh", help="Elman only (default tanh)")
    p.add_argument("--seeds", nargs="+", type=int, default=[1, 2])
    p.add_argument("--hidden", "--nhid", nargs="+", type=int, default=[64])
    p.add_argument("--lr", nargs="+", type=float, default=None, help="default 20 for sgd, 0.002 for adam")
    p.add_argument("--emb", type=int, default=None, help="default: equal to each hidden size")
    p.add_argument("--layers", "--nlayers", type=int, default=1)
    p.add_argument("--dropout", type=float, default=m.dropout)
    p.add_argument("--backend", default=m.backend)
    p.add_argument("--bptt", type=int, default=t.bptt)
    p.add_argument("--batch", "--batch-size", type=int, default=t.batch)
    p.add_argument("--optimizer", choices=OPTIMIZERS, default=t.optimizer)
    p.add_argument("--clip", type=float, default=t.clip)
    p.add_argument("--epochs", type=int, default=t.epochs)
    p.add_argument("--max-steps", type=int, default=0)
    p.add_argument("--time-budget", type=float, default=0.0, help="seconds per run (0: no bound)")
    p.add_argument("--eval-every", type=int, default=0)
    p.add_argument("--device", default=t.device)
    p.add_argument("--threads", type=int, default=0, help="torch threads per run (0: chosen by the queue)")
    p.add_argument("--plan", action="store_true", help="print the grid and its parameter counts; queue nothing")
    p.add_argument("--wait", action="store_true", help="wait until every run has ended, printing progress")
    p.add_argument("--json", action="store_true")

    p = command("sweeps", help="list sweeps with their progress, or one sweep's results")
    p.add_argument("sweep_id", nargs="?", type=int, default=None)
    p.add_argument("--metric", choices=["test", "valid"], default="test")
    p.add_argument("--reference", default="LSTM", help="the model the change is measured from (default LSTM)")
    p.add_argument("--json", action="store_true")


def _spec(a):
    lr = a.lr or [20.0 if a.optimizer == "sgd" else 0.002]
    base = RunConfig(
        corpus=corpus_spec(a),
        model=ModelConfig(activation=a.activation, emb=a.emb or a.hidden[0], layers=a.layers, dropout=a.dropout,
                          backend=a.backend),
        train=TrainConfig(bptt=a.bptt, batch=a.batch, optimizer=a.optimizer, lr=lr[0], clip=a.clip, epochs=a.epochs,
                          max_steps=a.max_steps, time_budget=a.time_budget, eval_every=a.eval_every,
                          device=a.device, threads=a.threads))
    return sweeps.SweepSpec(base=base, archs=a.arch, variants=a.variants, gru_conventions=a.gru_conventions,
                     hidden=a.hidden, lr=lr, seeds=a.seeds, emb_equals_hidden=a.emb is None, name=a.name)


def cmd_sweep(a) -> int:
    store = RunStore(a.home)
    if a.resume is not None:
        with as_machine_owner() as me:
            queued = sweeps.resume_sweep(store, a.resume, person=me)
        sweep_id = a.resume
        if a.json:
            print(json_line({"event": "resumed", "sweep_id": sweep_id, "queued": queued}), flush=True)
        else:
            print(f"sweep {sweep_id}: " + (f"queued again runs {', '.join(map(str, queued))}" if queued
                                          else "nothing to resume (every run has finished or is active)"),
                  file=sys.stderr)
    else:
        spec = _spec(a)
        limits = load_limits(a.home)
        configs = sweeps.expand(spec)
        # every run checked (a bad corpus, a run over the limits) before the plan is shown or anything queued
        corpus = next(iter(service.check(store, configs, limits, queueing=False).values()))
        if a.plan:
            for cfg in configs:
                params = count_params(cfg.model, len(corpus.vocab))
                print(json_line({"name": cfg.name, "params": params}) if a.json else f"{cfg.name:32s} {params:>12,}")
            if not a.json:
                print(f"{len(configs)} runs", file=sys.stderr)
            return 0
        with as_machine_owner() as me:
            sweep_id = sweeps.submit_sweep(store, spec, limits=limits, corpus=corpus, person=me)
        ids = [r.id for r in sweeps.sweep_runs(store, sweep_id)]
        if a.json:
            print(json_line({"event": "queued", "sweep_id": sweep_id, "runs": ids}), flush=True)
        else:
            print(f"sweep {sweep_id}: queued {len(ids)} runs ({ids[0]}–{ids[-1]}); "
                  f"python -m lmcore sweeps {sweep_id} shows the results", file=sys.stderr)
    if not a.wait:
        return 0

    def report(p):
        if a.json:
            print(json_line({"event": "progress", "sweep_id": sweep_id, **{k: p[k] for k in ("done", "total", "status")},
                             "counts": p["counts"]}), flush=True)
        else:
            print(f"sweep {sweep_id}: {sweeps.progress_text(p)}", file=sys.stderr, flush=True)
    p = sweeps.wait_sweep(store, sweep_id, report)
    if not a.json:
        _print_results(store, sweep_id, "test ppl", "LSTM")
    return 0 if p["status"] == "done" else 1


def cmd_sweeps(a) -> int:
    store = RunStore(a.home)
    metric = "test ppl" if a.metric == "test" else "best valid ppl"
    if a.sweep_id is not None:
        if store.get_sweep(a.sweep_id) is None:
            raise ValueError(f"no sweep {a.sweep_id} in {store.home}")
        if a.json:
            from lmcore.runs.reports import sweep_table  # (pandas: see _print_results)
            for row in sweep_table(sweeps.sweep_runs(store, a.sweep_id)).to_dict("records"):
                print(json_line(row))
            return 0
        print(f"sweep {a.sweep_id}: {sweeps.progress_text(sweeps.progress(store, a.sweep_id))}")
        _print_results(store, a.sweep_id, metric, a.reference)
        return 0
    listed = store.list_sweeps()
    if not listed and not a.json:
        print(f"no sweeps in {store.home}")
    for s in listed:
        p = sweeps.progress(store, s["id"])
        if a.json:
            print(json_line({"id": s["id"], "name": s["name"], "status": p["status"], "done": p["done"],
                             "total": p["total"], "counts": p["counts"]}))
        else:
            print(f"{s['id']:4d}  {p['status']:10s} {p['done']:>3d}/{p['total']:<3d} done  {s['name']}  "
                  f"({s['spec']['base']['corpus']['source']})")
    return 0


def _print_results(store, sweep_id: int, metric: str, reference: str) -> None:
    # imported here: the reports' pandas would cost every other command, each job process included, ~0.4 s
    from lmcore.runs.reports import change_from_reference, sweep_summary, sweep_table
    table = sweep_table(sweeps.sweep_runs(store, sweep_id))
    summary = sweep_summary(table, metric)
    if summary.empty:
        print("no finished runs yet")
        return
    other = "best valid ppl" if metric == "test ppl" else "test ppl"
    change = change_from_reference(table, metric, reference)
    merged = (summary.merge(sweep_summary(table, other)[["model", "setting", f"mean {other}"]],
                            on=["model", "setting"], how="left")
              .merge(change[["model", "setting", f"mean Δ {metric}", f"std Δ {metric}"]],
                     on=["model", "setting"], how="left"))
    print(merged.round(2).to_string(index=False))


COMMANDS = {"sweep": cmd_sweep, "sweeps": cmd_sweeps}

"""`python -m lmcore inspect trace|decay|saliency|agreement|context|intervene|number-units`: the numbers the pages
draw, as JSON.

decay and saliency follow the gradient through the hidden state, so they refuse a feedforward (ffnn) run in one
line; trace (its P(next) and its one layer h, no gates), agreement and context take it."""
from __future__ import annotations

import argparse

import numpy as np

from lmcore.cli.common import checkpoint_path, json_line, whole_at_least
from lmcore.corpus.dataset import tokenized_splits
from lmcore.corpus.loading import load_corpus
from lmcore.corpus.reading import read_text_file
from lmcore.corpus.tokenize import tokenize_line
from lmcore.inspect import interventions
from lmcore.inspect.gradients import input_saliency, jacobian_decay, loss_gradient_decay
from lmcore.inspect.memory import (
    accuracy_by_distance,
    agreement_items,
    context_perplexity,
    lm_margins,
    ngram_context_perplexity,
    ngram_margins,
    parse_probe_tsv,
    readable,
    usable,
)
from lmcore.inspect.trace import gate_means, trace
from lmcore.ngram import KneserNeyLM
from lmcore.nn.architectures import require_recurrent
from lmcore.training.checkpoints import load_checkpoint


def add_parsers(command, home) -> None:
    p = command("inspect", help="look inside a trained model")
    sub = p.add_subparsers(dest="inspect_command", required=True)

    def command(name, help):
        q = sub.add_parser(name, parents=[home], help=help)
        q.add_argument("--run", required=True, help="a run folder, a .pt checkpoint, or demo:NAME")
        q.add_argument("--json", action="store_true")
        return q

    q = command("trace", "per token: P(next token) and each gate's mean")
    q.add_argument("--text", required=True)
    q.add_argument("--top-k", type=whole_at_least(0), default=5)
    q = command("decay", "‖∂ℓ_t/∂h_{t-k}‖ and ‖∂h_t/∂h_{t-k}‖ against k")
    q.add_argument("--text", default=None, help="default: the run's validation text")
    q.add_argument("--K", type=whole_at_least(1), default=50)
    q.add_argument("--positions", type=whole_at_least(1), default=32)
    q.add_argument("--layer", type=int, default=-1)
    q = command("saliency", "‖∂ log p(w_t)/∂x_j‖ for each earlier token j")
    q.add_argument("--text", required=True)
    q.add_argument("--position", type=int, default=None, help="default: the last token")
    q = command("agreement", "subject-verb agreement accuracy by distance, with the n-gram baseline")
    q.add_argument("--pairs", default=None, help="a TSV file of prefix, correct next word, wrong next word "
                                                 "[, distance]; default: the agreement corpus's valid split")
    q.add_argument("--order", type=int, default=3)
    q = command("intervene", "validation perplexity and agreement by distance, before and after an intervention")
    q.add_argument("--point", required=True, help="layer0.f, layer1.c, layer0.h …: a gate, the LSTM's cell, or h")
    q.add_argument("--units", default="all", help="all (default), or unit numbers: 3,7,12")
    change = q.add_mutually_exclusive_group(required=True)
    change.add_argument("--set", type=float, help="set to this value (0 closes a gate, 1 opens it)")
    change.add_argument("--scale", type=float, help="multiply by this")
    change.add_argument("--add", type=float, help="add this")
    change.add_argument("--mean", action="store_true", help="set each unit to its mean over the validation text")
    q.add_argument("--from", dest="start", type=whole_at_least(0), default=0,
                   help="the first step it applies to (0: the <eos> each probe sentence is read after)")
    q.add_argument("--pairs", default=None, help="as for inspect agreement")
    q = command("number-units", "Lakretz et al. 2019: single-unit ablations ranked by their harm to long-range "
                                "agreement; the top k against k random units, and every forget gate closed")
    q.add_argument("--point", default="layer0.h")
    q.add_argument("--k", type=whole_at_least(1), nargs="+", default=[2, 4])
    q.add_argument("--draws", type=whole_at_least(1), default=5, help="random draws per k (seeded)")
    q.add_argument("--seed", type=whole_at_least(0), default=0)
    q.add_argument("--top", type=whole_at_least(0), default=10, help="ranking rows printed")
    q.add_argument("--pairs", default=None, help="as for inspect agreement")
    q = command("context", "perplexity when the model sees only the last k tokens")
    q.add_argument("--max-targets", type=whole_at_least(1), default=20_000)
    q.add_argument("--order", type=int, default=3)
    q.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=True,
                   help="a recurrent model's stack and output products in bfloat16 where this CPU/GPU computes it "
                        "natively (the default: faster, perplexities within 0.5%% on the demo runs, 0.13%% measured); "
                        "--no-bf16: float32 throughout")


def cmd_inspect(a) -> int:
    model, cfg, vocab, meta = load_checkpoint(checkpoint_path(a.run))
    if a.inspect_command in THROUGH_TIME:
        require_recurrent(cfg.model, f"inspect {a.inspect_command} ({THROUGH_TIME[a.inspect_command]})")
    records = INSPECTIONS[a.inspect_command](a, model, cfg, vocab)
    for record in records:
        print(json_line(record) if a.json else "  ".join(f"{k} {_short(v)}" for k, v in record.items()))
    return 0


def _short(v):
    return f"{v:.4g}" if isinstance(v, float) else v


def _tokens(a, cfg) -> list[str]:
    tokens = tokenize_line(a.text, cfg.corpus.tokenizer, cfg.corpus.lowercase)
    if len(tokens) < 2:
        raise ValueError("--text needs at least two tokens")
    return tokens


def _trace(a, model, cfg, vocab):
    tokens = _tokens(a, cfg)
    tr = trace(model, vocab.encode(tokens), vocab, top_k=a.top_k)
    means = gate_means(tr)
    for t, token in enumerate(tr.tokens):
        last = t + 1 == len(tokens)
        yield {"t": t, "token": token, "input": tokens[t], "next": None if last else tr.tokens[t + 1],
               "p_next": None if last else float(tr.next_prob[t]),
               "top": [[vocab.itos[i], round(float(p), 6)] for i, p in zip(tr.top_ids[t], tr.top_probs[t])],
               "gates": [{name: values[t] for name, values in layer.items()} for layer in means]}


def _validation_ids(cfg, vocab):
    return vocab.encode(tokenized_splits(cfg.corpus)[0]["valid"])


def _decay(a, model, cfg, vocab):
    ids = vocab.encode(_tokens(a, cfg)) if a.text else _validation_ids(cfg, vocab)[:5000]
    loss = loss_gradient_decay(model, ids, K=a.K, positions=a.positions, layer=a.layer)
    jac = jacobian_decay(model, ids, K=a.K, positions=min(a.positions, 8), layer=a.layer)
    for k in range(a.K + 1):
        yield {"k": k, "loss_grad_mean": float(loss.mean[k]), "loss_grad_std": float(loss.std[k]),
               "jacobian_mean": float(jac.mean[k]), "jacobian_std": float(jac.std[k])}


def _saliency(a, model, cfg, vocab):
    tokens = _tokens(a, cfg)
    position = len(tokens) - 1 if a.position is None else a.position
    sal = input_saliency(model, vocab.encode(tokens), position)
    for j in range(position):
        yield {"j": j, "token": tokens[j], "k": position - j, "saliency": float(sal[j]), "target": tokens[position]}


def _agreement(a, model, cfg, vocab):
    pairs_text = read_text_file(a.pairs, max_bytes=16 * 2**20) if a.pairs else None  # refuses FIFOs, devices, binary
    items = parse_probe_tsv(pairs_text) if a.pairs else agreement_items()
    kept = usable(items, vocab)
    if not kept:
        raise ValueError("no probe item has both verb forms in this run's vocabulary")
    corpus = load_corpus(cfg.corpus)
    kn = KneserNeyLM(a.order).fit(corpus.train, len(corpus.vocab))
    for name, margins in (("run", lm_margins(model, vocab, kept)), (f"{a.order}-gram", ngram_margins(kn, vocab, kept))):
        for row in accuracy_by_distance(kept, margins, name).to_dict("records"):
            yield {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in row.items()}


def _probe_items(a, vocab):
    pairs_text = read_text_file(a.pairs, max_bytes=16 * 2**20) if a.pairs else None
    items = readable(parse_probe_tsv(pairs_text) if a.pairs else agreement_items(), vocab)
    if not items:
        raise ValueError("no probe sentence has all its words in this run's vocabulary")
    return items


def _intervene(a, model, cfg, vocab):
    op, value = next((op, v) for op, v in (("set", a.set), ("scale", a.scale), ("add", a.add)) if v is not None) \
        if not a.mean else ("mean", 0.0)
    units = None if a.units.strip() == "all" else tuple(int(u) for u in a.units.split(",") if u.strip())
    iv = interventions.Intervention(a.point, op, value, units, a.start)
    iv.check(cfg.model)
    items, valid = _probe_items(a, vocab), _validation_ids(cfg, vocab)
    means = interventions.unit_means(model, valid, [a.point]) if op == "mean" else None
    for label, ivs in (("none", []), (iv.label, [iv])):
        ppl = interventions.perplexity(model, valid, ivs, means)
        for row in interventions.agreement(model, vocab, items, ivs, means).to_dict("records"):
            yield {"intervention": label, **_plain(row), "valid_ppl": ppl}


def _number_units(a, model, cfg, vocab):
    interventions.parse_point(a.point, cfg.model)  # a point the model lacks: refused before the long ranking
    items, valid = _probe_items(a, vocab), _validation_ids(cfg, vocab)
    ranking = interventions.ablation_ranking(model, vocab, items, a.point)
    for row in ranking.head(a.top).to_dict("records"):
        yield {"table": "ranking", "point": a.point, **_plain(row)}
    table = interventions.number_experiment(model, vocab, items, valid, ranking, a.k, a.draws, a.seed, a.point)
    for row in interventions.summary(table).to_dict("records"):
        yield {"table": "experiment", **_plain(row)}


def _plain(row: dict) -> dict:
    return {k: (None if isinstance(v, float) and np.isnan(v) else v.item() if hasattr(v, "item") else v)
            for k, v in row.items()}


def _context(a, model, cfg, vocab):
    corpus = load_corpus(cfg.corpus)
    ids = vocab.encode(corpus.vocab.decode(corpus.valid))
    table = context_perplexity(model, ids, max_targets=a.max_targets, bf16=a.bf16)
    kn = KneserNeyLM(a.order).fit(corpus.train, len(corpus.vocab))
    baseline = ngram_context_perplexity(kn, corpus.valid, max_targets=a.max_targets)
    for row in table.to_dict("records"):
        yield {**row, f"ngram{a.order}_ppl": baseline}


THROUGH_TIME = {"decay": "gradients through time", "saliency": "the gradient back through the hidden state",
                "intervene": "a recurrent cell's gates and states", "number-units": "a recurrent cell's units"}
INSPECTIONS = {"trace": _trace, "decay": _decay, "saliency": _saliency, "agreement": _agreement, "context": _context,
               "intervene": _intervene, "number-units": _number_units}
COMMANDS = {"inspect": cmd_inspect}

"""What each `python -m lmcore inspect` subcommand computes, as records (lmcore.cli.inspect parses and prints)."""
from __future__ import annotations

import numpy as np

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


def short(v):
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


INSPECTIONS = {"trace": _trace, "decay": _decay, "saliency": _saliency, "agreement": _agreement, "context": _context,
               "intervene": _intervene, "number-units": _number_units}

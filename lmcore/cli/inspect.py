"""`python -m lmcore inspect trace|decay|saliency|agreement|context`: the numbers the pages draw, as JSON.

decay and saliency follow the gradient through the hidden state, so they refuse a feedforward (ffnn) run in one
line; trace (its P(next) and its one layer h, no gates), agreement and context take it."""
from __future__ import annotations

import numpy as np

from lmcore.cli.common import checkpoint_path, json_line, whole_at_least
from lmcore.corpus.dataset import tokenized_splits
from lmcore.corpus.loading import load_corpus
from lmcore.corpus.reading import read_text_file
from lmcore.corpus.tokenize import tokenize_line
from lmcore.inspect.gradients import input_saliency, jacobian_decay, loss_gradient_decay
from lmcore.inspect.memory import (
    accuracy_by_distance,
    agreement_items,
    context_perplexity,
    lm_margins,
    ngram_context_perplexity,
    ngram_margins,
    parse_probe_tsv,
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
    q = command("context", "perplexity when the model sees only the last k tokens")
    q.add_argument("--max-targets", type=whole_at_least(1), default=20_000)
    q.add_argument("--order", type=int, default=3)


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


def _context(a, model, cfg, vocab):
    corpus = load_corpus(cfg.corpus)
    ids = vocab.encode(corpus.vocab.decode(corpus.valid))
    table = context_perplexity(model, ids, max_targets=a.max_targets)
    kn = KneserNeyLM(a.order).fit(corpus.train, len(corpus.vocab))
    baseline = ngram_context_perplexity(kn, corpus.valid, max_targets=a.max_targets)
    for row in table.to_dict("records"):
        yield {**row, f"ngram{a.order}_ppl": baseline}


THROUGH_TIME = {"decay": "gradients through time", "saliency": "the gradient back through the hidden state"}
INSPECTIONS = {"trace": _trace, "decay": _decay, "saliency": _saliency, "agreement": _agreement, "context": _context}
COMMANDS = {"inspect": cmd_inspect}

"""`python -m lmcore inspect trace|decay|saliency|agreement|context|intervene|number-units`: the numbers the pages
draw, as JSON.

decay and saliency follow the gradient through the hidden state, so they refuse a feedforward (ffnn) run in one
line; trace (its P(next) and its one layer h, no gates), agreement and context take it."""
from __future__ import annotations

import argparse

from lmcore.cli.common import CHECKPOINT_HELP, checkpoint_path, json_line, whole_at_least
from lmcore.nn.architectures import require_recurrent
from lmcore.training.checkpoints import load_checkpoint


def add_parsers(command, home) -> None:
    p = command("inspect", help="look inside a trained model")
    sub = p.add_subparsers(dest="inspect_command", required=True)

    def command(name, help):
        q = sub.add_parser(name, parents=[home], help=help)
        q.add_argument("--run", required=True, help=CHECKPOINT_HELP)
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
    # imported here, not above: the inspections' modules and pandas cost every other command ~0.5 s of its start
    from lmcore.cli.inspections import INSPECTIONS, short
    model, cfg, vocab, meta = load_checkpoint(checkpoint_path(a.run, a.home))
    if a.inspect_command in THROUGH_TIME:
        require_recurrent(cfg.model, f"inspect {a.inspect_command} ({THROUGH_TIME[a.inspect_command]})")
    records = INSPECTIONS[a.inspect_command](a, model, cfg, vocab)
    for record in records:
        print(json_line(record) if a.json else "  ".join(f"{k} {short(v)}" for k, v in record.items()))
    return 0


THROUGH_TIME = {"decay": "gradients through time", "saliency": "the gradient back through the hidden state",
                "intervene": "a recurrent cell's gates and states", "number-units": "a recurrent cell's units"}
COMMANDS = {"inspect": cmd_inspect}

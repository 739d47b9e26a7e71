"""python -m lmcore eval | ngram | sample | make-demo: what a trained model (or the n-gram baseline) gives."""
from __future__ import annotations

import sys
from dataclasses import replace

from lmcore.cli.common import (CHECKPOINT_HELP, add_corpus_flags, checkpoint_path, corpus_spec, json_line,
                               whole_at_least)
from lmcore.corpus.batching import batchify
from lmcore.corpus.dataset import SPLITS, tokenized_splits
from lmcore.corpus.loading import load_corpus
from lmcore.corpus.tokenize import detokenize, tokenize_line
from lmcore.limits import check_source_size, load_limits
from lmcore.ngram import ngram_baseline
from lmcore.nn.sampling import check_sampling, prompt_ids, sample_tokens
from lmcore.paths import DEMO_DIR
from lmcore.training.checkpoints import load_checkpoint
from lmcore.training.demos import make_demo
from lmcore.training.trainer import EVAL_BATCH, evaluate, safe_ppl


def add_parsers(command) -> None:
    p = command("eval", help="perplexity of a checkpoint on a split")
    p.add_argument("checkpoint", help=CHECKPOINT_HELP)
    p.add_argument("--split", choices=SPLITS, default="test")
    p.add_argument("--corpus", default=None, help="evaluate on another corpus with the run's vocabulary")
    p.add_argument("--json", action="store_true")

    p = command("ngram", help="interpolated Kneser-Ney baseline perplexity")
    add_corpus_flags(p)
    p.add_argument("--order", type=int, default=3, choices=range(1, 6))
    p.add_argument("--json", action="store_true")

    p = command("sample", help="generate text from a checkpoint")
    p.add_argument("checkpoint", help=CHECKPOINT_HELP)
    p.add_argument("--prompt", default="")
    p.add_argument("--words", "-n", type=whole_at_least(0), default=100)
    p.add_argument("--temperature", type=float, default=1.0, help="above 0; near 0: the likeliest word each time")
    p.add_argument("--top-k", type=whole_at_least(0), default=0, help="sample among the k likeliest (0: all)")
    p.add_argument("--seed", type=whole_at_least(0), default=0)

    p = command("make-demo", help="rebuild the demo runs in assets/demos (about two minutes)")
    p.add_argument("--only", nargs="*", default=None, help="names such as python-docs-lstm")
    p.add_argument("--out", default=None)


def cmd_eval(a) -> int:
    model, cfg, vocab, meta = load_checkpoint(checkpoint_path(a.checkpoint, a.home))
    spec = replace(cfg.corpus, source=a.corpus) if a.corpus else cfg.corpus
    if a.corpus:
        check_source_size(a.corpus, load_limits(a.home))
    ids = vocab.encode(tokenized_splits(spec)[0][a.split])  # the checkpoint's own vocabulary
    loss = evaluate(model, batchify(ids, EVAL_BATCH), cfg.train.bptt)
    result = {"split": a.split, "loss": loss, "ppl": safe_ppl(loss), "tokens": int(len(ids)), "step": meta.get("step")}
    print(json_line(result) if a.json else f"{a.split} loss {loss:.4f} | ppl {result['ppl']:.2f} | {len(ids)} tokens")
    return 0


def cmd_ngram(a) -> int:
    check_source_size(a.corpus, load_limits(a.home))
    result = ngram_baseline(load_corpus(corpus_spec(a)), a.order)
    if a.json:
        print(json_line(result))
    else:
        print(f"Kneser-Ney {a.order}-gram | vocab {result['vocab']} | valid ppl {result['valid_ppl']:.2f} | "
              f"test ppl {result['test_ppl']:.2f} | {result['seconds']:.1f} s")
    return 0


def cmd_sample(a) -> int:
    check_sampling(a.words, a.temperature, a.top_k, a.seed)  # before the checkpoint is read
    model, cfg, vocab, _ = load_checkpoint(checkpoint_path(a.checkpoint, a.home))
    kind = cfg.corpus.tokenizer
    prompt = tokenize_line(a.prompt, kind, cfg.corpus.lowercase) if a.prompt else []
    out = [vocab.itos[i] for i in sample_tokens(model, prompt_ids(vocab, prompt), a.words, a.temperature, a.top_k,
                                                a.seed)]
    print(detokenize(prompt + out, kind))
    return 0


def cmd_make_demo(a) -> int:
    make_demo(a.out or DEMO_DIR, a.only, log=lambda line: print(line, file=sys.stderr))
    return 0


COMMANDS = {"eval": cmd_eval, "ngram": cmd_ngram, "sample": cmd_sample, "make-demo": cmd_make_demo}

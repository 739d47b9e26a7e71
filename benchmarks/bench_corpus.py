"""Reading big corpora: tokens/s and peak memory of the streaming reader against the file's size.

For each size, a seeded synthetic text (Zipf-distributed words, sentences of 4-30 words, some
punctuation) is written to a temporary folder; a fresh child process then reads, tokenizes and
encodes it into the memory-mapped cache (lmcore.corpus.stream), and reports its peak RSS
(getrusage ru_maxrss of the child). The reference, measured in the same run on the same file, is
the time to read the file's bytes once. The target: peak RSS ≤ 3× the file's size at 200 MB.

    python benchmarks/bench_corpus.py                 # 20, 50, 100, 200 MB
    python benchmarks/bench_corpus.py --sizes 20 50   # a quicker look
Files and caches are deleted afterwards.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, resource, sys, time
from lmcore.corpus.dataset import CorpusSpec
from lmcore.corpus.loading import load_corpus
path, home = sys.argv[1], sys.argv[2]
import os; os.environ["LMCORE_HOME"] = home
t0 = time.perf_counter()
corpus = load_corpus(CorpusSpec(source=path, tokenizer="words"), stream=True)
seconds = time.perf_counter() - t0
tokens = int(corpus.train.size + corpus.valid.size + corpus.test.size)
t1 = time.perf_counter()
again = load_corpus(CorpusSpec(source=path, tokenizer="words"), stream=True)  # the cache, mapped
cached = time.perf_counter() - t1
print(json.dumps({"seconds": seconds, "cached_seconds": cached, "tokens": tokens, "vocab": len(corpus.vocab),
                  "dtype": corpus.train.dtype.name, "memmap": type(corpus.train).__name__,
                  "max_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""

READ = r"""
import resource, sys, time
t0 = time.perf_counter()
with open(sys.argv[1], "rb") as f:
    while f.read(4 << 20):
        pass
print(time.perf_counter() - t0)
"""


def write_text(path: Path, megabytes: float, seed: int = 0) -> None:
    """Seeded text with a Zipf-like word distribution (s ≈ 1.1 over 50k types), written in blocks."""
    rng = np.random.default_rng(seed)
    syllables = ["ka", "to", "ri", "sen", "mo", "la", "the", "in", "er", "an", "or", "ed", "ing", "qu", "st", "ve"]
    types = 50_000
    lengths = rng.integers(2, 5, size=types)  # up to 16^4 distinct words
    words = np.array(["".join(rng.choice(syllables, size=n)) for n in lengths])
    weights = 1.0 / np.arange(1, types + 1) ** 1.1
    weights /= weights.sum()
    punct = np.array([",", ".", ";", "?", "!"])
    target = int(megabytes * 2**20)
    with open(path, "w", encoding="utf-8") as f:
        written = 0
        while written < target:
            ids = rng.choice(types, size=200_000, p=weights)
            tokens = words[ids]
            cut = rng.integers(4, 31, size=len(tokens) // 4).cumsum()
            cut = cut[cut < len(tokens)]
            lines = [" ".join(s) + " " + punct[rng.integers(0, 5)] for s in np.split(tokens, cut)]
            block = "\n".join(lines) + "\n"
            f.write(block[: target - written] if written + len(block) > target else block)
            written += len(block)


def child(code: str, *args: str) -> str:
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=REPO, check=True)
    return out.stdout.strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=float, nargs="*", default=[20, 50, 100, 200], help="file sizes in MB")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-corpus-"))
    print(f"{'file MB':>8} {'tokens':>12} {'vocab':>7} {'dtype':>6} {'read+tok+enc s':>15} {'tokens/s':>10} "
          f"{'MB/s':>6} {'bytes-read s':>12} {'ratio':>6} {'cached s':>8} {'peak RSS MB':>11} {'RSS/file':>8}")
    try:
        for mb in args.sizes:
            path = tmp / f"text-{mb:g}mb.txt"
            write_text(path, mb)
            size = path.stat().st_size
            reference = float(child(READ, str(path)))  # also brings the file into the page cache for both
            r = json.loads(child(CHILD, str(path), str(tmp / "home")))
            assert r["memmap"] == "memmap"
            print(f"{size / 2**20:8.0f} {r['tokens']:12,} {r['vocab']:7,} {r['dtype']:>6} {r['seconds']:15.1f} "
                  f"{r['tokens'] / r['seconds']:10,.0f} {size / 2**20 / r['seconds']:6.1f} {reference:12.2f} "
                  f"{r['seconds'] / reference:6.0f} {r['cached_seconds']:8.3f} {r['max_rss'] / 2**20:11.0f} "
                  f"{r['max_rss'] / size:8.2f}", flush=True)
            path.unlink()
            shutil.rmtree(tmp / "home", ignore_errors=True)
        print("ratio: streaming read+tokenize+encode time / time to read the file's bytes once (same file, same run); "
              "peak RSS is the child's ru_maxrss, interpreter and numpy included; target RSS/file ≤ 3 at 200 MB")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

"""A big vocabulary end to end: the full softmax against the adaptive softmax, trained by the real CLI.

    python benchmarks/bench_adaptive.py [--epochs 1] [--min-count 1] [--threads 2]

The corpus: every docstring of this Python's standard library (≈280k words, ≈25k word types at min-count 1),
written once to a text file in a fixed order, so the run is the same on every machine with this Python. Both runs
are the Train page's LSTM preset (Adam, batch 10 × τ 35, dropout 0.5) with W untied (an adaptive softmax has no
W to tie), the same seed and steps; one after the other, each in its own `python -m lmcore train` process.
Printed: vocabulary, validation perplexity after the same steps, training tokens/s, and their ratio.
"""
from __future__ import annotations

import argparse
import ast
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def stdlib_docstrings() -> list[str]:
    """Every docstring paragraph of the standard library's modules (tests left out), one per line."""
    root = Path(sys.base_prefix) / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    lines = []
    for path in sorted(root.rglob("*.py")):
        if "test" in path.parts or "tests" in path.parts or "site-packages" in path.parts:
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                for paragraph in re.split(r"\n\s*\n", ast.get_docstring(node) or ""):
                    text = " ".join(paragraph.split())
                    if re.search(r"[A-Za-z]{3}", text):
                        lines.append(text)
    return lines


def train(corpus: Path, home: Path, output: str, args) -> dict:
    command = [sys.executable, "-m", "lmcore", "--home", str(home), "train", "--corpus", str(corpus),
               "--tokenizer", "words", "--min-count", str(args.min_count), "--preset", "LSTM", "--no-tied",
               "--output", output, "--epochs", str(args.epochs), "--threads", str(args.threads), "--json"]
    proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--min-count", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        corpus = Path(folder) / "stdlib-docstrings.txt"
        corpus.write_text("\n".join(stdlib_docstrings()) + "\n", encoding="utf-8")
        print(f"corpus: {corpus.stat().st_size / 1e6:.1f} MB of docstrings; load "
              f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        runs = {output: train(corpus, Path(folder) / "home", output, args) for output in ("softmax", "adaptive")}
    for output, r in runs.items():
        print(f"  {output:8}  vocabulary {r['vocab']:,}, {r['step']} steps, valid ppl {r['valid_ppl']:.1f}, "
              f"{r['tokens_per_s']:,.0f} tokens/s, {r['params']:,} parameters")
    full, adaptive = runs["softmax"], runs["adaptive"]
    print(f"RESULT adaptive/full: training speed {adaptive['tokens_per_s'] / full['tokens_per_s']:.2f}×, "
          f"valid ppl {adaptive['valid_ppl'] / full['valid_ppl']:.3f}× at equal steps")


if __name__ == "__main__":
    main()

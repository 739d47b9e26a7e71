"""Tokenizers: text lines to tokens, with `<eos>` closing every line (the PTB/WikiText convention)."""
from __future__ import annotations

import re
from typing import Iterable

from lmcore.corpus.reading import CorpusError

EOS = "<eos>"
UNK = "<unk>"

TOKENIZERS = {
    "char": "characters; each line ends with <eos>",
    "word": "whitespace split, <eos> at each line end (PTB / WikiText)",
    "words": "words with punctuation split off, optionally lowercased",
}

# A word is a run of letters/digits (with inner apostrophes or hyphens); anything else non-space stands alone.
_WORDS = re.compile(r"\w+(?:['’-]\w+)*|[^\w\s]")


def tokenize_line(line: str, kind: str, lowercase: bool = False) -> list[str]:
    if lowercase:
        line = line.lower()
    if kind == "char":
        return list(line)
    if kind == "word":
        return line.split()
    if kind == "words":
        return _WORDS.findall(line)
    raise CorpusError(f"unknown tokenizer {kind!r}; choose one of {', '.join(TOKENIZERS)}")


def tokenize(lines: Iterable[str], kind: str, lowercase: bool = False) -> list[str]:
    """Tokens of every non-blank line, each line followed by <eos>."""
    tokens: list[str] = []
    for line in lines:
        if not line.strip():
            continue
        tokens.extend(tokenize_line(line, kind, lowercase))
        tokens.append(EOS)
    return tokens


def detokenize(tokens: Iterable[str], kind: str) -> str:
    """Readable text back from tokens (for previews and samples)."""
    if kind == "char":  # spaces are tokens here: keep every one
        return "".join("\n" if t == EOS else t for t in tokens)
    # word tokens hold no spaces, so a space next to a line end is only the separator
    return re.sub(r" ?\n ?", "\n", " ".join("\n" if t == EOS else t for t in tokens))

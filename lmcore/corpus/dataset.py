"""A corpus ready for training: source text -> tokens -> vocabulary -> id streams per split."""
from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from lmcore.corpus.builtin import builtin_text
from lmcore.corpus.reading import CorpusError, check_regular, read_file
from lmcore.corpus.tokenize import TOKENIZERS, tokenize
from lmcore.corpus.vocab import Vocab

SPLITS = ("train", "valid", "test")
BUILTIN_PREFIX = "builtin:"
MAX_LINE_CHARS = 100_000  # a longer line is not a sentence or a paragraph: the text lacks line breaks


@dataclass(frozen=True)
class CorpusSpec:
    """Everything that decides the token streams; stored with every run so they can be rebuilt."""
    source: str = "builtin:python-docs"  # a .txt path, a folder with train/valid/test.txt, or builtin:NAME
    tokenizer: str = "words"
    lowercase: bool = True
    min_count: int = 3          # rarer words become <unk>: a network cannot learn a word from one or two uses
    max_vocab: int | None = None

    def validate(self) -> None:
        if not isinstance(self.source, str) or not self.source:
            raise CorpusError("no corpus given: name a .txt file, a folder or builtin:NAME")
        if not isinstance(self.tokenizer, str) or self.tokenizer not in TOKENIZERS:
            raise CorpusError(f"unknown tokenizer {self.tokenizer!r}; choose one of {', '.join(TOKENIZERS)}")
        if not isinstance(self.min_count, int) or self.min_count < 1:
            raise CorpusError("min-count must be a whole number, at least 1")
        if self.max_vocab is not None and (not isinstance(self.max_vocab, int) or self.max_vocab < 4):
            raise CorpusError("max-vocab must be a whole number, at least 4 (<unk>, <eos> and two words)")


@dataclass
class Corpus:
    spec: CorpusSpec
    vocab: Vocab
    train: np.ndarray  # (N_train,) token ids, lines joined with <eos>: int64, or a uint16/uint32 np.memmap when streamed
    valid: np.ndarray
    test: np.ndarray
    lines: dict[str, int]  # non-blank lines per split
    notes: tuple[str, ...] = field(default=())  # what was assumed while reading (UTF-16 without a BOM)

    def split(self, name: str) -> np.ndarray:
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; choose one of {', '.join(SPLITS)}")
        return getattr(self, name)

    def stats(self) -> dict:
        """Sizes the Corpus page and the CLI show."""
        out = {"vocab": len(self.vocab), "tokenizer": self.spec.tokenizer}
        for name in SPLITS:
            ids = self.split(name)
            out[f"{name}_tokens"] = int(ids.size)
            out[f"{name}_lines"] = self.lines[name]
            out[f"{name}_unk_rate"] = float((ids == self.vocab.unk_id).mean()) if ids.size else 0.0
        out["train_types"] = self.vocab.types_seen  # before min count and max vocab: how many became <unk>
        return out

    def rank_frequency(self) -> np.ndarray:
        """Training-split counts of each type, most frequent first (for the Zipf plot)."""
        counts = np.bincount(self.train, minlength=len(self.vocab))
        return np.sort(counts[counts > 0])[::-1]


def source_text(source: str, notes: list[str] | None = None) -> dict[str, list[str]]:
    """Lines of each split: a folder gives its three files, any single text is split 80/10/10 by lines.

    notes: a list that receives what was assumed while decoding (shown to the user beside the corpus)."""
    def read(path: Path) -> str:
        decoded = read_file(path)
        if decoded.note and notes is not None:
            notes.append(decoded.note)
        return decoded.text

    if source.startswith(BUILTIN_PREFIX):
        name = source[len(BUILTIN_PREFIX):]
        try:
            text = builtin_text(name)
        except KeyError as err:
            raise CorpusError(str(err.args[0])) from None
        return split_lines(text, source)
    path = Path(source)
    if path.is_dir():
        check_folder(path)
        splits = {s: read(path / f"{s}.txt").splitlines() for s in SPLITS}
        for s in SPLITS:
            check_line_lengths(splits[s], str(path / f"{s}.txt"))
        return splits
    return split_lines(read(path), source)


def check_folder(path: Path) -> None:
    """A folder corpus's three files exist and are regular files, all checked before any is opened."""
    missing = []
    for s in SPLITS:
        try:
            check_regular(path / f"{s}.txt")
        except FileNotFoundError:
            missing.append(f"{s}.txt")
        except OSError:
            pass  # reading it says what is wrong (a symlink loop, no permission)
    if missing:
        raise CorpusError(f"{path}: folder lacks {', '.join(missing)}")


def check_line_lengths(lines: list[str], name: str) -> None:
    longest = max(range(len(lines)), key=lambda i: len(lines[i]), default=None)
    if longest is not None and len(lines[longest]) > MAX_LINE_CHARS:
        raise long_line_error(name, longest, len(lines[longest]))


def long_line_error(name: str, index: int, length: int) -> CorpusError:
    return CorpusError(f"{name}: line {index + 1} has {length:,} characters; lines of at most "
                       f"{MAX_LINE_CHARS:,} are read. A corpus needs line breaks, one sentence or paragraph "
                       "a line (it is split into train, valid and test by lines)")


def split_sizes(n_lines: int, name: str) -> dict[str, int]:
    """Non-blank lines of train, valid and test for a text of n_lines non-blank lines (80/10/10)."""
    if n_lines < 3:
        raise CorpusError(f"{name}: has {n_lines} non-blank line(s); at least 3 are needed to "
                          "split it into train, valid and test (or give a folder with the three files)")
    n_valid = n_test = max(1, round(0.1 * n_lines))
    return {"train": n_lines - n_valid - n_test, "valid": n_valid, "test": n_test}


def split_lines(text: str, name: str) -> dict[str, list[str]]:
    """Contiguous 80/10/10 split by non-blank lines, so no sentence straddles two splits."""
    lines = text.splitlines()
    check_line_lengths(lines, name)
    lines = [ln for ln in lines if ln.strip()]
    n_train, n_valid, _ = split_sizes(len(lines), name).values()
    return {"train": lines[:n_train], "valid": lines[n_train:n_train + n_valid],
            "test": lines[n_train + n_valid:]}


def tokenized_splits(spec: CorpusSpec, notes: list[str] | None = None) -> tuple[dict[str, list[str]], dict[str, int]]:
    """Tokens of each split and its number of non-blank lines."""
    spec.validate()
    lines = source_text(spec.source, notes)
    tokens = {s: tokenize(lines[s], spec.tokenizer, spec.lowercase) for s in SPLITS}
    return tokens, {s: sum(1 for ln in lines[s] if ln.strip()) for s in SPLITS}


def check_vocab(spec: CorpusSpec, vocab: Vocab) -> None:
    if len(vocab) < 3:
        raise CorpusError(f"{spec.source}: the training split has no word kept in the vocabulary "
                          f"(min-count {spec.min_count}); lower min-count or give more text")
    if len(vocab) == 3:
        only = vocab.itos[2]
        shown = only if len(only) <= 40 else only[:40] + "…"
        raise CorpusError(f"{spec.source}: the vocabulary has one type only ({shown!r}, besides <unk> and <eos>), "
                          "so there is nothing to predict between words; give more varied text, lower min-count "
                          "or try the char tokenizer")


def spec_fingerprint(spec: CorpusSpec) -> str:
    """Stable short id of a spec and its source files' sizes and mtimes (cache key for loaded corpora).
    Only stat() is used, which never blocks; loading the corpus says what is wrong with a file."""
    h = hashlib.sha1(repr(sorted(asdict(spec).items())).encode())
    if not spec.source.startswith(BUILTIN_PREFIX):
        path = Path(spec.source)
        for file in [path / f"{s}.txt" for s in SPLITS] if path.is_dir() else [path]:
            try:
                info = file.stat()
            except (OSError, ValueError):
                continue
            h.update(str(info.st_mtime_ns).encode() + str(info.st_size).encode())
    return h.hexdigest()[:12]

"""Big corpora in bounded memory: a text file streamed in chunks, its ids in a memory-mapped cache.

Three passes over the file, none of which holds the whole text or a list of all its tokens:

    1. count   decode chunk by chunk, count non-blank lines (to place the 80/10/10 split), find the
               longest line; nothing is kept but counters
    2. vocab   tokenize the training lines (the first 80% of non-blank lines) a block at a time and
               count types: the Counter holds one entry per type, not per token
    3. encode  tokenize every split again, map tokens to ids block by block and append them to
               ids.bin as uint16 (vocabulary ≤ 65,536) or uint32

The cache lives in <data folder>/corpus-cache/<key>/ (ids.bin + meta.json), keyed by the file's
resolved path, size, mtime and the corpus spec, so a changed file or spec is encoded afresh and a
second load only maps the file. Corpus.train/valid/test are np.memmap views into ids.bin.

Gives the same vocabulary and ids as the in-memory path in dataset.py. Any input the in-memory
reader refuses while decoding (not UTF-8, control characters, NUL bytes, a magic number) is handed
back to it (StreamFallback), so every such error message stays the same.
"""
from __future__ import annotations

import codecs
import hashlib
import json
import os
import re
import shutil
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Iterator

import numpy as np

from .reading import _CONTROL_RE, MAGIC, CorpusError, human_size
from .tokenize import EOS, UNK
from .vocab import Vocab

CHUNK_BYTES = 4 * 2**20        # bytes read at a time
BLOCK_CHARS = 2**20            # characters of lines tokenized at once
STREAM_MIN_BYTES = 20 * 2**20  # single files above this size are streamed (dataset.load_corpus)
CACHE_DIR = "corpus-cache"
CACHE_VERSION = 1
_SEP = "\x00"  # closes each line inside a block; control characters are refused, so it never occurs in text


class StreamFallback(Exception):
    """The file needs the in-memory reader (a decoding problem, whose message that reader words)."""


# --- pass helpers -------------------------------------------------------------------------------

def _encoding(path: Path) -> tuple[str, int]:
    """(encoding, bytes to skip) from the file's first bytes; StreamFallback for anything unusual."""
    with open(path, "rb") as f:
        head = f.read(64)
        if not head or any(head.startswith(m) for m, _ in MAGIC):
            raise StreamFallback
        if head.startswith(codecs.BOM_UTF8):
            encoding, skip = "utf-8", len(codecs.BOM_UTF8)
        elif head.startswith(codecs.BOM_UTF16_LE):
            encoding, skip = "utf-16-le", 2
        elif head.startswith(codecs.BOM_UTF16_BE):
            encoding, skip = "utf-16-be", 2
        else:
            encoding, skip = "utf-8", 0
            f.seek(0)
            while chunk := f.read(CHUNK_BYTES):  # NUL bytes: binary, or UTF-16 without a BOM
                if b"\x00" in chunk:
                    raise StreamFallback
    return encoding, skip


def _texts(path: Path, encoding: str, skip: int, chunk_bytes: int) -> Iterator[str]:
    """Decoded text in pieces, line ends normalised to \\n, leading U+FEFF dropped (as read_bytes does)."""
    decoder = codecs.getincrementaldecoder(encoding)("strict")
    held, start = "", True
    with open(path, "rb") as f:
        f.seek(skip)
        while True:
            data = f.read(chunk_bytes)
            try:
                text = held + decoder.decode(data, final=not data)
            except UnicodeDecodeError:
                raise StreamFallback from None
            if _CONTROL_RE.search(text):
                raise StreamFallback
            if start:
                text = text.lstrip("\ufeff")
                start = not text and bool(data)
            held = ""
            if data and text.endswith("\r"):  # a \r\n pair may straddle two chunks
                text, held = text[:-1], "\r"
            if text:
                yield text.replace("\r\n", "\n").replace("\r", "\n")
            if not data:
                return


def _lines(texts: Iterator[str], max_chars: int) -> Iterator[tuple[str | None, int]]:
    """(line, length) for every line as str.splitlines gives them; a line longer than max_chars comes
    as (None, length) and is never held whole."""
    carry, over = "", 0  # over: characters of an over-long line seen so far
    for text in texts:
        parts = (carry + text).splitlines(keepends=True)
        carry = ""
        last = parts[-1] if parts else ""
        if last and last.splitlines()[0] == last:  # no line end yet: keep for the next piece
            parts.pop()
            carry = last
        for part in parts:
            line = part.splitlines()[0] if part else part
            if over:
                yield None, over + len(line)
                over = 0
            else:
                yield (line if len(line) <= max_chars else None), len(line)
        if over:
            over += len(carry)
            carry = ""
        elif len(carry) > max_chars:
            over, carry = len(carry), ""
    if over or carry:
        yield (None if over else carry), over + len(carry)


def _blocks(lines: Iterator[tuple[str | None, int]], first: int, stop: int | None) -> Iterator[str]:
    """Non-blank lines numbered first..stop-1 joined into blocks, each line closed by _SEP."""
    block, size, n = [], 0, 0
    for line, _ in lines:
        if line is None or not line.strip():
            continue
        if stop is not None and n >= stop:
            break
        if n >= first:
            block.append(line)
            size += len(line)
            if size >= BLOCK_CHARS:
                yield _SEP.join(block) + _SEP
                block, size = [], 0
        n += 1
    if block:
        yield _SEP.join(block) + _SEP


def _split_blocks(lines: Iterator[tuple[str | None, int]], sizes: dict[str, int]) -> Iterator[tuple[str, str]]:
    """(split, block) over every non-blank line, blocks closed at split boundaries."""
    bounds, n = [], 0
    for split, size in sizes.items():
        n += size
        bounds.append((n, split))
    block, chars, n, b = [], 0, 0, 0
    for line, _ in lines:
        if line is None or not line.strip():
            continue
        block.append(line)
        chars += len(line)
        n += 1
        if n == bounds[b][0] or chars >= BLOCK_CHARS:
            yield bounds[b][1], _SEP.join(block) + _SEP
            block, chars = [], 0
            if n == bounds[b][0]:
                b += 1
                if b == len(bounds):
                    return


_WORDS_SEP = re.compile(r"\w+(?:['’-]\w+)*|[^\w\s]")  # tokenize._WORDS: the \x00 separator matches [^\w\s]


def _block_tokens(block: str, kind: str, lowercase: bool) -> list[str]:
    """Tokens of a block, _SEP standing where each line's <eos> goes (tokenize.tokenize_line per line)."""
    if lowercase:
        block = block.lower()
    if kind == "char":
        return list(block)
    if kind == "word":
        return block.replace(_SEP, f" {_SEP} ").split()
    return _WORDS_SEP.findall(block)


# --- the cache ------------------------------------------------------------------------------------

def cache_key(path: Path, spec) -> str:
    st = path.stat()
    fields = {k: v for k, v in asdict(spec).items() if k != "source"}
    text = json.dumps([CACHE_VERSION, str(path.resolve()), st.st_size, st.st_mtime_ns, sorted(fields.items())])
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def cache_root(home: str | Path | None = None) -> Path:
    from ..runs.store import default_home
    return Path(home or default_home()) / CACHE_DIR


def _open(folder: Path, spec):
    from .dataset import SPLITS, Corpus
    meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    dtype = np.dtype(meta["dtype"])
    arrays, offset = {}, 0
    for s in SPLITS:
        n = meta["tokens"][s]
        arrays[s] = np.memmap(folder / "ids.bin", dtype=dtype, mode="r", offset=offset, shape=(n,))
        offset += n * dtype.itemsize
    return Corpus(spec, Vocab(meta["itos"]), arrays["train"], arrays["valid"], arrays["test"],
                  lines=meta["lines"], notes=tuple(meta["notes"]))


def load_streamed(spec, home: str | Path | None = None, chunk_bytes: int = CHUNK_BYTES):
    """The Corpus of a single text file, streamed; ids memory-mapped from the cache (built when missing)."""
    from .dataset import MAX_LINE_CHARS, SPLITS, check_vocab, long_line_error, split_sizes
    path = Path(spec.source)
    folder = cache_root(home) / cache_key(path, spec)
    if (folder / "meta.json").is_file():
        return _open(folder, spec)
    encoding, skip = _encoding(path)
    name = spec.source  # as the in-memory path names it in its messages

    def lines():
        return _lines(_texts(path, encoding, skip, chunk_bytes), MAX_LINE_CHARS)

    # 1. count: non-blank lines and the longest line (the first of the longest, as max() picks)
    n_lines, longest, longest_at, seen = 0, -1, 0, [False]

    def noting_text(texts):  # whether any character is not whitespace (over-long lines included)
        for text in texts:
            seen[0] = seen[0] or bool(text.strip())
            yield text

    for i, (line, length) in enumerate(_lines(noting_text(_texts(path, encoding, skip, chunk_bytes)),
                                              MAX_LINE_CHARS)):
        if length > longest:
            longest, longest_at = length, i
        if line is not None and line.strip():
            n_lines += 1
    if not seen[0]:
        raise CorpusError(f"{path}: is empty apart from whitespace ({human_size(path.stat().st_size)} of spaces "
                          "and line breaks)")
    if longest > MAX_LINE_CHARS:
        raise long_line_error(name, longest_at, longest)
    sizes = split_sizes(n_lines, name)  # {"train": n, "valid": n, "test": n}

    # 2. vocab: types of the training lines
    counts: Counter = Counter()
    for block in _blocks(lines(), 0, sizes["train"]):
        counts.update(_block_tokens(block, spec.tokenizer, spec.lowercase))
    counts.pop(_SEP, None)
    vocab = Vocab.from_counts(counts, spec.min_count, spec.max_vocab)
    check_vocab(spec, vocab)
    del counts

    # 3. encode: every split, appended to ids.bin; written in a private folder, then renamed into place
    dtype = np.uint16 if len(vocab) <= 2**16 else np.uint32
    stoi = dict(vocab.stoi)
    stoi[_SEP] = vocab.eos_id
    unk = vocab.unk_id
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.parent / f".{folder.name}.{os.getpid()}.part"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    tokens = dict.fromkeys(SPLITS, 0)
    try:
        with open(tmp / "ids.bin", "wb") as out:
            for split, block in _split_blocks(lines(), sizes):
                ids = np.array([stoi.get(t, unk) for t in _block_tokens(block, spec.tokenizer, spec.lowercase)],
                               dtype=dtype)
                out.write(ids.tobytes())
                tokens[split] += ids.size
        meta = {"version": CACHE_VERSION, "source": name, "dtype": np.dtype(dtype).name, "tokens": tokens,
                "lines": sizes, "itos": vocab.itos, "notes": []}
        (tmp / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
        try:
            tmp.rename(folder)
        except OSError:  # another process built it meanwhile: use theirs
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    remove_stale(home)
    return _open(folder, spec)


def remove_stale(home: str | Path | None = None, keep: int = 8) -> None:
    """Keep the newest `keep` cached corpora (each is about 2 bytes a token)."""
    root = cache_root(home)
    if not root.is_dir():
        return
    entries = sorted((p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")),
                     key=lambda p: p.stat().st_mtime, reverse=True)
    for p in entries[keep:]:
        shutil.rmtree(p, ignore_errors=True)


__all__ = ["STREAM_MIN_BYTES", "StreamFallback", "load_streamed", "cache_key", "cache_root", "UNK", "EOS"]

"""Big corpora in bounded memory: a text file streamed in chunks, its ids in a memory-mapped cache.

Three passes over the file, none of which holds the whole text or a list of all its tokens:

    1. count   decode and clean chunk by chunk, count control characters (dense ones refuse the
               file), non-blank lines (to place the 80/10/10 split), find the longest line;
               nothing is kept but counters
    2. vocab   tokenize the training lines (the first 80% of non-blank lines) a block at a time and
               count types: the Counter holds one entry per type, not per token
    3. encode  tokenize every split again, map tokens to ids block by block and append them to
               ids.bin as uint16 (vocabulary ≤ 65,536) or uint32

The cache lives in <data folder>/corpus-cache/<key>/ (ids.bin + meta.json), keyed by the file's
resolved path, size, mtime and the corpus spec, so a changed file or spec is encoded afresh and a
second load only maps the file (a damaged entry, or one that is not a regular file, is built again).
Corpus.train/valid/test are np.memmap views into ids.bin.

Gives the same vocabulary, ids and notes as the in-memory path in dataset.py: sparse control
characters are cleaned by the same rule (reading.ControlTally, fed pieces cut after line ends) and
dense ones refused in the same words. Any input the in-memory reader refuses while decoding (not
UTF-8, NUL bytes, a magic number) is handed back to it (StreamFallback), so every such error
message stays the same.
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

from lmcore.corpus.dataset import MAX_LINE_CHARS, SPLITS, Corpus, check_vocab, long_line_error, split_sizes
from lmcore.corpus.reading import (
    _CONTROL_RE,
    MAGIC,
    ControlTally,
    CorpusError,
    file_errors,
    human_size,
    open_regular,
    open_text,
)
from lmcore.corpus.tokenize import EOS, UNK
from lmcore.corpus.vocab import Vocab
from lmcore.paths import default_home

CHUNK_BYTES = 4 * 2**20        # bytes read at a time
BLOCK_CHARS = 2**20            # characters of lines tokenized at once
STREAM_MIN_BYTES = 4 * 2**20  # single files above this are streamed (loading.load_corpus): the in-memory path takes ~15× a file
CACHE_DIR = "corpus-cache"
CACHE_VERSION = 2  # 2: control characters cleaned, not handed to the in-memory reader
_REACH = 64  # characters a cleaning rule looks across at most: a terminal code (ESC [ 1 m) is far shorter
_SEP = "\x00"  # closes each line inside a block; cleaned text has no control characters, so never this one


class StreamFallback(Exception):
    """The file needs the in-memory reader (a decoding problem, whose message that reader words)."""


# --- pass helpers -------------------------------------------------------------------------------

def _encoding(path: Path) -> tuple[str, int]:
    """(encoding, bytes to skip) from the file's first bytes; StreamFallback for anything unusual. A big
    file whose first MB is binary is refused on it, as the in-memory reader refuses it."""
    with file_errors(path):
        f, _size, head = open_text(path)
        with f:
            if not head or any(head.startswith(m) for m, _ in MAGIC):
                raise StreamFallback
            for bom, encoding in ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"),
                                  (codecs.BOM_UTF16_BE, "utf-16-be")):
                if head.startswith(bom):
                    return encoding, len(bom)
            chunk = head
            while chunk:  # NUL bytes: binary, or UTF-16 without a BOM
                if b"\x00" in chunk:
                    raise StreamFallback
                chunk = f.read(CHUNK_BYTES)
    return "utf-8", 0


def _texts(path: Path, encoding: str, skip: int, chunk_bytes: int) -> Iterator[str]:
    """Decoded text in pieces, line ends normalised to \\n, leading U+FEFF dropped (as read_bytes does)."""
    decoder = codecs.getincrementaldecoder(encoding)("strict")
    held, start = "", True
    with file_errors(path):
        f, _ = open_regular(path)
        with f:
            f.seek(skip)
            while True:
                data = f.read(chunk_bytes)
                try:
                    text = held + decoder.decode(data, final=not data)
                except UnicodeDecodeError:
                    raise StreamFallback from None
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


def _cleaned(texts: Iterator[str], tally: ControlTally, most: int = BLOCK_CHARS) -> Iterator[str]:
    """The same text cleaned of control characters, re-cut after line ends, where no cleaning rule reaches
    across; a line longer than `most` is cut where it has no control character near (_quiet_cut)."""
    held, size = [], 0  # the text since the last cut
    for text in texts:
        held.append(text)
        size += len(text)
        cut = text.rfind("\n") + 1
        if not cut and size <= most:
            continue
        joined = "".join(held)
        cut = size - len(text) + cut if cut else _quiet_cut(joined)
        yield tally.clean(joined[:cut])
        held, size = [joined[cut:]], size - cut
    if size:
        yield tally.clean("".join(held))


def _quiet_cut(text: str) -> int:
    """Where to cut a long line: the middle of the last 2 × _REACH characters free of control characters, so
    no cleaning rule spans the cut; the end when there is none (controls so dense the text is refused anyway)."""
    best, last = 0, -1
    for found in _CONTROL_RE.finditer(text):
        if found.start() - last > 2 * _REACH:
            best = found.start() - _REACH
        last = found.start()
    if len(text) - last > 2 * _REACH:
        best = len(text) - _REACH
    return best or len(text)


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
    return Path(home or default_home()) / CACHE_DIR


def _open(folder: Path, spec):
    """The Corpus cached in folder; meta.json and ids.bin are opened as regular files only."""
    f, _ = open_regular(folder / "meta.json")
    with f:
        meta = json.loads(f.read().decode("utf-8"))
    dtype = np.dtype(meta["dtype"])
    arrays, offset = {}, 0
    ids, _ = open_regular(folder / "ids.bin")
    with ids:  # each map keeps the file open itself
        for s in SPLITS:
            n = meta["tokens"][s]
            arrays[s] = np.memmap(ids, dtype=dtype, mode="r", offset=offset, shape=(n,))
            offset += n * dtype.itemsize
    vocab = Vocab(meta["itos"], types_seen=meta.get("types"))  # a cache from before "types": not known
    return Corpus(spec, vocab, arrays["train"], arrays["valid"], arrays["test"], lines=meta["lines"],
                  notes=tuple(meta["notes"]))


def _cached(folder: Path, spec):
    """The cached Corpus, or None when there is none yet or it is damaged (removed, to be built again)."""
    try:
        return _open(folder, spec)
    except FileNotFoundError:
        return None
    except (CorpusError, OSError, ValueError, KeyError, TypeError):
        shutil.rmtree(folder, ignore_errors=True)
        return None


def load_streamed(spec, home: str | Path | None = None, chunk_bytes: int = CHUNK_BYTES):
    """The Corpus of a single text file, streamed; ids memory-mapped from the cache (built when missing)."""
    path = Path(spec.source)
    with file_errors(path):
        folder = cache_root(home) / cache_key(path, spec)
    corpus = _cached(folder, spec)
    if corpus is not None:
        return corpus
    encoding, skip = _encoding(path)

    def texts(tally: ControlTally | None = None) -> Iterator[str]:
        return _cleaned(_texts(path, encoding, skip, chunk_bytes), tally or ControlTally())

    sizes, notes = _count(texts, path, spec.source)
    vocab = _vocabulary(texts(), sizes, spec)
    _write(texts(), sizes, vocab, spec, folder, notes)
    remove_stale(home)
    return _open(folder, spec)


def _count(texts, path: Path, name: str) -> tuple[dict[str, int], list[str]]:
    """Pass 1: (lines of each split, notes), or the in-memory path's refusal, in its order: dense control
    characters, whitespace only, a line too long, too few lines. Nothing is kept but counters."""
    tally, seen = ControlTally(), False
    n_lines, longest, longest_at = 0, -1, 0

    def noting(pieces):  # whether any character is not whitespace (over-long lines included)
        nonlocal seen
        for piece in pieces:
            seen = seen or bool(piece.strip())
            yield piece

    for i, (line, length) in enumerate(_lines(noting(texts(tally)), MAX_LINE_CHARS)):
        if length > longest:  # the first of the longest, as max() picks
            longest, longest_at = length, i
        if line is not None and line.strip():
            n_lines += 1
    note = tally.note(str(path))  # named as read_file names it
    if not seen:
        raise CorpusError(f"{path}: is empty apart from whitespace ({human_size(path.stat().st_size)} of spaces "
                          "and line breaks)")
    if longest > MAX_LINE_CHARS:
        raise long_line_error(name, longest_at, longest)
    return split_sizes(n_lines, name), [note] if note else []


def _vocabulary(texts: Iterator[str], sizes: dict[str, int], spec) -> Vocab:
    """Pass 2: the vocabulary of the training lines; the Counter holds one entry per type."""
    counts: Counter = Counter()
    for block in _blocks(_lines(texts, MAX_LINE_CHARS), 0, sizes["train"]):
        counts.update(_block_tokens(block, spec.tokenizer, spec.lowercase))
    counts.pop(_SEP, None)
    vocab = Vocab.from_counts(counts, spec.min_count, spec.max_vocab)
    check_vocab(spec, vocab)
    return vocab


def _write(texts: Iterator[str], sizes: dict[str, int], vocab: Vocab, spec, folder: Path, notes: list[str]) -> None:
    """Pass 3: every split's ids appended to ids.bin, in a private folder renamed into place when complete."""
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
        with open(tmp / "ids.bin", "wb") as out:  # a fresh file in a folder just made: nothing else can be there
            for split, block in _split_blocks(_lines(texts, MAX_LINE_CHARS), sizes):
                ids = np.array([stoi.get(t, unk) for t in _block_tokens(block, spec.tokenizer, spec.lowercase)],
                               dtype=dtype)
                out.write(ids.tobytes())
                tokens[split] += ids.size
        meta = {"version": CACHE_VERSION, "source": spec.source, "dtype": np.dtype(dtype).name, "tokens": tokens,
                "lines": sizes, "itos": vocab.itos, "types": vocab.types_seen, "notes": notes}
        (tmp / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
        try:
            tmp.rename(folder)
        except OSError:  # another process built it meanwhile: use theirs
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


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

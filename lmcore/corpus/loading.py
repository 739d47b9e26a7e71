"""The one way in to a corpus: a small source is read whole (dataset.py), a single big file is streamed
(stream.py); the same vocabulary and ids either way."""
from __future__ import annotations

from pathlib import Path

from lmcore.corpus.dataset import BUILTIN_PREFIX, SPLITS, Corpus, CorpusSpec, check_vocab, tokenized_splits
from lmcore.corpus.stream import STREAM_MIN_BYTES, StreamFallback, load_streamed
from lmcore.corpus.vocab import Vocab


def streams(spec: CorpusSpec) -> bool:
    """Whether load_corpus streams this source (a single file above STREAM_MIN_BYTES) into a memory-mapped cache."""
    if spec.source.startswith(BUILTIN_PREFIX):
        return False
    try:
        path = Path(spec.source)
        return path.is_file() and path.stat().st_size > STREAM_MIN_BYTES
    except (OSError, ValueError):
        return False  # reading it says what is wrong


def load_corpus(spec: CorpusSpec, stream: bool | None = None) -> Corpus:
    """The corpus of a spec. A single file above 4 MB (or any single file with stream=True) is streamed in
    chunks and its ids memory-mapped (lmcore.corpus.stream); the same vocabulary and ids either way."""
    spec.validate()
    if stream if stream is not None else streams(spec):
        if Path(spec.source).is_file():
            try:
                return load_streamed(spec)
            except StreamFallback:
                pass  # bytes the in-memory reader refuses (its message) or reads as UTF-16 without a BOM
    notes: list[str] = []
    tokens, line_counts = tokenized_splits(spec, notes)
    vocab = Vocab.build(tokens["train"], spec.min_count, spec.max_vocab)
    check_vocab(spec, vocab)
    return Corpus(spec, vocab, *(vocab.encode(tokens[s]) for s in SPLITS), lines=line_counts, notes=tuple(notes))

"""Corpus layer: bytes to text, tokenizers, vocabulary, splits, stats and batching for truncated BPTT."""
from __future__ import annotations

import codecs

import numpy as np
import pytest
import torch

from lmcore.corpus.batching import batchify, bptt_chunks, n_chunks
from lmcore.corpus.dataset import CorpusSpec, source_text, split_lines, tokenized_splits
from lmcore.corpus.loading import load_corpus
from lmcore.corpus.reading import CorpusError, decode_text, read_bytes, read_text_file
from lmcore.corpus.tokenize import EOS, UNK, detokenize, tokenize, tokenize_line
from lmcore.corpus.vocab import Vocab

TEXT = "Die Rosen in der Vase sind rot.\nnaïve café – ok\n"


# --- decode_text ------------------------------------------------------------------------------

@pytest.mark.parametrize("data", [
    TEXT.encode("utf-8"),
    codecs.BOM_UTF8 + TEXT.encode("utf-8"),
    TEXT.encode("utf-16"),                          # BOM in the machine's byte order
    codecs.BOM_UTF16_LE + TEXT.encode("utf-16-le"),
    codecs.BOM_UTF16_BE + TEXT.encode("utf-16-be"),
], ids=["utf8", "utf8-bom", "utf16", "utf16-le-bom", "utf16-be-bom"])
def test_decode_text_encodings(data):
    assert decode_text(data, "x.txt") == TEXT  # no BOM character left in the text


def test_decode_text_normalises_line_ends():
    assert decode_text(b"one\r\ntwo\rthree\n", "x.txt") == "one\ntwo\nthree\n"


def test_decode_text_nul_bytes_name_the_file():
    with pytest.raises(CorpusError, match=r"^notes\.bin: .*NUL"):
        decode_text(b"text\x00more text", "notes.bin")


@pytest.mark.parametrize("encoding, order", [("utf-16-le", "LE"), ("utf-16-be", "BE")])
def test_decode_text_utf16_without_bom_is_read_and_said(encoding, order):
    decoded = read_bytes(TEXT.encode(encoding), "u16.txt")
    assert decoded.text == TEXT and decoded.encoding == encoding
    assert decoded.note.startswith("u16.txt: read as UTF-16 " + order + " without a byte-order mark")


def test_decode_text_nul_bytes_off_the_utf16_pattern_are_refused():
    with pytest.raises(CorpusError, match="NUL bytes, so it is binary"):
        decode_text(b"ab\x00\x00cd\x00e" * 20, "odd.bin")


def test_decode_text_latin1_is_refused_with_offset():
    data = "caf\u00e9 au lait".encode("latin-1")
    with pytest.raises(CorpusError, match=r"latin\.txt: is not valid UTF-8 .*offset 3"):
        decode_text(data, "latin.txt")


def test_decode_text_control_characters_are_refused():
    with pytest.raises(CorpusError, match="control characters"):
        decode_text(b"abc\x01\x02def", "ctl.txt")


@pytest.mark.parametrize("data", [b"", b"   \n\t\r\n  ", codecs.BOM_UTF8, codecs.BOM_UTF8 + b"\n\n"])
def test_decode_text_empty_or_whitespace(data):
    with pytest.raises(CorpusError, match=r"empty\.txt: is empty"):
        decode_text(data, "empty.txt")


def test_read_text_file_errors(tmp_path):
    with pytest.raises(CorpusError, match="no such file"):
        read_text_file(tmp_path / "missing.txt")
    with pytest.raises(CorpusError, match="is a folder"):
        read_text_file(tmp_path)
    path = tmp_path / "crlf.txt"
    path.write_bytes(codecs.BOM_UTF8 + b"a b\r\nc d\r\n")
    assert read_text_file(path) == "a b\nc d\n"


# --- tokenizers -------------------------------------------------------------------------------

def test_char_tokenizer_eos_per_line_and_blank_lines_skipped():
    assert tokenize(["ab", "", "   ", "c d"], "char") == ["a", "b", EOS, "c", " ", "d", EOS]


def test_word_tokenizer_splits_on_whitespace_only():
    assert tokenize(["The cat, sat.", "\t", "Hello  world"], "word") == \
        ["The", "cat,", "sat.", EOS, "Hello", "world", EOS]
    assert tokenize(["The Cat"], "word", lowercase=True) == ["the", "cat", EOS]


def test_words_tokenizer_splits_punctuation_keeps_inner_apostrophes():
    assert tokenize_line("Don't stop: the roses (red) are well-known!", "words", lowercase=True) == \
        ["don't", "stop", ":", "the", "roses", "(", "red", ")", "are", "well-known", "!"]
    assert tokenize_line("Hello, World", "words") == ["Hello", ",", "World"]


def test_unknown_tokenizer():
    with pytest.raises(ValueError, match="unknown tokenizer"):
        tokenize_line("a", "bpe")
    with pytest.raises(CorpusError, match="unknown tokenizer"):
        CorpusSpec(source="x", tokenizer="bpe").validate()


def test_detokenize_round_trip():
    # char: spaces are tokens, including ones next to a line end
    assert detokenize(tokenize(["ab c ", " de"], "char"), "char") == "ab c \n de\n"
    # word: no separator space left at either side of a line end
    assert detokenize(["a", "b", EOS, "c", EOS], "word") == "a b\nc\n"
    assert detokenize(["a", EOS, EOS, "b"], "word") == "a\n\nb"


# --- vocabulary -------------------------------------------------------------------------------

def test_vocab_order_specials_and_unk():
    tokens = "b a c a b a <eos> d".split()
    v = Vocab.build(tokens)
    assert v.itos == [UNK, EOS, "a", "b", "c", "d"]  # by frequency, ties alphabetical
    assert (v.unk_id, v.eos_id) == (0, 1)
    assert v.encode(["a", "zzz", "<eos>"]).tolist() == [2, 0, 1]
    assert v.encode(["a"]).dtype == np.int64
    assert v.decode([3, 0]) == ["b", UNK]


def test_vocab_min_count_and_max_vocab():
    tokens = ["x"] * 5 + ["y"] * 3 + ["z"] * 2 + ["w"]
    assert Vocab.build(tokens, min_count=2).itos == [UNK, EOS, "x", "y", "z"]
    assert Vocab.build(tokens, min_count=3).itos == [UNK, EOS, "x", "y"]
    assert Vocab.build(tokens, max_vocab=4).itos == [UNK, EOS, "x", "y"]
    assert len(Vocab.build(tokens, max_vocab=3)) == 3


def test_vocab_is_deterministic_whatever_the_order():
    rng = np.random.default_rng(3)
    tokens = [f"w{i}" for i in rng.integers(0, 50, size=2000)]
    shuffled = list(tokens)
    rng.shuffle(shuffled)
    assert Vocab.build(tokens).itos == Vocab.build(shuffled).itos


def test_vocab_built_from_train_only(tmp_path):
    (tmp_path / "train.txt").write_text("alpha beta\nalpha gamma\n", encoding="utf-8")
    (tmp_path / "valid.txt").write_text("alpha delta\n", encoding="utf-8")
    (tmp_path / "test.txt").write_text("epsilon beta\n", encoding="utf-8")
    c = load_corpus(CorpusSpec(source=str(tmp_path), tokenizer="word", min_count=1))
    assert set(c.vocab.itos) == {UNK, EOS, "alpha", "beta", "gamma"}
    assert c.vocab.decode(c.valid) == ["alpha", UNK, EOS]
    assert c.vocab.decode(c.test) == [UNK, "beta", EOS]


# --- splits -----------------------------------------------------------------------------------

def test_split_80_10_10_contiguous_by_lines():
    lines = [f"line {i}" for i in range(100)]
    text = "\n\n".join(lines)  # blank lines between do not count
    s = split_lines(text, "t")
    assert s["train"] == lines[:80] and s["valid"] == lines[80:90] and s["test"] == lines[90:]


def test_split_small_text_gives_each_split_a_line():
    s = split_lines("a\nb\nc\n", "t")
    assert (s["train"], s["valid"], s["test"]) == (["a"], ["b"], ["c"])
    with pytest.raises(CorpusError, match="t: has 2 non-blank"):
        split_lines("a\n\nb\n", "t")


def test_file_source_split(docs_file):
    c = load_corpus(CorpusSpec(source=str(docs_file), tokenizer="words"))
    assert c.lines == {"train": 320, "valid": 40, "test": 40}
    # the splits are the file's lines in order: the train stream starts with the first line
    first = docs_file.read_text(encoding="utf-8").splitlines()[0]
    n = len(tokenize([first], "words", lowercase=True))
    assert c.vocab.decode(c.train[:n]) == tokenize([first], "words", lowercase=True)


def test_folder_source(tmp_path):
    for name, text in {"train": "a b\n\nc\n", "valid": "b\n", "test": "a c\n"}.items():
        (tmp_path / f"{name}.txt").write_text(text, encoding="utf-8")
    lines = source_text(str(tmp_path))
    assert lines["train"] == ["a b", "", "c"] and lines["test"] == ["a c"]
    c = load_corpus(CorpusSpec(source=str(tmp_path), tokenizer="word", min_count=1))
    assert c.lines == {"train": 2, "valid": 1, "test": 1}
    assert c.stats()["train_tokens"] == 5  # a b <eos> c <eos>


def test_folder_missing_file(tmp_path):
    (tmp_path / "train.txt").write_text("a\n", encoding="utf-8")
    (tmp_path / "test.txt").write_text("a\n", encoding="utf-8")
    with pytest.raises(CorpusError, match=r"lacks valid\.txt"):
        load_corpus(CorpusSpec(source=str(tmp_path)))


def test_missing_source_and_unknown_builtin(tmp_path):
    with pytest.raises(CorpusError, match="no such file"):
        load_corpus(CorpusSpec(source=str(tmp_path / "nope.txt")))
    with pytest.raises(CorpusError, match="unknown built-in corpus 'nope'"):
        load_corpus(CorpusSpec(source="builtin:nope"))


def test_min_count_too_high_for_corpus(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("a b\nc d\ne f\n", encoding="utf-8")
    with pytest.raises(CorpusError, match="min-count 5"):
        load_corpus(CorpusSpec(source=str(path), tokenizer="word", min_count=5))


@pytest.mark.parametrize("name", ["agreement", "python-docs"])
def test_builtin_corpora_load(name):
    c = load_corpus(CorpusSpec(source=f"builtin:{name}"))
    st = c.stats()
    assert st["vocab"] > 100 and st["train_tokens"] > 40_000
    assert st["valid_tokens"] > 0 and st["test_tokens"] > 0
    assert c.train.dtype == np.int64 and int(c.train.max()) < len(c.vocab)


# --- stats ------------------------------------------------------------------------------------

def test_stats_consistent(docs_file, lmcore_home):
    c = load_corpus(CorpusSpec(source=str(docs_file), tokenizer="words", min_count=2))
    st = c.stats()
    assert st["vocab"] == len(c.vocab)
    assert st["train_tokens"] + st["valid_tokens"] + st["test_tokens"] == c.train.size + c.valid.size + c.test.size
    for split in ("train", "valid", "test"):
        assert 0.0 <= st[f"{split}_unk_rate"] <= 1.0
        ids = c.split(split)
        assert (ids == c.vocab.eos_id).sum() == st[f"{split}_lines"]  # one <eos> a line
    assert st["train_unk_rate"] > 0  # min_count 2 leaves singletons out of the vocabulary
    assert st["valid_unk_rate"] > st["train_unk_rate"]  # unseen words only in the held-out text
    every_type = set(tokenized_splits(c.spec, [])[0]["train"]) - {EOS, UNK}
    assert st["train_types"] == len(every_type) > len(c.vocab)  # the singletons min count 2 made <unk> counted too
    streamed = load_corpus(c.spec, stream=True)
    assert streamed.stats()["train_types"] == st["train_types"]  # written to the streamed corpus's cache and read back
    rf = c.rank_frequency()
    assert rf.sum() == st["train_tokens"] and np.all(np.diff(rf) <= 0)
    with pytest.raises(ValueError, match="unknown split"):
        c.split("dev")


# --- batching ---------------------------------------------------------------------------------

def test_batchify_columns_are_contiguous_streams():
    ids = np.arange(26)
    grid = batchify(ids, 4)
    assert grid.shape == (6, 4) and grid.dtype == torch.long  # 24 kept, ragged tail of 2 dropped
    for j in range(4):
        assert grid[:, j].tolist() == list(range(6 * j, 6 * j + 6))


def test_bptt_chunks_targets_shift_and_last_chunk_shorter():
    grid = batchify(np.arange(40), 4)  # (10, 4)
    chunks = list(bptt_chunks(grid, 4))
    assert n_chunks(grid, 4) == len(chunks) == 3  # 9 predictable rows: 4 + 4 + 1
    assert [x.size(0) for x, _ in chunks] == [4, 4, 1]
    for x, y in chunks:
        assert x.shape == y.shape
        assert torch.equal(y, x + 1)  # each target is the next token of its column's stream
    # the chunks tile the grid: their inputs are rows 0..8, their targets rows 1..9
    assert torch.equal(torch.cat([x for x, _ in chunks]), grid[:-1])
    assert torch.equal(torch.cat([y for _, y in chunks]), grid[1:])


def test_bptt_chunks_exact_fit_and_degenerate_grids():
    grid = batchify(np.arange(36), 4)  # (9, 4): 8 predictable rows
    assert [x.size(0) for x, _ in bptt_chunks(grid, 4)] == [4, 4]
    assert n_chunks(grid, 4) == 2
    one_row = batchify(np.arange(5), 4)
    assert one_row.shape == (1, 4)
    assert list(bptt_chunks(one_row, 4)) == [] and n_chunks(one_row, 4) == 0

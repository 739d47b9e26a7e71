"""Big corpora: the streaming reader gives the in-memory path's vocabulary and ids, from a memory-mapped cache."""
from __future__ import annotations

import os
import random

import numpy as np
import pytest
import torch

from lmcore.corpus.batching import MappedGrid, batchify, bptt_chunks
from lmcore.corpus.dataset import SPLITS, CorpusSpec
from lmcore.corpus.loading import load_corpus, streams
from lmcore.corpus.reading import CorpusError
from lmcore.corpus.stream import STREAM_MIN_BYTES, cache_root, load_streamed

WORDS = ["The", "cat", "sat", "on", "the", "mat", "Σ", "don't", "well-known", "café", "ΑΣ", "İstanbul", "<eos>",
         "<unk>", ",", ".", "roses", "naïve"]


def medium_text(n_lines: int = 3000, seed: int = 0) -> str:
    """Lines with every kind of line end, blank lines and words that change length when lowercased."""
    rng = random.Random(seed)
    out = ["\ufeff"]
    for _ in range(n_lines):
        out.append(" ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 12))))
        out.append(rng.choice(["\n", "\r\n", "\r", "\n\n", "\u2028", "\x85", " \n"]))
    return "".join(out)


@pytest.mark.parametrize("tokenizer", ["words", "word", "char"])
@pytest.mark.parametrize("lowercase", [True, False])
def test_streaming_equals_in_memory_with_chunks_cut_mid_line_and_mid_word(tokenizer, lowercase, tmp_path, lmcore_home):
    path = tmp_path / "medium.txt"
    path.write_bytes(medium_text().encode("utf-8"))
    spec = CorpusSpec(str(path), tokenizer, lowercase, min_count=2 if tokenizer == "words" else 1)
    memory = load_corpus(spec, stream=False)
    for chunk in (7, 4099):  # 7 bytes: chunks end inside words, UTF-8 characters and \r\n pairs
        streamed = load_streamed(spec, home=tmp_path / f"home{chunk}", chunk_bytes=chunk)
        assert isinstance(streamed.train, np.memmap) and streamed.train.dtype == np.uint16
        assert streamed.vocab.itos == memory.vocab.itos and streamed.lines == memory.lines
        for s in SPLITS:
            assert np.array_equal(streamed.split(s), memory.split(s)), s
    assert streamed.stats() == memory.stats()


def test_cache_reused_then_invalidated_when_the_file_changes(tmp_path):
    path, home = tmp_path / "t.txt", tmp_path / "home"
    path.write_text(medium_text(500), encoding="utf-8")
    spec = CorpusSpec(str(path), "word", min_count=1)  # "zebra" below occurs once
    first = load_streamed(spec, home=home)
    [folder] = [p for p in cache_root(home).iterdir()]
    stamp = (folder / "ids.bin").stat().st_mtime_ns
    again = load_streamed(spec, home=home)
    assert (folder / "ids.bin").stat().st_mtime_ns == stamp  # mapped, not written again
    assert np.array_equal(first.train, again.train) and again.vocab.itos == first.vocab.itos
    assert len(list(cache_root(home).iterdir())) == 1
    load_streamed(CorpusSpec(str(path), "char"), home=home)  # another spec: its own entry
    assert len(list(cache_root(home).iterdir())) == 2
    path.write_text("zebra crossing\n" + medium_text(500, seed=1), encoding="utf-8")
    os.utime(path, ns=(stamp + 10**9, stamp + 10**9))
    changed = load_streamed(spec, home=home)
    assert "zebra" in changed.vocab.stoi and len(list(cache_root(home).iterdir())) == 3
    assert changed.vocab.decode(changed.train[:3]) == ["zebra", "crossing", "<eos>"]


def test_a_5mb_file_loads_as_a_memmap_and_trains_from_it(tmp_path, lmcore_home):
    rng = np.random.default_rng(0)
    words = np.array([f"w{i}" for i in range(70_000)])  # over 65,536 types: uint32
    lines = [" ".join(words[rng.integers(0, 70_000, size=12)]) for _ in range(60_000)]
    path = tmp_path / "five.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert STREAM_MIN_BYTES < path.stat().st_size and streams(CorpusSpec(str(path)))
    corpus = load_corpus(CorpusSpec(str(path), "word"), stream=True)
    assert isinstance(corpus.train, np.memmap) and corpus.train.dtype == np.uint32 and len(corpus.vocab) > 2**16
    assert corpus.lines == {"train": 48_000, "valid": 6_000, "test": 6_000}
    assert corpus.vocab.decode(corpus.train[:13]) == lines[0].split() + ["<eos>"]
    grid = batchify(corpus.train, 4)
    assert isinstance(grid, MappedGrid)
    dense = batchify(np.asarray(corpus.train).astype(np.int64), 4)
    assert grid.size() == dense.size()
    for (x, y), (dx, dy) in zip(bptt_chunks(grid, 35), bptt_chunks(dense, 35)):
        assert x.dtype == torch.long and torch.equal(x, dx) and torch.equal(y, dy)


def test_streamed_errors_match_the_in_memory_messages(tmp_path, lmcore_home):
    cases = {
        "blank.txt": b"  \n\t\n" * 10,
        "short.txt": b"one line\n\ntwo lines\n",
        "long.txt": b"ok\n" + b"x" * 150_000 + b"\nok\n",
        "latin.txt": "caf\u00e9\n".encode("latin-1") * 5,
        "ctl.txt": b"a\x01b\nc\n d\n",
        "png.txt": b"\x89PNG\r\n\x1a\n....",
        "utf16.txt": "a b\nc d\ne f\n".encode("utf-16-le"),  # no BOM: the in-memory reader's guess and note
        "one-type.txt": b"a a\na\na a a\n",
    }
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        spec = CorpusSpec(str(path), "word")
        try:
            expected = load_corpus(spec, stream=False)
        except CorpusError as err:
            with pytest.raises(CorpusError) as got:
                load_corpus(spec, stream=True)
            assert str(got.value) == str(err), name
        else:
            assert load_corpus(spec, stream=True).notes == expected.notes, name


# --- limits: the app's upload limit and the CLI's file limit ---------------------------------------

def test_cli_files_have_their_own_limit_and_old_files_keep_meaning_what_they_said(tmp_path, monkeypatch):
    from lmcore.limits import Limits, check_source_size, load_limits
    path = tmp_path / "c.txt"
    path.write_bytes(b"word " * 300_000)  # 1.4 MB
    default = Limits()
    assert (default.max_upload_mb, default.max_corpus_mb) == (25, 2048)
    check_source_size(str(path), default)  # over no limit
    config = tmp_path / "server.toml"
    monkeypatch.setenv("LMCORE_CONFIG", str(config))
    config.write_text("[limits]\nmax_upload_mb = 1\nmax_corpus_mb = 2\n")
    check_source_size(str(path), load_limits())  # uploads are bounded at 1 MB, CLI files at 2 MB
    config.write_text("[limits]\nmax_corpus_mb = 1.0\n")
    with pytest.raises(CorpusError, match=r"over this server's limit of 1\.0 MB \(max_corpus_mb in "):
        check_source_size(str(path), load_limits())
    config.write_text("[limits]\nmax_upload_mb = 1\n")  # written before max_corpus_mb existed: bounds the CLI too
    with pytest.raises(CorpusError, match=r"over this server's limit of 1\.0 MB \(max_upload_mb in "):
        check_source_size(str(path), load_limits())


def test_app_refuses_a_big_upload_and_names_the_cli(lmcore_home):
    from streamlit.testing.v1 import AppTest

    from tests.conftest import REPO
    lmcore_home.mkdir(parents=True)
    (lmcore_home / "lmcore.toml").write_text("[limits]\nmax_upload_mb = 1\n")
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120).run()
    at.switch_page("views/corpus.py").run()
    at.radio[0].set_value("upload a .txt file").run()
    assert any("python -m lmcore train --corpus" in c.value for c in at.caption)
    at.file_uploader[0].set_value(("big.txt", b"some words here\n" * 80_000, "text/plain")).run()
    [error] = at.error
    text = error.value.replace("\\", "")
    assert "over this server's upload limit of 1.0 MB" in text and "python -m lmcore train --corpus FILE.txt" in text


def test_mapped_grid_blocks_of_columns_match_the_dense_grid(tmp_path):
    ids = np.memmap(tmp_path / "ids.bin", dtype=np.uint16, mode="w+", shape=(1003,))
    ids[:] = np.arange(1003) % 997
    grid, dense = batchify(ids, 8), batchify(np.asarray(ids).astype(np.int64), 8)
    half = grid[:, 4:8].contiguous()
    assert half.size() == (125, 4) and not half.is_cuda
    assert torch.equal(half[3:40], dense[:, 4:8][3:40]) and torch.equal(grid[120:200], dense[120:])


def test_loading_a_file_takes_memory_in_proportion_to_it(tmp_path):
    """An 18 MB file took 263 MB to load (the in-memory path holds every token as a Python string: ~15× a file).
    Files over 4 MB are streamed now: a 12 MB file loads within 3× its size plus a fixed 64 MB (measured
    in its own process, peak RSS after the imports)."""
    import subprocess
    import sys

    from .conftest import REPO, subprocess_env
    rng = random.Random(3)
    words = [f"w{i}" for i in range(5000)]
    path = tmp_path / "twelve.txt"
    with path.open("w") as f:
        while f.tell() < 12 * 2**20:
            f.write(" ".join(rng.choice(words) for _ in range(rng.randint(5, 20))) + "\n")
    script = ("import resource, sys, torch\n"
              "from lmcore.corpus.dataset import CorpusSpec\nfrom lmcore.corpus.loading import load_corpus\n"
              "peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024\n"
              "before = peak(); load_corpus(CorpusSpec(sys.argv[1], 'word')); print(peak() - before)\n")
    done = subprocess.run([sys.executable, "-c", script, str(path)], cwd=REPO, env=subprocess_env(tmp_path / "home"),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert int(done.stdout) <= 3 * path.stat().st_size + 64 * 2**20, int(done.stdout) / 2**20

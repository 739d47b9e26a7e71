"""Corpus paths that are not regular files, reached by every way the corpus code opens a file: a folder's
train/valid/test.txt, a streamed file, the stream's cache, the fingerprint that keys the app's cache.

A FIFO's open() blocks for ever, so each test runs under an alarm: a regression fails instead of hanging."""
from __future__ import annotations

import os
import signal
import socket
from pathlib import Path

import numpy as np
import pytest

from lmcore.corpus.dataset import SPLITS, CorpusSpec, spec_fingerprint, tokenized_splits
from lmcore.corpus.loading import load_corpus, streams
from lmcore.corpus.reading import CorpusError
from lmcore.corpus.stream import cache_key, cache_root, load_streamed

GUARD_S = 20  # a blocked open() shows up as TimeoutError rather than a stuck suite
TEXT = "".join(f"the cat number {i} sat on the mat\n" for i in range(40))


@pytest.fixture(autouse=True)
def no_hang():
    def hung(*_):
        raise TimeoutError(f"still blocked after {GUARD_S} s: a file was opened that should have been refused")
    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(GUARD_S)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def opened(monkeypatch) -> list[str]:
    """Every path os.open is asked for during the test (open_regular's non-blocking open included)."""
    seen, real = [], os.open
    monkeypatch.setattr(os, "open", lambda path, *a, **k: seen.append(str(path)) or real(path, *a, **k))
    return seen


def make_socket(path: Path) -> None:
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(path))  # the bound name stays as a socket file after close


KINDS = {
    "fifo": (os.mkfifo, "a FIFO (named pipe)"),
    "zero": (lambda p: p.symlink_to("/dev/zero"), "a character device (such as /dev/zero)"),
    "folder": (os.mkdir, "a folder"),
    "socket": (make_socket, "a socket"),
}


def folder_corpus(root: Path, odd: str, kind: str) -> Path:
    folder = root / "corpus"
    folder.mkdir()
    for s in SPLITS:
        if s == odd:
            KINDS[kind][0](folder / f"{s}.txt")
        else:
            (folder / f"{s}.txt").write_text(TEXT)
    return folder


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("odd", SPLITS)
def test_folder_member_is_refused_by_kind_before_any_file_is_opened(tmp_path, opened, odd, kind):
    folder = folder_corpus(tmp_path, odd, kind)
    for stream in (None, False, True):
        with pytest.raises(CorpusError) as err:
            load_corpus(CorpusSpec(str(folder), "word", min_count=1), stream=stream)
        assert str(err.value) == f"{folder / f'{odd}.txt'}: is {KINDS[kind][1]}, not a regular file"
    assert opened == []  # the three are checked before the first is read


def test_folder_member_missing_is_still_named_as_missing(tmp_path):
    folder = folder_corpus(tmp_path, "valid", "fifo")
    (folder / "valid.txt").unlink()
    (folder / "test.txt").unlink()
    with pytest.raises(CorpusError, match=r"corpus: folder lacks valid\.txt, test\.txt$"):
        tokenized_splits(CorpusSpec(str(folder)))


def test_folder_of_regular_files_loads_through_symlinks(tmp_path):
    folder = folder_corpus(tmp_path, "test", "fifo")
    (folder / "test.txt").unlink()
    (tmp_path / "real-test.txt").write_text(TEXT)
    (folder / "test.txt").symlink_to(tmp_path / "real-test.txt")  # a link to a regular file is one
    corpus = load_corpus(CorpusSpec(str(folder), "word", min_count=1))
    assert corpus.lines == {"train": 40, "valid": 40, "test": 40}


@pytest.mark.parametrize("kind", ["fifo", "zero"])
def test_streamed_path_refuses_by_kind(tmp_path, lmcore_home, opened, kind):
    path = tmp_path / "big.txt"
    KINDS[kind][0](path)
    spec = CorpusSpec(str(path), "word")
    assert not streams(spec)  # stat only: says nothing, opens nothing
    for load in (lambda: load_streamed(spec), lambda: load_corpus(spec, stream=True)):
        with pytest.raises(CorpusError) as err:
            load()
        assert str(err.value) == f"{path}: is {KINDS[kind][1]}, not a regular file"
    assert opened == []


@pytest.mark.parametrize("member", ["meta.json", "ids.bin"])
def test_a_fifo_in_the_stream_cache_is_rebuilt_not_opened(tmp_path, member):
    path, home = tmp_path / "t.txt", tmp_path / "home"
    path.write_text(TEXT)
    spec = CorpusSpec(str(path), "word", min_count=1)
    first = load_streamed(spec, home=home)
    folder = cache_root(home) / cache_key(path, spec)
    (folder / member).unlink()
    os.mkfifo(folder / member)
    again = load_streamed(spec, home=home)
    assert again.vocab.itos == first.vocab.itos and np.array_equal(again.train, first.train)
    assert (folder / member).is_file()


def test_a_damaged_stream_cache_is_rebuilt(tmp_path):
    path, home = tmp_path / "t.txt", tmp_path / "home"
    path.write_text(TEXT)
    spec = CorpusSpec(str(path), "word", min_count=1)
    expected = np.array(load_streamed(spec, home=home).test)  # a copy: the maps see the file cut below
    ids = cache_root(home) / cache_key(path, spec) / "ids.bin"
    ids.write_bytes(ids.read_bytes()[:10])  # cut short: the maps would not fit
    assert np.array_equal(load_streamed(spec, home=home).test, expected)


def test_fingerprint_of_a_folder_opens_nothing_and_follows_its_files(tmp_path, opened):
    folder = folder_corpus(tmp_path, "train", "fifo")
    spec = CorpusSpec(str(folder))
    before = spec_fingerprint(spec)  # a FIFO member: stat only, no hang
    (folder / "train.txt").unlink()
    (folder / "train.txt").write_text(TEXT)
    with_file = spec_fingerprint(spec)
    (folder / "valid.txt").write_text(TEXT + "one more line\n")
    assert len({before, with_file, spec_fingerprint(spec)}) == 3  # the app's cache sees a changed member
    assert opened == []

"""Files a hostile or careless user gives: FIFOs, devices, folders, absurd limits, control characters, huge NULs.

Each CLI case runs in a subprocess with a timeout, so a regression that blocks in open() or reads /dev/zero
for ever fails the test instead of hanging the suite (the timeout is a guard, not a measurement)."""
from __future__ import annotations

import codecs
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lmcore.corpus.dataset import SPLITS, CorpusSpec
from lmcore.corpus.loading import load_corpus
from lmcore.corpus.reading import (
    BINARY_SAMPLE_BYTES,
    DENSE_CONTROL_SHARE,
    ControlTally,
    CorpusError,
    read_bytes,
    read_file,
)
from lmcore.corpus.stream import _cleaned, load_streamed
from lmcore.limits import RANGES, LimitError, load_limits

REPO = Path(__file__).resolve().parents[1]
DEMO = str(REPO / "assets" / "demos" / "agreement-lstm.pt")
GUARD_S = 30  # a hang shows up as TimeoutExpired rather than a stuck suite


def run_cli(*args, home: Path, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "LMCORE_CONFIG"} | {"LMCORE_HOME": str(home)}
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "lmcore", "--home", str(home), *map(str, args)], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=GUARD_S, stdin=subprocess.DEVNULL)


def assert_one_error(done: subprocess.CompletedProcess, *words: str) -> None:
    lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert all(w in lines[0] for w in words), lines[0]


def write_limits(home: Path, text: str) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "lmcore.toml").write_text(text)


@pytest.fixture
def fifo(tmp_path) -> Path:
    path = tmp_path / "pipe.txt"
    os.mkfifo(path)
    return path


HOSTILE = {"fifo": "a FIFO (named pipe)", "zero": "a character device (such as /dev/zero)"}


def hostile_path(kind: str, fifo: Path) -> Path:
    return fifo if kind == "fifo" else Path("/dev/zero")


# --- 1. not a regular file: refused by kind before open() ----------------------------------------

@pytest.mark.parametrize("kind", list(HOSTILE))
@pytest.mark.parametrize("command", [
    ["train", "--max-steps", 1, "--corpus"],
    ["ngram", "--corpus"],
    ["eval", DEMO, "--corpus"],
    ["inspect", "agreement", "--run", DEMO, "--pairs"],
], ids=["train", "ngram", "eval", "agreement-pairs"])
def test_cli_refuses_fifo_and_device_by_kind(tmp_path, fifo, kind, command):
    path = hostile_path(kind, fifo)
    done = run_cli(*command, path, home=tmp_path / "home")
    assert_one_error(done, str(path), HOSTILE[kind], "not a regular file")


@pytest.mark.parametrize("kind", list(HOSTILE))
def test_lmcore_config_fifo_or_device_is_refused(tmp_path, fifo, kind):
    path = hostile_path(kind, fifo)
    done = run_cli("train", "--max-steps", 1, "--corpus", "builtin:agreement", home=tmp_path / "home",
                   env_extra={"LMCORE_CONFIG": str(path)})
    assert_one_error(done, str(path), HOSTILE[kind], "limits file")


def test_lmcore_toml_that_is_a_folder_is_refused_not_ignored(lmcore_home):
    (lmcore_home / "lmcore.toml").mkdir(parents=True)
    with pytest.raises(LimitError, match=r"lmcore\.toml: is a folder, not a regular file"):
        load_limits(lmcore_home)


def test_lmcore_toml_that_is_a_fifo_is_refused_without_blocking(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    os.mkfifo(home / "lmcore.toml")
    done = run_cli("ngram", "--corpus", "builtin:agreement", home=home)
    assert_one_error(done, "lmcore.toml", "a FIFO (named pipe)")


def test_folder_corpus_with_a_fifo_split_is_refused(tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "valid.txt").write_text("a b c\n" * 5)
    (folder / "test.txt").write_text("a b c\n" * 5)
    os.mkfifo(folder / "train.txt")
    done = run_cli("ngram", "--corpus", folder, home=tmp_path / "home")
    assert_one_error(done, "train.txt")


@pytest.mark.parametrize("make, what", [(os.mkfifo, "a FIFO (named pipe)"), (os.mkdir, "a folder")])
def test_read_file_names_the_kind(tmp_path, make, what):
    make(tmp_path / "x.txt")
    with pytest.raises(CorpusError, match=re.escape(f"x.txt: is {what}")):
        read_file(tmp_path / "x.txt")
    with pytest.raises(CorpusError, match=r"/dev/zero: is a character device"):
        read_file("/dev/zero")


# --- 2. limits finite, positive, within sane maxima ----------------------------------------------

@pytest.mark.parametrize("key, value", [
    ("max_upload_mb", "inf"), ("max_upload_mb", "nan"), ("max_corpus_mb", "1e300"), ("max_corpus_mb", "-inf"),
    ("max_upload_mb", "-1"), ("max_epochs", str(2**62)), ("max_epochs", "-3"), ("max_params", "1e300"),
    ("max_parallel_jobs", "nan"), ("max_queued_runs", "0"), ("max_epochs", "true"),
])
def test_absurd_limits_are_refused_naming_key_and_range(lmcore_home, key, value):
    write_limits(lmcore_home, f"[limits]\n{key} = {value}\n")
    with pytest.raises(LimitError) as err:
        load_limits(lmcore_home)
    lowest, highest = RANGES[key]
    assert f"{key} = " in str(err.value) and f"{highest:,}" in str(err.value) and str(lowest) in str(err.value)


def test_limits_at_the_maxima_are_taken(lmcore_home):
    write_limits(lmcore_home, "[limits]\n" + "".join(f"{k} = {hi}\n" for k, (_, hi) in RANGES.items()))
    limits = load_limits(lmcore_home)
    assert limits.max_epochs == RANGES["max_epochs"][1] and limits.max_corpus_mb == RANGES["max_corpus_mb"][1]


def test_cli_absurd_limit_is_one_error_line(tmp_path):
    home = tmp_path / "home"
    write_limits(home, "[limits]\nmax_upload_mb = inf\n")
    done = run_cli("train", "--max-steps", 1, "--corpus", "builtin:agreement", home=home)
    assert_one_error(done, "max_upload_mb = inf", "at most")


# --- 3. real text with sparse control characters is cleaned; binary stays refused ----------------

FORTUNE = ("A fortune, with {e} emphasis from a typewriter.\n%\nAnother one, quite plain, about the cat and the dog.\n"
           "%\nThe roses in the vase by the door are red, said the {e} gardener.\n%\n")


def fortunes_text(n: int = 40) -> bytes:
    emphasis = "".join(f"_\b{c}" for c in "word")  # nroff underline: _ backspace letter
    bold = "".join(f"{c}\b{c}" for c in "bold")      # nroff bold: letter backspace letter
    return "".join(FORTUNE.format(e=emphasis if i % 2 else bold) for i in range(n)).encode()


def test_fortunes_overstrike_is_cleaned_with_a_note(tmp_path):
    path = tmp_path / "fortunes"
    path.write_bytes(fortunes_text())
    corpus = load_corpus(CorpusSpec(source=str(path), tokenizer="word"))
    [note] = corpus.notes
    assert "cleaned 320 control characters (320 backspaces)" in note and "struck last" in note
    assert "word" in corpus.vocab.stoi and "bold" in corpus.vocab.stoi and "_" not in corpus.vocab.stoi


def test_fortunes_trains_from_the_cli(tmp_path):
    path = tmp_path / "fortunes"
    path.write_bytes(fortunes_text())
    done = run_cli("train", "--corpus", path, "--max-steps", 5, "--hidden", 8, "--batch", 2, "--bptt", 5,
                   home=tmp_path / "home")
    assert done.returncode == 0, done.stderr


def test_form_feeds_and_escapes_are_cleaned(tmp_path):
    gpl = "\n".join(f"Section {i}. You may convey verbatim copies of the Program's source code." for i in range(30))
    text = gpl.replace("Section 10.", "\fSection 10.").replace("Section 20.", "\x1b[1mSection 20.\x1b[0m")
    decoded = read_bytes(text.encode(), "COPYING")
    assert "\f" not in decoded.text and "\x1b" not in decoded.text and "[1m" not in decoded.text
    assert "\n\nSection 10." in decoded.text  # the page break is a line break
    assert "1 form feed" in decoded.note and "2 ESCs" in decoded.note


def test_dense_nroff_markup_is_text_not_binary():
    man = "".join(f"{c}\b{c}" for c in "NAME") + "\n     " + "".join(f"_\b{c}" for c in "ls") + " lists files\n"
    decoded = read_bytes((man * 50).encode(), "ls.1")  # backspaces are a fifth of the characters
    assert decoded.text.startswith("NAME\n     ls lists files\n")
    assert "300 backspaces" in decoded.note


def test_dense_control_characters_are_refused():
    line = "x" * 10 + "\x01"
    share = 1 / len(line)
    assert share > DENSE_CONTROL_SHARE
    with pytest.raises(CorpusError, match="control characters .* looks like binary data"):
        read_bytes((line * 100).encode(), "dense.txt")


def test_a_real_binary_is_refused(tmp_path):
    path = tmp_path / "ls.txt"
    path.write_bytes(Path("/bin/ls").read_bytes()[:200_000])
    with pytest.raises(CorpusError, match="not text|binary"):
        read_file(path)
    without_magic = tmp_path / "ls-tail.txt"
    without_magic.write_bytes(Path("/bin/ls").read_bytes()[4096:200_000])
    with pytest.raises(CorpusError, match="binary|not valid UTF-8"):
        read_file(without_magic)


# --- 3b. the streamed reader cleans and refuses by the same rule, in bounded pieces -----------------

def messy_text(n: int = 60) -> str:
    """Fortunes' overstrike, GPL page breaks, terminal colour codes and stray controls, with CRLF line ends."""
    lines = fortunes_text(n).decode().splitlines()
    lines[3] = "\fSection 3. Terms and \x1b[1;31mconditions\x1b[0m\v of the licence"
    lines[9] = "a bell\x07 rings, a DEL\x7f follows and a file separator\x1c splits nothing"
    return "\r\n".join(lines) + "\r\n"


@pytest.mark.parametrize("tokenizer", ["word", "words", "char"])
def test_streamed_cleaning_gives_the_in_memory_vocabulary_ids_and_note(tmp_path, lmcore_home, tokenizer):
    path = tmp_path / "fortunes"
    path.write_bytes(messy_text().encode())
    spec = CorpusSpec(str(path), tokenizer, min_count=1)
    memory = load_corpus(spec, stream=False)
    [note] = memory.notes
    assert "backspaces" in note and "2 ESCs" in note and "1 form feed" in note and "1 bell" in note
    for chunk in (1, 7, 4099):  # pieces end inside every overstrike, colour code and \r\n pair
        streamed = load_streamed(spec, home=tmp_path / f"home{chunk}", chunk_bytes=chunk)
        assert streamed.notes == memory.notes and streamed.lines == memory.lines
        assert streamed.vocab.itos == memory.vocab.itos
        for s in SPLITS:
            assert np.array_equal(streamed.split(s), memory.split(s)), (chunk, s)
    by_default = load_corpus(spec, stream=True)
    assert isinstance(by_default.train, np.memmap)  # streamed, not handed back to the whole-file reader
    assert by_default.notes == memory.notes


@pytest.mark.parametrize("name, data", [
    ("dense.txt", ("x" * 10 + "\x01\n") * 50),
    ("dense-late.txt", "plain words here\n" * 60 + ("ab\x02\x03\n" * 40)),
    ("utf16-nul.txt", codecs.BOM_UTF16_LE + "a b\n\x00c d\ne f\n".encode("utf-16-le")),
    ("big-head.txt", "\x01" * (BINARY_SAMPLE_BYTES + 10)),
])
def test_streamed_refuses_dense_controls_in_the_in_memory_words(tmp_path, lmcore_home, name, data):
    path = tmp_path / name
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    spec = CorpusSpec(str(path), "word")
    with pytest.raises(CorpusError) as memory:
        load_corpus(spec, stream=False)
    with pytest.raises(CorpusError) as streamed:  # a StreamFallback escaping here would fail the test
        load_streamed(spec)
    assert str(streamed.value) == str(memory.value)
    assert "looks like binary data" in str(memory.value)


def test_a_line_too_long_to_hold_is_cut_where_no_cleaning_rule_reaches(tmp_path):
    words = [f"w{i}" if i % 37 else "_\bu_\bn_\bd" if i % 2 else "\x1b[1mbold\x1b[0m" for i in range(3000)]
    text = " ".join(words)  # one line, no line end: only a quiet cut keeps the pieces bounded
    whole = ControlTally()
    cleaned = whole.clean(text)
    for size in (5, 13, 17, 31):  # a cut at the held text's end would split a colour code or an overstrike
        tally = ControlTally()
        out = list(_cleaned(iter([text[i:i + size] for i in range(0, len(text), size)]), tally, most=500))
        assert max(map(len, out)) <= 500 + size and len(out) > 10
        assert "".join(out) == cleaned and tally.note("t") == whole.note("t"), size


def test_a_line_of_dense_controls_is_still_cut_and_refused():
    text = "a\x01" * 5000
    tally = ControlTally()
    out = list(_cleaned(iter([text[i:i + 100] for i in range(0, len(text), 100)]), tally, most=500))
    assert max(map(len, out)) <= 600
    with pytest.raises(CorpusError, match="5,000 control characters .* binary data"):
        tally.note("dense")


# --- 4. a 1 GB UTF-16 file of NULs is refused without reading it ---------------------------------

# VmHWM, not getrusage's ru_maxrss: Linux keeps ru_maxrss across exec, so a child forked from a big pytest
# process reported the parent's size (780 MB in the full suite) instead of its own.
PEAK_RSS = """
import sys
from lmcore.corpus.dataset import CorpusSpec
from lmcore.corpus.loading import load_corpus
from lmcore.corpus.reading import CorpusError
try:
    load_corpus(CorpusSpec(source=sys.argv[1]))
except CorpusError as err:
    print("refused:", err)
print("peak_kb", next(line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM:")))
"""


def test_a_gigabyte_of_utf16_nuls_is_refused_in_bounded_memory(tmp_path):
    path = tmp_path / "nuls.txt"
    with open(path, "wb") as f:
        f.write(codecs.BOM_UTF16_LE)
        f.truncate(2**30)  # sparse: a gigabyte of NULs that costs no disk
    done = subprocess.run([sys.executable, "-c", PEAK_RSS, str(path)], cwd=REPO, capture_output=True, text=True,
                          timeout=GUARD_S)
    assert done.returncode == 0, done.stderr
    assert "refused:" in done.stdout and "control characters in its first" in done.stdout, done.stdout
    peak_mb = int(done.stdout.split("peak_kb")[1]) / 1024
    assert peak_mb < 500, f"peak RSS {peak_mb:.0f} MB"

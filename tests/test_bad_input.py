"""Bad input, everywhere a user can give it: every case below gets one clear message, from the library
(CorpusError), the CLI (one `error:` line, exit 2) and the app (an error box, never an exception), and
nothing already stored is lost. Hypothesis feeds random bytes and settings to the reader and tokenizers."""
from __future__ import annotations

import codecs
import io
import struct
import tempfile
import zipfile
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from streamlit.testing.v1 import AppTest

from lmcore.cli.main import main
from lmcore.corpus.dataset import CorpusSpec
from lmcore.corpus.loading import load_corpus
from lmcore.corpus.reading import CorpusError, read_bytes, read_file
from lmcore.corpus.tokenize import TOKENIZERS, tokenize
from lmcore.limits import Limits
from lmcore.runs.store import RunStore
from lmcore.training.config import TrainConfig
from lmcore.training.trainer import check_fits

from .conftest import REPO, grammar_lines

GRAMMAR = "\n".join(grammar_lines(200)) + "\n"


def png_bytes() -> bytes:
    """A real 1×1 PNG image."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00")) + chunk(b"IEND", b""))


def zip_bytes() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("notes.txt", GRAMMAR)
    return out.getvalue()


# name, bytes, what the user is told (a part of the message)
REFUSED = [
    ("empty", b"", "is empty (0 bytes)"),
    ("whitespace", b"  \n\t\n   \r\n\n", "is empty apart from whitespace"),
    ("png", png_bytes(), "is a PNG image, not text"),
    ("zip", zip_bytes(), "is a zip archive"),
    ("nul-bytes", b"some text\x00\x00\x01 then \x00 binary \xff\x00" * 20, "contains NUL bytes, so it is binary"),
    ("control-chars", b"text with \x01\x02 bell \x07 in it\n" * 10, "contains 30 control characters"),
    ("latin-1", ("caf\u00e9 cr\u00e8me br\u00fbl\u00e9e\n" * 20).encode("latin-1"),
     "is not valid UTF-8 text (byte 0xE9 at offset 3 (line 1)). It looks like Latin-1"),
    ("bad-utf8", "ok line\n".encode() * 5 + b"\xe2\x82 broken\n", "is not valid UTF-8 text (byte 0xE2 at offset 40 (line 6): a multi-byte character is cut short"),
    ("one-20mb-line", b"x" * (20 * 2**20), "line 1 has 20,971,520 characters; lines of at most 100,000"),
    ("two-lines", b"just two\nlines\n", "has 2 non-blank line(s); at least 3 are needed"),
    ("one-type", b"a a a\n" * 50, "the vocabulary has one type only ('a'"),
]
ACCEPTED = [
    ("utf-16-bom", codecs.BOM_UTF16_LE + GRAMMAR.encode("utf-16-le"), ""),
    ("utf-16-le-no-bom", GRAMMAR.encode("utf-16-le"), "read as UTF-16 LE without a byte-order mark"),
    ("utf-16-be-no-bom", GRAMMAR.encode("utf-16-be"), "read as UTF-16 BE without a byte-order mark"),
    ("utf-8-bom-crlf", codecs.BOM_UTF8 + GRAMMAR.replace("\n", "\r\n").encode(), ""),
]


@pytest.fixture
def stored(lmcore_home):
    """A store holding one finished run with metrics: bad input must leave it as it is."""
    store = RunStore()
    run_id = store.create_run({"name": "keep me", "corpus": {"source": "builtin:agreement"},
                               "model": {"arch": "lstm"}, "train": {}}, status="done")
    store.add_metrics(run_id, {"step": 10, "epoch": 1.0, "valid_ppl": 42.0})
    return store


def _intact(store: RunStore) -> None:
    [run] = store.list_runs()
    assert run["name"] == "keep me" and run["status"] == "done"
    assert [m["valid_ppl"] for m in store.metrics(run["id"])] == [42.0]


# --- the library --------------------------------------------------------------------------------

@pytest.mark.parametrize("name, data, message", REFUSED, ids=[c[0] for c in REFUSED])
def test_library_refuses_with_the_reason(name, data, message, tmp_path):
    path = tmp_path / f"{name}.txt"
    path.write_bytes(data)
    with pytest.raises(CorpusError) as err:
        load_corpus(CorpusSpec(source=str(path), tokenizer="word"))
    assert str(err.value).startswith(str(path)) and message in str(err.value)


@pytest.mark.parametrize("name, data, note", ACCEPTED, ids=[c[0] for c in ACCEPTED])
def test_library_reads_utf16_and_says_what_it_assumed(name, data, note, tmp_path):
    path = tmp_path / f"{name}.txt"
    path.write_bytes(data)
    corpus = load_corpus(CorpusSpec(source=str(path), tokenizer="word"))
    assert corpus.vocab.decode(corpus.train[:7]) == GRAMMAR.split("\n")[0].split() + ["<eos>"]
    assert (note in corpus.notes[0]) if note else corpus.notes == ()


def test_size_limit_is_checked_before_reading(tmp_path):
    path = tmp_path / "big.txt"
    path.write_bytes(b"word " * 1000)
    with pytest.raises(CorpusError, match=r"big\.txt: is 4\.9 KB, over the limit of 1\.0 KB"):
        read_file(path, max_bytes=1024)
    assert Limits().max_upload_mb == 25  # the default for a shared server


def test_corpus_too_small_for_batch_and_tau(tmp_path):
    path = tmp_path / "small.txt"
    path.write_text("\n".join(grammar_lines(40)) + "\n", encoding="utf-8")
    corpus = load_corpus(CorpusSpec(source=str(path), tokenizer="word"))
    with pytest.raises(CorpusError, match=r"too few for batch 20 × τ 35 .*lower the batch size or τ"):
        check_fits(corpus, TrainConfig(batch=20, bptt=35))
    check_fits(corpus, TrainConfig(batch=2, bptt=8))


# --- the CLI ------------------------------------------------------------------------------------

def _cli_error(capsys, *argv) -> str:
    assert main(list(map(str, argv))) == 2
    out = capsys.readouterr()
    lines = out.err.strip().splitlines()
    assert out.out == "" and len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in out.err, out.err
    return lines[0]


@pytest.mark.parametrize("name, data, message", REFUSED, ids=[c[0] for c in REFUSED])
def test_cli_one_error_line_and_nothing_lost(name, data, message, stored, tmp_path, capsys):
    path = tmp_path / f"{name}.txt"
    path.write_bytes(data)
    line = _cli_error(capsys, "--home", stored.home, "train", "--corpus", path, "--tokenizer", "word",
                      "--max-steps", 1)
    assert message in line
    _intact(stored)


def test_cli_upload_limit_from_the_config_file(stored, tmp_path, capsys, monkeypatch):
    path = tmp_path / "big.txt"
    path.write_text(GRAMMAR * 250, encoding="utf-8")  # ~1.2 MB
    config = tmp_path / "classroom.toml"
    config.write_text("[limits]\nmax_upload_mb = 1\n")
    monkeypatch.setenv("LMCORE_CONFIG", str(config))
    for command in ("train", "ngram"):
        line = _cli_error(capsys, "--home", stored.home, command, "--corpus", path)
        assert "over this server's limit of 1.0 MB (max_upload_mb in " + str(config) + ")" in line
    _intact(stored)


def test_cli_corpus_too_small_and_settings_out_of_range(stored, tmp_path, capsys):
    path = tmp_path / "small.txt"
    path.write_text("\n".join(grammar_lines(40)) + "\n", encoding="utf-8")
    line = _cli_error(capsys, "--home", stored.home, "train", "--corpus", path, "--tokenizer", "word",
                      "--batch", 20, "--bptt", 35)
    assert "too few for batch 20 × τ 35" in line
    for flags, word in [(["--hidden", "abc"], "invalid int value: 'abc'"), (["--epochs", "0"], "epochs must be"),
                        (["--epochs", "51"], "51 epochs is over this server's limit of 50"),
                        (["--hidden", "4000", "--layers", "4"], "over this server's limit of 10,000,000"),
                        (["--lr", "nan"], "lr must be positive"), (["--batch", "-1"], "batch must be"),
                        (["--optimizer", "rmsprop"], "invalid choice: 'rmsprop'"),
                        (["--max-vocab", "3"], "max-vocab must be"), (["--time-budget", "-5"], "time-budget")]:
        assert word in _cli_error(capsys, "--home", stored.home, "train", "--corpus", "builtin:agreement",
                                  "--max-steps", 1, *flags)
    assert "invalid choice" in _cli_error(capsys, "--home", stored.home, "frobnicate")
    _intact(stored)


# --- the app --------------------------------------------------------------------------------------

def _corpus_page() -> AppTest:
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120).run()
    at.switch_page("views/corpus.py").run()
    at.radio[0].set_value("upload a .txt file").run()
    return at


def _upload(at: AppTest, name: str, data: bytes) -> AppTest:
    at.file_uploader[0].set_value((name, data, "text/plain")).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


@pytest.mark.parametrize("name, data, message", REFUSED, ids=[c[0] for c in REFUSED])
def test_app_shows_the_reason_and_loses_nothing(name, data, message, stored):
    at = _corpus_page()
    at.selectbox[0].set_value("word").run()
    at = _upload(at, f"{name}.txt", data)
    shown = [e.value.replace("\\", "") for e in at.error]  # the page escapes markdown in messages
    assert len(shown) == 1 and message.replace("\\", "") in shown[0], shown
    assert not at.get("vega_lite_chart")  # the page stopped before the Zipf plot
    _intact(stored)


@pytest.mark.parametrize("name, data, note", ACCEPTED, ids=[c[0] for c in ACCEPTED])
def test_app_reads_utf16_and_says_so(name, data, note, stored):
    at = _corpus_page()
    at = _upload(at, f"{name}.txt", data)
    assert not at.error and len(at.get("vega_lite_chart")) == 1
    infos = [i.value.replace("\\", "") for i in at.info]
    assert any(note in i for i in infos) if note else not any("UTF-16" in i for i in infos)


def test_app_upload_limit_and_a_hostile_file_name(stored, tmp_path, monkeypatch):
    (stored.home / "lmcore.toml").write_text("[limits]\nmax_upload_mb = 1\n")
    at = _corpus_page()
    assert at.file_uploader[0].proto.max_upload_size_mb == 1  # the browser refuses bigger files itself
    at = _upload(at, "<img src=x onerror=alert(1)>.txt", GRAMMAR.encode() * 250)
    [error] = at.error
    assert "over this server's upload limit of 1.0 MB (max_upload_mb in" in error.value.replace("\\", "")
    assert error.value.startswith("\\<img src=x onerror=alert(1)\\>.txt")  # escaped: shown as typed
    assert list((stored.home / "uploads").glob("*")) == []  # nothing written
    _intact(stored)


def test_app_corpus_too_small_for_batch_and_tau_is_refused_before_queueing(stored):
    at = _corpus_page()
    at.selectbox[0].set_value("word").run()
    at = _upload(at, "small.txt", ("\n".join(grammar_lines(40)) + "\n").encode())
    at.switch_page("views/train.py").run()
    at.button[0].click().run()
    assert not at.exception
    [error] = at.error
    shown = error.value.replace("\\", "")
    assert shown.startswith("Not started: run 1 (") and "): the training split has" in shown
    assert "too few for batch 10" in shown
    _intact(stored)  # no run queued


PAGES = ["views/corpus.py", "views/train.py", "views/hidden.py", "views/gates.py", "views/interventions.py",
         "views/next_word.py", "views/bptt.py"]  # every page with a number field


@pytest.mark.parametrize("page", PAGES)
def test_app_number_fields_stay_in_bounds(page, stored):
    """Typing a number outside a field's bounds never reaches the code: the field keeps a value inside them."""
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120).run()
    at.switch_page(page).run()
    assert not at.exception
    fields = list(at.number_input)
    assert fields, page
    for i in range(len(fields)):
        if at.number_input[i].disabled:  # a browser user cannot type there
            continue
        for typed in (10**12, -10**12):
            field = at.number_input[i]
            field.set_value(typed).run()
            assert not at.exception, (page, field.label, [e.value for e in at.exception])
            field = at.number_input[i]
            low = field.min if field.min is not None else -float("inf")
            high = field.max if field.max is not None else float("inf")
            assert low <= field.value <= high, (page, field.label, field.value)
    _intact(stored)


def test_app_model_over_the_parameter_limit_is_refused(stored):
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120).run()
    at.switch_page("views/train.py").run()
    at.number_input(key="hid2").set_value(4000)
    at.number_input(key="layers2").set_value(4)
    at.run()
    at.button[0].click().run()
    assert not at.exception
    [error] = at.error
    shown = error.value.replace("\\", "")
    assert shown.startswith("Not started: run 2 (") and "): the model has" in shown and "limit of 10,000,000" in shown
    _intact(stored)


# --- properties -----------------------------------------------------------------------------------

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
utf16ish = st.text(max_size=300).map(lambda t: t.encode("utf-16-le", errors="surrogatepass"))
some_bytes = st.one_of(st.binary(max_size=3000), utf16ish,
                       st.text(max_size=2000).map(lambda t: t.encode("utf-8", errors="surrogatepass")),
                       st.lists(st.sampled_from(["the cat", "a dog", " ", "\n", "\r\n", "é", "\x00", "<b>"]),
                                max_size=400).map(lambda xs: "".join(xs).encode()))


@PROPERTY
@given(data=some_bytes, limit=st.none() | st.integers(0, 5000))
def test_reader_raises_only_corpus_error(data, limit):
    try:
        decoded = read_bytes(data, "random.txt", limit)
    except CorpusError as err:
        assert str(err).startswith("random.txt: ")
    else:
        assert decoded.text.strip() and "\r" not in decoded.text and decoded.encoding.startswith("utf-")


@PROPERTY
@given(text=st.text(max_size=500), kind=st.sampled_from(list(TOKENIZERS)) | st.text(max_size=6),
       lowercase=st.booleans())
def test_tokenizers_raise_only_corpus_error(text, kind, lowercase):
    try:
        tokens = tokenize(text.splitlines(), kind, lowercase)
    except CorpusError as err:
        assert "unknown tokenizer" in str(err) and kind not in TOKENIZERS
    else:
        assert all(isinstance(t, str) and t for t in tokens)


@PROPERTY
@given(data=some_bytes, tokenizer=st.sampled_from(list(TOKENIZERS)) | st.text(max_size=4),
       lowercase=st.booleans(), min_count=st.integers(-3, 10**9), max_vocab=st.none() | st.integers(-3, 10**9),
       batch=st.integers(1, 10**6), bptt=st.integers(1, 10**6))
def test_corpus_loading_and_fitting_raise_only_corpus_error(data, tokenizer, lowercase, min_count, max_vocab,
                                                             batch, bptt):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "random.txt"
        path.write_bytes(data)
        spec = CorpusSpec(source=str(path), tokenizer=tokenizer, lowercase=lowercase, min_count=min_count,
                          max_vocab=max_vocab)
        try:
            corpus = load_corpus(spec)
            check_fits(corpus, TrainConfig(batch=batch, bptt=bptt))
        except CorpusError:
            pass


@PROPERTY
@given(source=st.text(st.characters(blacklist_characters="/"), max_size=60))  # no device files such as /dev/zero
def test_any_source_string_raises_only_corpus_error(source):
    try:
        load_corpus(CorpusSpec(source=source))
    except CorpusError:
        pass

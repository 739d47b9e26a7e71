"""Issue 14: every string a user controls is shown literally wherever Streamlit renders markdown.

appstate.md is the one escaper. Its rules were measured in chromium against Streamlit 1.67 (see its comments);
here they are pinned on hostile strings, read back as CommonMark reads them, drawn by `streamlit run` and read
back from chromium, and checked on the pages that show run names (Markov vs memory, Train, Compare) through
AppTest."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import appstate
from lmcore.runs.catalog import DEMO_DIR
from lmcore.runs.store import RunStore
from lmcore.training.checkpoints import read_config

from .conftest import REPO, wait_for_streamlit
from .test_browser import CHROMIUM, LAUNCH_ARGS, free_port

HOSTILE = "**bold** [link](http://x) $x^2$ :red[red] <b>b</b> # head"
WJ = "\u2060"  # the word joiner md puts inside patterns that no backslash stops

HOSTILE_STRINGS = [
    HOSTILE, "my_notes.txt", "a __b__ *i* `c` ~~s~~ ~t~ a|b", "![img](http://x.org/a.png) <http://x.org>",
    "bare http://x.org, HTTPS://X.ORG, Www.x.org and me@x.org", "$$x^2$$ and \\(x\\)", ":blue-badge[b] :help[tip]",
    ":material/home: :material_home: :smile: :+1: :streamlit:", "&lt;b&gt; &amp; &#35;", "# h\n> q\n- a\n+ b\n* c",
    "1. one\n2) two\n2024. year", "---\n***\n___\n- - -", "title\n===\nsub\n---", "    code\n\tcode", "a\r\n# h\r# i",
    "a \\* b \\", "[^1]\n\n[^1]: note", "line  \nbreak", "C:\\Users\\x:y 10:30:00", "",
]

# CommonMark: a backslash before any ASCII punctuation character stands for that character
_ESCAPE = re.compile(r"\\([!-/:-@\[-`{-~])")
# what Streamlit's renderer would act on, were it left unescaped (measured; see appstate.md's comments)
_SPECIAL = set("\\`*_[]<>~$#|:!&")
_BLOCK_START = re.compile(r"^ {0,3}(?:[-+*](?:\s|$)|\d{1,9}[.)](?:\s|$)|#|>|=+[ \t]*$"  # list, heading, quote, setext
                          r"|(?:-[ \t]*){3,}$|(?:\*[ \t]*){3,}$|(?:_[ \t]*){3,}$)"  # a rule
                          r"|^(?: {4}|\t)", re.MULTILINE)  # indented code
# patterns matched in the text once escapes are read (GFM autolinks, shortcodes) or in the raw text (:material/)
_TEXT_PATTERNS = [re.compile(p, re.IGNORECASE) for p in (
    r"https?://", r"www\.", r"[\w.+-]@[\w-]", r":[\w+-][\w/+-]*:", r":material/")]


def shown(escaped: str) -> str:
    """The text a reader sees: escapes read as CommonMark reads them, the invisible joiners and no-break
    spaces md adds taken back out."""
    return _ESCAPE.sub(r"\1", escaped).replace(WJ, "").replace("\u00a0", " ")


def unescaped_specials(escaped: str) -> list[str]:
    """Markdown characters in `escaped` that no backslash escapes."""
    found, i = [], 0
    while i < len(escaped):
        if _ESCAPE.match(escaped, i):
            i += 2
            continue
        if escaped[i] in _SPECIAL:
            found.append(escaped[i])
        i += 1
    return found


# --- the helper --------------------------------------------------------------------------------------------------
def test_hostile_run_name_is_escaped_exactly():
    assert appstate.md(HOSTILE) == ("\\*\\*bold\\*\\* \\[link\\](http" + WJ + "\\://x) \\$x^2\\$ \\:red\\[red\\] "
                                    "\\<b\\>b\\</b\\> \\# head")


@pytest.mark.parametrize("text", HOSTILE_STRINGS)
def test_escaped_text_reads_back_as_typed(text):
    escaped = appstate.md(text)
    typed = re.sub(r"(?m)^[ \t]+", lambda m: " " * len(m.group(0)), text.replace("\r\n", "\n").replace("\r", "\n"))
    assert shown(escaped) == typed  # line ends as \n; an indenting tab as one (no-break) space
    assert unescaped_specials(escaped) == []


@pytest.mark.parametrize("text", HOSTILE_STRINGS)
def test_no_line_of_escaped_text_starts_a_block(text):
    escaped = appstate.md(text)
    assert not _BLOCK_START.search(escaped), _BLOCK_START.search(escaped).group(0)


@pytest.mark.parametrize("text", HOSTILE_STRINGS)
def test_links_and_shortcodes_no_backslash_stops_are_broken(text):
    escaped = appstate.md(text)
    read = _ESCAPE.sub(r"\1", escaped)  # as Streamlit's plugins see the text: escapes read, joiners kept
    for pattern in _TEXT_PATTERNS:
        assert not pattern.search(read), (pattern.pattern, read)
    assert ":material/" not in escaped  # Streamlit rewrites it in the raw text, before reading escapes


def test_plain_names_stay_as_they_are():
    for text in ("lstm 1×128", "#12 tiny lstm (done)", "grammar.txt · word · lowercased", "run 3 of 4, 75%"):
        assert shown(appstate.md(text)) == text
    assert appstate.md("lstm 1×128") == "lstm 1×128"


# --- in Streamlit's own renderer -----------------------------------------------------------------------------------
PROBE = """
import json, sys
sys.path.insert(0, sys.argv[1])
import streamlit as st
import appstate
for i, text in enumerate(json.loads(sys.argv[2])):
    with st.container(key=f"case{i}"):
        st.markdown(appstate.md(text))
        st.warning(appstate.md(text))
        st.checkbox(appstate.md(text), key=f"label{i}")  # a widget's label: markdown, and 4 spaces make code
        st.radio("option", [appstate.md(text)], key=f"option{i}")  # a radio's options are markdown too
st.markdown("all drawn")
"""


def test_escaped_text_shows_literally_in_chromium(tmp_path):
    """Each hostile string through appstate.md, drawn by `streamlit run` and read back from Debian's chromium:
    the text as typed, in plain paragraphs only (no link, emphasis, LaTeX, colour, icon, list, heading, code)."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium); "
                    ".ci/run does this")
    from playwright.sync_api import sync_playwright
    cases = [t for t in HOSTILE_STRINGS if t]
    script = tmp_path / "probe.py"
    script.write_text(PROBE)
    port = free_port()
    log = open(tmp_path / "streamlit.log", "w+")
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(script), "--server.port", str(port),
                             "--server.headless", "true", "--server.fileWatcherType", "none",
                             "--browser.gatherUsageStats", "false", "--", str(REPO), json.dumps(cases)],
                            cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        wait_for_streamlit(f"http://localhost:{port}", proc, log)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
            page = browser.new_page(viewport={"width": 1440, "height": 4000})
            page.goto(f"http://localhost:{port}")
            page.get_by_text("all drawn").wait_for(timeout=60_000)
            page.wait_for_function("!document.querySelector('[data-testid=\"stStatusWidget\"], "
                                   "[data-testid=\"stSkeleton\"]')", timeout=60_000)  # widgets load lazily
            drawn = page.evaluate("""n => [...Array(n).keys()].map(i => [...document.querySelectorAll(
                `.st-key-case${i} [data-testid="stMarkdownContainer"]`)].map(e => ({text: e.innerText,
                tags: [...new Set([...e.querySelectorAll('*')].map(d => d.tagName.toLowerCase()))]})))""", len(cases))
            browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    for text, shown_here in zip(cases, drawn):
        words = " ".join(text.split())
        literal = [m for m in shown_here if " ".join(m["text"].replace(WJ, "").split()) == words]
        assert len(literal) == 4, (text, shown_here)  # text, warning, label, option
        assert all(set(m["tags"]) <= {"p", "br"} for m in shown_here), (text, shown_here)


# --- the pages ---------------------------------------------------------------------------------------------------
def add_run(store: RunStore, name: str, status: str, **fields) -> int:
    """A run of the store trained elsewhere: the python-docs demo's LSTM, under the given name."""
    demo = DEMO_DIR / "python-docs-lstm.pt"
    run_id = store.create_run(replace(read_config(demo), name=name).to_dict(), status=status)
    store.update_run(run_id, **fields)
    store.set_checkpoint(run_id, "best", demo, {"epoch": 1, "step": 10})
    return run_id


@pytest.fixture
def hostile_runs(lmcore_home: Path) -> tuple[int, int]:
    """A finished run and a diverged one, both with the hostile name; the diverged one's message quotes it."""
    store = RunStore(lmcore_home)
    done = add_run(store, HOSTILE, "done", best_valid_ppl=80.0, test_ppl=82.0, step=10, total_steps=10,
                   params=1000)
    diverged = add_run(store, HOSTILE, "diverged", best_valid_ppl=90.0, step=5, total_steps=10, params=1000,
                       message=f"the loss blew up in {HOSTILE}")
    return done, diverged


def open_page(page: str) -> AppTest:
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120).run()
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def texts(at: AppTest, *kinds: str) -> list[str]:
    return [element.value for kind in kinds for element in getattr(at, kind)]


def assert_escaped(values: list[str], at_least: int = 1) -> None:
    """The hostile name is shown escaped in at least `at_least` of these elements, and nowhere unescaped."""
    assert sum(appstate.md(HOSTILE) in v for v in values) >= at_least, values
    assert not any(HOSTILE in v for v in values), [v for v in values if HOSTILE in v]


def test_markov_vs_memory_names_runs_escaped(hostile_runs):
    at = open_page("views/memory.py")
    assert at.multiselect[0].value == [f"run:{hostile_runs[0]}"]  # the newest finished run, by default
    assert "agreement probe does not apply" in at.info[0].value  # python-docs has no "roses"
    assert_escaped(texts(at, "info"))
    assert_escaped(texts(at, "caption", "warning", "error", "markdown"), at_least=0)


def test_train_names_runs_escaped(hostile_runs):
    at = open_page("views/train.py")
    lines = texts(at, "markdown")
    assert sum(f"**#{i} {appstate.md(HOSTILE)}**" in v for v in lines for i in hostile_runs) == 2, lines
    assert_escaped(lines, at_least=2)
    warnings = texts(at, "warning")  # the diverged run's message quotes the name
    assert any(f"#{hostile_runs[1]}: the loss blew up in {appstate.md(HOSTILE)}" in w for w in warnings), warnings
    assert_escaped(warnings)
    assert_escaped(texts(at, "caption"))  # Look inside: the best finished run


def test_compare_names_runs_escaped(hostile_runs):
    at = open_page("views/compare.py")
    warnings = texts(at, "warning")
    assert any(f"#{hostile_runs[1]} {appstate.md(HOSTILE)} diverged: the loss blew up in "
               f"{appstate.md(HOSTILE)}"
               in w for w in warnings), warnings
    assert_escaped(warnings)
    assert_escaped(texts(at, "caption"))  # Look inside: the best finished run
    assert_escaped(texts(at, "markdown", "info", "error"), at_least=0)
    # a selectbox or multiselect shows its options as plain text: there the name stays as typed
    [plotted] = [m for m in at.multiselect if m.label == "Runs to plot"]  # the first is the Tags filter
    assert any(HOSTILE in option for option in plotted.options)

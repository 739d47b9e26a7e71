"""English prose from Python's own documentation, with no download.

Every CPython ships `pydoc_data.topics.topics`: the text of about eighty
sections of the language reference and library manual (the pages `help()`
shows), already rendered from reST to plain text. This module keeps the prose
of those pages and drops what is not prose, so a word-level language model
trains on English sentences rather than on code and grammar rules:

- section underlines ("*****", "=====", "-----", "~~~~~") and tables go;
  the heading above an underline stays as a line of its own;
- literal blocks (code examples, ``>>>`` sessions, grammar rules with ``::=``)
  go. Sphinx renders them as indented paragraphs, but definition bodies and
  list items are indented prose, so each paragraph is judged by its content:
  prose starts with a capital, ends like a sentence, and is made of words;
- ``*emphasis*``, ``**strong**``, quotes around names ("assert" -> assert),
  footnote marks ([1]) and list bullets are removed; whitespace is collapsed.

Each paragraph becomes one line, because the corpus is split into
train/valid/test by contiguous lines and an end-of-sentence token is added at
each line end. Topics are taken in key order, so the text is the same for a
given Python version.
"""
from __future__ import annotations

import re
from pydoc_data.topics import topics

__all__ = ["python_docs_text"]

# A line made of one repeated punctuation character: a section underline or a
# simple-table rule ("=====  ======" counts too).
_UNDERLINE = re.compile(r"\s*([*=\-~^#+])\1{2,}(\s+\1+)*\s*")
# Lines that belong to a grid table or to a grammar rule's continuation.
_TABLE_LINE = re.compile(r"\s*(\+[-=+]|\|)")
# Signs that a paragraph is an interactive session, a grammar rule, or code
# with a trailing comment ("x = 1  # note").
_CODE_MARKS = re.compile(r"^\s*(>>>|\.\.\. )|::=|\S {2,}# ", re.M)
# List bullets and enumerators at the start of a paragraph; footnote labels.
_LIST_MARKER = re.compile(r"^(?:[*\-+•]|\d+\.|\(\d+\)|#\.|\[\d+\])\s+")
_FOOTNOTE_REF = re.compile(r"\s*\[\d+\]")
_STRONG = re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*")
# Inline code is rendered in double quotes ("*args"); emphasis is looked for
# only outside them, so a quoted "*" or "**" operator is kept.
_QUOTED = re.compile(r'("[^"]*")')
_EMPHASIS = re.compile(r"(?<![\w*])\*(?=[^\s*])(.+?)(?<=[^\s*])\*(?![\w*])")
# A token that reads as a word, perhaps with punctuation stuck to it.
_WORDLIKE = re.compile(r"[(\"'“‘]*[A-Za-z][A-Za-z'’\-]*[)\"'”’,.;:!?]*")
_SENTENCE_END = re.compile(r"[.:;,?!][)\"'”’]*$")


def _paragraphs(text: str) -> list[tuple[str, list[str]]]:
    """Split one topic into ("heading" | "body", lines) blocks.

    Blocks are separated by blank lines; a line followed by an underline is a
    heading of its own; underlines themselves are dropped.
    """
    blocks: list[tuple[str, list[str]]] = []
    current: list[str] = []

    def flush() -> None:
        if current:
            blocks.append(("body", current.copy()))
            current.clear()

    for line in text.expandtabs(8).split("\n"):
        line = line.rstrip()
        if not line:
            flush()
        elif _UNDERLINE.fullmatch(line):
            if current:  # the line above was the heading
                heading = current.pop()
                flush()
                blocks.append(("heading", [heading]))
        else:
            current.append(line)
    flush()
    return blocks


def _drop_emphasis(text: str) -> str:
    parts = _QUOTED.split(text)  # odd indices are quoted code
    for i in range(0, len(parts), 2):
        parts[i] = _EMPHASIS.sub(r"\1", _STRONG.sub(r"\1", parts[i]))
    return "".join(parts)


def _clean_markup(text: str) -> str:
    text = _FOOTNOTE_REF.sub("", text)
    text = _drop_emphasis(text)
    text = text.replace('"', "").replace("“", "").replace("”", "")
    text = text.replace("‘", "'").replace("’", "'")
    return " ".join(text.split())


def _is_prose(text: str) -> bool:
    """Does a paragraph (list marker and emphasis removed, quotes not yet) read as English?

    Code rarely starts with a capital and is rarely made mostly of plain
    words, so: enough word-like tokens, and a capital (or a quoted name)
    first and a sentence's end, or a lower-case start but longer and wordier
    (list items: "the appropriate metaclass is determined;"), or a capital
    start and long and wordy (a sentence whose "::" the renderer removed).
    """
    words = text.split()
    if len(words) < 3:
        return False
    ratio = sum(1 for w in words if _WORDLIKE.fullmatch(w)) / len(words)
    ends_like_sentence = bool(_SENTENCE_END.search(text))
    capital = text[0].isupper() or text[0] in "\"“(_"
    if capital and ends_like_sentence:
        return ratio >= 0.6
    if text[0].islower() and ends_like_sentence:
        return len(words) >= 5 and ratio >= 0.8
    return capital and len(words) >= 6 and ratio >= 0.8


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _drop_term(lines: list[str]) -> list[str]:
    """Drop a definition-list term written right above its indented body.

    "object.__enter__(self)" or "**PEP 343** - The with statement" above a
    deeper-indented description is a label, not a sentence. A list item's
    continuation lines are deeper too, but only by the width of its marker.
    """
    if len(lines) < 2:
        return lines
    first = lines[0].strip()
    marker = _LIST_MARKER.match(first)
    hang = marker.end() if marker else 0
    if _indent(lines[1]) > _indent(lines[0]) + hang:
        return lines[1:]
    return lines


def _clean_block(kind: str, lines: list[str]) -> str | None:
    """One paragraph as a line of prose, or None if it is not prose."""
    if any(_TABLE_LINE.match(line) for line in lines):
        return None
    if _CODE_MARKS.search("\n".join(lines)):
        return None
    if kind == "heading":
        text = _clean_markup(lines[0])
        return text if re.search(r"[A-Za-z]{2}", text) else None
    lines = _drop_term(lines)
    joined = " ".join(line.strip() for line in lines)
    joined = _LIST_MARKER.sub("", joined)
    joined = _drop_emphasis(joined)
    if not _is_prose(joined):  # judged before the quotes come off
        return None
    text = _clean_markup(joined).replace("::", ":")
    return text if re.search(r"[A-Za-z]", text) else None


def python_docs_text() -> str:
    """The prose of `pydoc_data.topics`, one paragraph a line, ending with a newline."""
    out: dict[str, None] = {}  # ordered set: topics share paragraphs, and a repeat would leak across splits
    for key in sorted(topics):
        for kind, lines in _paragraphs(topics[key]):
            line = _clean_block(kind, lines)
            if line:
                out.setdefault(line)
    return "".join(line + "\n" for line in out)

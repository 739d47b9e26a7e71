"""Text a user controls, made literal for Streamlit's markdown (issue 14), and what an empty cell shows."""
from __future__ import annotations

import re

MISSING = "—"  # what a table shows in a cell with no value (never "None" or "nan")
# What Streamlit 1.67's markdown honours, measured in chromium (issue 14): markdown, LaTeX ($), HTML entities (&),
# Streamlit's directives (:red[…], :blue-badge[…], :help[…]), a line's list, heading, quote, rule and setext
# markers. A backslash makes each of these characters literal.
_MARKDOWN = re.compile(r"([\\`*_\[\]<>~$#|:!&])")
_LINE_START = re.compile(r"^([ \t]*\d*)([-+=.)])", re.MULTILINE)  # - item, + item, ---, ===, 1. item, 1) item
_INDENT = re.compile(r"^[ \t]+", re.MULTILINE)  # four would start a code block (in a widget's label)
# Some patterns are matched after the escapes are read (or before them, in the raw text), so no backslash stops
# them: GFM's bare links (http://, www., e-mail) and the :smile: / :material/icon: shortcodes. An invisible word
# joiner (U+2060) after the scheme, before www's dot, after an @ and after a shortcode's colon breaks each one.
_TEXT_PATTERN = re.compile(r"https?(?=:)|www(?=\.)|@|:(?=[\w/+-]+:|material/)", re.IGNORECASE)


def md(text) -> str:
    """Any text a user controls (a run or file name, a token, typed text, an error quoting them) made literal
    for everything Streamlit renders as markdown: st.markdown, st.caption, st.error/warning/info/success,
    st.toast, st.spinner, st.progress text, widget, expander, tab and popover labels, radio options and help=.
    Not for selectbox / multiselect options (format_func): those show plain text, backslashes included.
    Where a message is our own markdown with a user's string inside, escape only that string."""
    text = _TEXT_PATTERN.sub("\\g<0>\u2060", str(text).replace("\r\n", "\n").replace("\r", "\n"))
    text = _LINE_START.sub(r"\1\\\2", _MARKDOWN.sub(r"\\\1", text))
    return _INDENT.sub(lambda m: "\u00a0" * len(m.group(0)), text)  # no-break spaces: shown, never a code block

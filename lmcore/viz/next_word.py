"""Next-word view: the text coloured by surprisal (HTML), the top-k next tokens (bar chart), sampled text.

Every token is html.escape'd here: tokens come from the user's text and uploaded corpora, and the page
shows this HTML as is. Plotly also reads tags in labels (<b>, <br>, <a>), so its labels are escaped too,
with style.plain: Plotly turns &amp; &lt; &gt; back into characters but prints &quot; as it is.
"""
from __future__ import annotations

import html
from typing import Sequence

import numpy as np
import plotly.graph_objects as go

from lmcore.corpus.tokenize import EOS
from lmcore.viz.style import MARGIN, PALETTE, plain

HIGHLIGHT = PALETTE[0]   # the chosen position and the actual next token
BAR = "#9ecae1"
SHOWN = {" ": "␣", "\t": "⇥"}


def shown(token: str) -> str:
    """A visible stand-in for a blank token (a space or tab in a character model)."""
    return SHOWN.get(token, token)


def esc(text: str) -> str:
    return html.escape(text, quote=True)


def surprisal_colour(bits: float, max_bits: float) -> str:
    """White at 0 bits to red at max_bits and above."""
    a = 0.75 * float(np.clip(bits / max_bits, 0.0, 1.0)) if max_bits > 0 else 0.0
    return f"rgba(214,39,40,{a:.2f})"


def default_max_bits(surprisal: np.ndarray) -> float:
    """The colour scale's top: the 95th percentile, so one very rare word does not wash out the rest."""
    s = np.asarray(surprisal, dtype=float)
    return max(1.0, float(np.percentile(s, 95))) if s.size else 1.0


def surprisal_html(tokens: Sequence[str], surprisal: np.ndarray, selected: int | None = None,
                   unknown: Sequence[bool] | None = None, kind: str = "words", max_bits: float | None = None) -> str:
    """One span per token, its background from the surprisal of that token (bits) given the tokens before it.

    tokens: (T,); surprisal: (T-1,), for tokens[1:]. Hovering a token shows its surprisal (title=).
    selected t: a solid box around token t (the model has read up to here) and a dashed one around t+1
    (the actual next token). unknown: tokens the vocabulary lacks (the model read <unk>).
    """
    s = np.asarray(surprisal, dtype=float)
    top = max_bits or default_max_bits(s)
    spans = []
    for i, tok in enumerate(tokens):
        style = "padding:1px 2px;border-radius:3px;"
        if i == 0:
            title = f"{tok}: the first token; nothing predicts it"
        else:
            title = f"{tok}: {s[i - 1]:.2f} bits (P = {2.0 ** -s[i - 1]:.3g})"
            style += f"background:{surprisal_colour(s[i - 1], top)};"
        if unknown is not None and unknown[i]:
            title += "; not in the vocabulary, read as <unk>"
            style += "text-decoration:underline dotted;"
        if selected is not None and i == selected:
            style += f"outline:2px solid {HIGHLIGHT};"
        elif selected is not None and i == selected + 1:
            style += f"outline:2px dashed {HIGHLIGHT};"
        text = "\u00a0" if tok == " " else "⏎" if tok == EOS else shown(tok)
        span = f"<span title='{esc(title)}' style='{style}'>{esc(text)}</span>"
        spans.append(span + ("<br>" if tok == EOS else ""))
    sep = "" if kind == "char" else " "
    legend = (f"<div style='font-size:0.8rem;color:#555;margin-top:0.4rem'>surprisal: "
              f"<span style='padding:0 1.5rem;background:linear-gradient(to right, {surprisal_colour(0, 1)}, "
              f"{surprisal_colour(1, 1)})'></span> 0 to ≥ {top:.1f} bits · hover a token for its value · "
              f"<span style='outline:2px solid {HIGHLIGHT};padding:0 3px;margin:0 3px'>read up to here</span> · "
              f"<span style='outline:2px dashed {HIGHLIGHT};padding:0 3px;margin:0 3px'>actual next token</span></div>")
    return (f"<div style='line-height:2.2;font-size:1rem;max-height:17rem;overflow-y:auto'>{sep.join(spans)}</div>"
            f"{legend}")


def context(tokens: Sequence[str], t: int, kind: str = "words", n: int = 4) -> str:
    """The last n tokens read at position t, as plain text for a title (escape it before HTML)."""
    window = ["⏎" if tok == EOS else shown(tok) for tok in tokens[max(0, t - n + 1):t + 1]]
    return ("" if kind == "char" else " ").join(window)


def topk_figure(tokens: Sequence[str], probs: Sequence[float], actual: str | None = None,
                title: str | None = None) -> go.Figure:
    """Horizontal bars of the most probable next tokens, most probable on top; the actual next token in blue.

    The title is plain text (escaped here); a newline in it starts a new line.
    """
    probs = np.asarray(probs, dtype=float)
    labels = [plain(shown(t)) for t in tokens]
    colours = [HIGHLIGHT if t == actual else BAR for t in tokens]
    fig = go.Figure(go.Bar(x=probs, y=labels, orientation="h", marker_color=colours,
                           text=[f"{p:.3f}" for p in probs], textposition="outside", cliponaxis=False,
                           hovertemplate="%{y}: P = %{x:.4f}<extra></extra>"))
    lines = plain(title).split("\n") if title else []
    fig.update_layout(title=dict(text="<br>".join(lines), font=dict(size=14)) if title else None,
                      height=60 + 28 * max(len(labels), 1) + 20 * len(lines),
                      margin=dict(MARGIN, l=90, r=50, t=20 + 22 * len(lines)), xaxis_title="probability")
    fig.update_xaxes(range=[0, max(float(probs.max()) * 1.2, 0.05) if probs.size else 1])
    fig.update_yaxes(type="category", autorange="reversed")
    return fig


def sample_html(prompt: str, generated: str) -> str:
    """The prompt in grey, then the sampled text, both escaped; line breaks kept."""
    return ("<div style='white-space:pre-wrap;font-family:monospace;line-height:1.6;padding:0.5rem;"
            "border:1px solid #ddd;border-radius:4px'>"
            f"<span style='color:#888'>{esc(prompt)}</span><span style='color:#111'>{esc(generated)}</span></div>")

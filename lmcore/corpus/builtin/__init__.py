"""Built-in corpora, made on this machine with no download.

- "python-docs": English prose from Python's own documentation (the default:
  every Python installation has it, and it reads like real technical English).
- "agreement": generated sentences whose verb agrees with a subject far back,
  the lecture's "the roses in the vase by the door are red" at scale, with the
  positions of every subject and verb for the agreement probe
  (`generate_agreement` returns them).

Each text has one sentence or paragraph a line.
"""
from __future__ import annotations

from functools import lru_cache

from lmcore.corpus.builtin.agreement import AGREEMENT_DEFAULT, AgreementPair, generate_agreement
from lmcore.corpus.builtin.python_docs import python_docs_text

__all__ = [
    "AGREEMENT_DEFAULT",
    "AgreementPair",
    "BUILTIN_CORPORA",
    "DEFAULT_CORPUS",
    "agreement_pairs",
    "builtin_text",
    "generate_agreement",
    "python_docs_text",
]

BUILTIN_CORPORA: dict[str, str] = {
    "python-docs": "Prose from Python's own documentation (pydoc topics), one paragraph a line, ~55k words.",
    "agreement": "Generated sentences whose verb agrees with a subject far back "
                 "(\"the roses in the vase by the door are red .\"), ~200k tokens.",
}

DEFAULT_CORPUS = "python-docs"


@lru_cache(maxsize=None)
def builtin_text(name: str) -> str:
    """The text of the built-in corpus `name` (a key of `BUILTIN_CORPORA`)."""
    if name == "python-docs":
        return python_docs_text()
    if name == "agreement":
        return _agreement()[0]
    known = ", ".join(repr(k) for k in BUILTIN_CORPORA)
    raise KeyError(f"unknown built-in corpus {name!r}; known corpora: {known}")


@lru_cache(maxsize=1)
def _agreement() -> tuple[str, list[AgreementPair]]:
    return generate_agreement(**AGREEMENT_DEFAULT)


def agreement_pairs() -> list[AgreementPair]:
    """Subject and verb positions of every line of the built-in `agreement` corpus (for the probe)."""
    return _agreement()[1]

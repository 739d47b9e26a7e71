"""Runs as people keep them: a name of their own, a note, tags, and archived (hidden from the lists unless asked
for). The Train page and the CLI (rename, note, tag, archive) write them only through this module, which checks
every value; the store keeps them beside the run's row (RunStore.annotate) and never changes the config a run
started with: a rename is a column of its own that catalog.run_name prefers.

A run that is queued or training cannot be archived: it would vanish from the Train page's list, the one place
where it is stopped. Resuming an archived run brings it back (lmcore.runs.service clears the flag).

Every write takes the `person` who asks: one who may not change the run (lmcore.runs.people) is refused with
NotYours before anything is written; None (a single laptop) may change any run.
"""
from __future__ import annotations

import re
from collections.abc import Iterable

from lmcore.runs.people import Person, changeable
from lmcore.runs.store import ACTIVE, Run, RunStore
from lmcore.values import check_text

NAME_CHARS = 80     # a name fits a legend
NOTE_CHARS = 2_000
TAG_CHARS = 32
MAX_TAGS = 10
TAGS_CHARS = MAX_TAGS * (TAG_CHARS + 2)  # every tag typed in one field, "a, b, …"


# --- values ---------------------------------------------------------------------------------------------------
def normal_name(name) -> str:
    """A run's own name: one line of at most NAME_CHARS, stripped; '' gives the run its config's name back."""
    return check_text("a run's name", name, NAME_CHARS)


def normal_note(text) -> str:
    """A note: free text of at most NOTE_CHARS (line breaks kept), stripped; '' clears it."""
    return check_text("a note", text, NOTE_CHARS, lines=True)


def normal_tag(tag) -> str:
    """A tag: stripped, lower-case, inner spaces as one, no commas (they separate tags where several are typed in
    one field), at most TAG_CHARS."""
    text = check_text("a tag", tag, 4 * TAG_CHARS)
    text = re.sub(r"\s+", " ", text).lower()
    if not text:
        raise ValueError("a tag cannot be empty")
    if "," in text:
        raise ValueError(f"a tag cannot hold a comma ({text!r}): give each tag on its own")
    if len(text) > TAG_CHARS:
        raise ValueError(f"a tag must be at most {TAG_CHARS} characters, not {len(text)} ({text[:TAG_CHARS]}…)")
    return text


def normal_tags(tags: Iterable) -> tuple[str, ...]:
    """A run's tags: each normalised, each once, sorted; at most MAX_TAGS."""
    if isinstance(tags, str):
        raise ValueError("tags must be a list of tags, not one string (split_tags reads 'a, b')")
    found = tuple(sorted({normal_tag(t) for t in tags}))
    if len(found) > MAX_TAGS:
        raise ValueError(f"a run takes at most {MAX_TAGS} tags, not {len(found)}")
    return found


def split_tags(text: str) -> list[str]:
    """Tags as typed in one field or argument: 'baseline, Seed 2,' -> ['baseline', 'Seed 2'] (empty pieces
    dropped; each is checked by normal_tag)."""
    return [t for t in (piece.strip() for piece in str(text).split(",")) if t]


# --- writes ---------------------------------------------------------------------------------------------------
def _get(store: RunStore, run_id: int, person: Person | None = None, action: str = "change") -> Run:
    return changeable(store.get_run(run_id), f"run {run_id}", store.home, person, action)


def _write(store: RunStore, run_id: int, person: Person | None, action: str, **fields) -> Run:
    _get(store, run_id, person, action)
    written = store.annotate(run_id, **fields)
    if written is None:  # deleted between the two
        raise ValueError(f"no run {run_id} in {store.home}")
    return written


def rename(store: RunStore, run_id: int, name: str, person: Person | None = None) -> Run:
    """Give a run a name of its own ('' : back to its config's name); its config keeps the one it started with."""
    return _write(store, run_id, person, "rename", display_name=normal_name(name))


def set_note(store: RunStore, run_id: int, text: str, person: Person | None = None) -> Run:
    return _write(store, run_id, person, "annotate", note=normal_note(text))


def set_tags(store: RunStore, run_id: int, tags: Iterable[str], person: Person | None = None) -> Run:
    return _write(store, run_id, person, "tag", tags=normal_tags(tags))


def add_tags(store: RunStore, run_id: int, tags: Iterable[str], person: Person | None = None) -> Run:
    """The run's tags and these (read and written in one transaction: a tag added meanwhile is kept)."""
    new = normal_tags(tags)
    return _write(store, run_id, person, "tag", tags=lambda now: normal_tags((*now, *new)))


def remove_tags(store: RunStore, run_id: int, tags: Iterable[str], person: Person | None = None) -> Run:
    """The run's tags without these (a tag it does not have is no error)."""
    gone = set(normal_tags(tags))
    return _write(store, run_id, person, "untag", tags=lambda now: tuple(t for t in now if t not in gone))


def keep(store: RunStore, run_id: int, name: str | None = None, note: str | None = None,
         tags: Iterable[str] | None = None, person: Person | None = None) -> Run:
    """Set any of a run's name, note and tags at once (the Train page's editor): every value is checked before
    any is written, then all are written in one transaction."""
    values = {k: v for k, v in (("display_name", None if name is None else normal_name(name)),
                                ("note", None if note is None else normal_note(note)),
                                ("tags", None if tags is None else normal_tags(tags))) if v is not None}
    return _write(store, run_id, person, "change", **values) if values else _get(store, run_id, person, "change")


def archive(store: RunStore, run_id: int, person: Person | None = None) -> Run:
    """Hide a finished (or stopped, failed, …) run from the lists; refused while it is queued or training."""
    _get(store, run_id, person, "archive")
    written = store.annotate(run_id, unless=ACTIVE, archived=True)  # the status checked in the same transaction
    if written is None:
        run = _get(store, run_id)
        raise ValueError(f"run {run_id} is {run.status}: an archived run is hidden from the Train page where it is "
                         "stopped, so stop it (or let it end) first")
    return written


def unarchive(store: RunStore, run_id: int, person: Person | None = None) -> Run:
    return _write(store, run_id, person, "unarchive", archived=False)


# --- reads ----------------------------------------------------------------------------------------------------
def shown(runs: list[Run], archived: bool = False) -> list[Run]:
    """The runs a list shows: archived ones only when asked for."""
    return [r for r in runs if archived or not r.archived]


def tagged(runs: list[Run], tags: Iterable[str]) -> list[Run]:
    """The runs with any of these tags; all of them when no tag is given."""
    wanted = {normal_tag(t) for t in tags}
    return [r for r in runs if not wanted or wanted & set(r.tags)]


def all_tags(runs: list[Run]) -> list[str]:
    """Every tag these runs carry, sorted."""
    return sorted({t for r in runs for t in r.tags})


def note_excerpt(note: str, chars: int = 40) -> str:
    """A note's first line, cut to `chars` with an ellipsis (a table cell, a line of `runs`)."""
    first = note.strip().split("\n", 1)[0]
    more = len(first) > chars or "\n" in note.strip()
    return first[:chars].rstrip() + ("…" if more else "")

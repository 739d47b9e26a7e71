"""Who acts on a run, and whether they may change it. Identity-neutral: a Person is an opaque id and a display
name, whoever vouched for it (a sign-in provider, a browser's anonymous cookie, the CLI's Unix user).

Everyone may view, compare and inspect every run. Changing one (stop, resume, rename, notes, tags, archive,
delete) is its owner's, or an instructor's. Runs made before runs had owners (owner '') are anyone's, so a
single laptop's old data folder keeps working.

    oidc:alice@uni.edu    signed in (Streamlit's st.login); an instructor when lmcore.toml names her
    anon:<32 characters>  a browser without sign-in (new_anonymous_id); an instructor by the passphrase
    cli:<unix user>       the command line: the machine's owner, an instructor (it has the files anyway)
"""
from __future__ import annotations

import getpass
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Person:
    id: str                    # opaque and stable; never shown (display names are)
    name: str = ""             # what others see beside the person's runs ('' : unknown)
    instructor: bool = False   # may change every run


class NotYours(PermissionError):
    """An action on a run (or sweep) that belongs to someone else; refused before anything is written."""


def machine_owner() -> Person:
    """The person the CLI acts as: the Unix user, an instructor, since the data folder is theirs anyway."""
    user = _unix_user()
    return Person(id=f"cli:{user}", name=user, instructor=True)


def _unix_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a container's uid without a passwd entry
        return "unknown"


def new_anonymous_id() -> str:
    """An unguessable identity for a browser without sign-in (192 random bits)."""
    return "anon:" + secrets.token_urlsafe(24)


def owner_of(thing: Mapping) -> str:
    """The owner's identity of a run (Run) or a sweep (the store's dict); '' for one made before owners."""
    return thing.get("owner") or ""


def can_change(person: Person, thing: Mapping) -> bool:
    """Whether the person may stop, resume, rename, annotate or delete this run (or sweep)."""
    owner = owner_of(thing)
    return person.instructor or owner == "" or owner == person.id


def check_can_change(person: Person, thing: Mapping, action: str) -> None:
    """NotYours, naming the owner by display name (never the identity), when the person may not do this."""
    if can_change(person, thing):
        return
    what = "sweep" if "spec" in thing else "run"  # the store's sweep rows carry their grid spec
    whose = thing.get("owner_name") or "someone else"
    raise NotYours(f"{what} {thing['id']} belongs to {whose}; only its owner or an instructor can {action} it")


def changeable(thing: Mapping | None, name: str, home, person: Person | None, action: str):
    """The store's row for `name` ("run 7", "sweep 2"), once it exists and the person (if named) may change it:
    ValueError when it does not exist, NotYours before anything is written when it is not theirs."""
    if thing is None:
        raise ValueError(f"no {name} in {home}")
    if person is not None:
        check_can_change(person, thing, action)
    return thing


def mine(runs: Iterable[Mapping], person: Person) -> list:
    """The runs (or sweeps) this person owns; legacy runs without an owner are nobody's."""
    return [r for r in runs if owner_of(r) == person.id]


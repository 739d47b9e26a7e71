"""Who teaches: the [classroom] table of lmcore.toml (beside [limits], read by lmcore.limits.read_settings).

    [classroom]
    instructors = ["alice@uni.edu"]      # sign-in identities (st.user's email, else its subject), any case
    instructor_passphrase_sha256 = "…"   # for a server without sign-in: what `python -m lmcore classroom
                                         # hash-passphrase` prints; never the passphrase itself

The passphrase hash takes two forms: 64 hex digits, sha256 of the passphrase's UTF-8 bytes; or SALT$HEX,
sha256 of the salt followed by the passphrase (what hash_passphrase writes: a random salt makes one
leaked file's hash useless against another's). Either is compared in constant time. As with [limits], an
unknown key or a value of the wrong type is an error naming the key, never silently ignored.
"""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from lmcore.limits import LimitError, read_settings

KEYS = ("instructors", "instructor_passphrase_sha256")
MIN_PASSPHRASE = 8     # students may guess at it from the page, with no one counting the tries
MAX_INSTRUCTORS = 1_000
_HASH = re.compile(r"(?:([A-Za-z0-9_-]{1,64})\$)?([0-9a-fA-F]{64})")  # any case: a hash pasted from another tool


@dataclass(frozen=True)
class Classroom:
    instructors: tuple[str, ...] = ()   # sign-in identities, lower-cased
    passphrase_sha256: str = ""         # '' : no passphrase, so no instructor without sign-in
    source: str = "defaults"

    def names_instructor(self, identity: str) -> bool:
        """Whether a signed-in identity (an email or a provider's subject) is one of the instructors."""
        return bool(identity) and identity.strip().lower() in self.instructors


def load_classroom(home: str | Path | None = None) -> Classroom:
    """The [classroom] table of lmcore.toml ($LMCORE_CONFIG, else <home>/lmcore.toml); none: no instructors."""
    settings = read_settings(home)
    if settings is None:
        return Classroom()
    path, data = settings
    table = data.get("classroom", {})
    unknown = sorted(set(table) - set(KEYS)) if isinstance(table, dict) else []
    if not isinstance(table, dict) or unknown:
        raise LimitError(f"{path}: unknown setting(s) {', '.join(unknown) or 'classroom'}; a [classroom] table "
                         "may set " + ", ".join(KEYS))
    return Classroom(_instructors(path, table.get("instructors", [])),
                     _passphrase_hash(path, table.get("instructor_passphrase_sha256", "")), str(path))


def _instructors(path: Path, value) -> tuple[str, ...]:
    good = isinstance(value, list) and len(value) <= MAX_INSTRUCTORS and \
        all(isinstance(v, str) and v.strip() and len(v) <= 320 for v in value)
    if not good:
        raise LimitError(f"{path}: instructors = {value!r:.80} must be a list of sign-in identities (emails "
                         f"or subjects, at most {MAX_INSTRUCTORS:,}), e.g. instructors = [\"alice@uni.edu\"]")
    return tuple(sorted({v.strip().lower() for v in value}))


def _passphrase_hash(path: Path, value) -> str:
    if not isinstance(value, str) or (value and not _HASH.fullmatch(value)):
        raise LimitError(f"{path}: instructor_passphrase_sha256 = {value!r:.80} must be 64 hex digits or "
                         "SALT$HEX, as `python -m lmcore classroom hash-passphrase` prints it")
    return value


def hash_passphrase(passphrase: str, salt: str | None = None) -> str:
    """The value of instructor_passphrase_sha256 for this passphrase: SALT$HEX, with a random salt by default."""
    if len(passphrase) < MIN_PASSPHRASE:
        raise ValueError(f"an instructor passphrase needs at least {MIN_PASSPHRASE} characters; students can try "
                         "to guess it from the page")
    salt = secrets.token_urlsafe(12) if salt is None else salt
    return f"{salt}${_digest(salt, passphrase)}"


def is_instructor_passphrase(passphrase: str, classroom: Classroom) -> bool:
    """Whether the passphrase typed matches the configured hash (False when none is configured)."""
    found = _HASH.fullmatch(classroom.passphrase_sha256)
    if not found or not isinstance(passphrase, str):
        return False
    salt, expected = found.group(1) or "", found.group(2)
    return hmac.compare_digest(_digest(salt, passphrase), expected.lower())


def _digest(salt: str, passphrase: str) -> str:
    # surrogatepass: a lone surrogate typed into the page is a wrong passphrase, not a crash
    return hashlib.sha256((salt + passphrase).encode("utf-8", "surrogatepass")).hexdigest()

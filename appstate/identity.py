"""Who is at this browser (issue 20): a person signed in with Streamlit's own authentication (st.login, where
.streamlit/secrets.toml has an [auth] section), else an anonymous identity per browser, kept in a cookie (the same
across reloads and tabs of that browser, unguessable, never in a URL), with a display name the person picks. An
instructor is named by lmcore.toml's [classroom]: a signed-in identity it lists, or, without sign-in, whoever
types its passphrase (for this session only).

current_person() is who every action on a run is done as (lmcore.runs.people decides who may change what);
identity_controls() draws the sidebar's "You" block once for every page (app.py)."""
from __future__ import annotations

import json
import re
from urllib.parse import quote, unquote

import pandas as pd
import streamlit as st

from appstate.home import classroom
from appstate.text import md
from lmcore.classroom import is_instructor_passphrase
from lmcore.runs.notes import NAME_CHARS, normal_name
from lmcore.runs.people import Person, can_change, machine_owner, mine, new_anonymous_id

ID_COOKIE, NAME_COOKIE = "lmcore_id", "lmcore_name"
COOKIE_MAX_AGE = 400 * 24 * 3600  # 400 days: the longest a browser (Chrome) keeps a cookie
# only what new_anonymous_id makes: a cookie edited by hand cannot claim a cli: or oidc: identity
ANONYMOUS_ID = re.compile(r"anon:[A-Za-z0-9_-]{32}")
NAME_KEY, PASSPHRASE_KEY = "me_name", "me_passphrase"  # the sidebar's fields (never bound to the URL)
ID_KEY = "_me_id"  # this session's anonymous identity (a test sets it to play another tab of the same browser)
INSTRUCTOR_KEY = "_me_instructor"  # True once the passphrase was typed in this session
_NAME, _SAID = "_me_name", "_me_said"


# --- who -----------------------------------------------------------------------------------------------------------
def sign_in_configured() -> bool:
    """Whether the deployment set up Streamlit's authentication: an [auth] section in .streamlit/secrets.toml."""
    try:
        return "auth" in st.secrets
    except FileNotFoundError:  # no secrets.toml at all (StreamlitSecretNotFoundError)
        return False


def signed_in_user() -> dict:
    """st.user's claims when the person signed in with st.login; {} otherwise (or when sign-in is not set up)."""
    if not sign_in_configured():
        return {}
    user = st.user.to_dict()
    return user if user.get("is_logged_in") else {}


def shared_server() -> bool:
    """Whether this is a classroom server: lmcore.toml's [classroom] names instructors or a passphrase, or sign-in
    is set up. Otherwise (a single laptop) the app acts as the machine's owner, as the CLI does."""
    room = classroom()
    return bool(room.instructors or room.passphrase_sha256) or sign_in_configured()


def current_person() -> Person:
    """Who acts in this session: on a single laptop, the machine's owner; on a classroom server the signed-in
    person (oidc:<email, else subject>), else this browser's anonymous identity with the name typed in the
    sidebar. An instructor when lmcore.toml names the signed-in identity, or after the instructor passphrase in
    this session."""
    if not shared_server():
        return machine_owner()
    user = signed_in_user()
    identity = str(user.get("email") or "").strip().lower() or str(user.get("sub") or "")
    if identity:
        return Person(f"oidc:{identity}", _shown_name(user.get("name"), identity),
                      classroom().names_instructor(identity))
    _remember_browser()
    return Person(st.session_state[ID_KEY], st.session_state[_NAME], bool(st.session_state.get(INSTRUCTOR_KEY)))


def _shown_name(name, fallback: str) -> str:
    """A provider's display name as a run's owner name (one line, NAME_CHARS at most); else the email."""
    try:
        return normal_name(str(name or "")[:NAME_CHARS]) or fallback[:NAME_CHARS]
    except ValueError:  # a control character in the provider's name
        return fallback[:NAME_CHARS]


def _cookies() -> dict:
    """The cookies the browser sent when this session connected (st.context reads them once per session)."""
    try:
        return dict(st.context.cookies or {})
    except (AttributeError, RuntimeError):  # AppTest, or a run without a browser behind it
        return {}


def _remember_browser() -> None:
    """On the session's first run: the browser's anonymous identity and name from its cookies, else a new
    identity. The session keeps the identity it made until a reload sends the cookie written for it."""
    if ID_KEY in st.session_state and _NAME in st.session_state:
        return
    sent = _cookies()
    kept = sent.get(ID_COOKIE, "")
    st.session_state.setdefault(ID_KEY, kept if ANONYMOUS_ID.fullmatch(kept) else new_anonymous_id())
    try:
        st.session_state.setdefault(_NAME, normal_name(unquote(sent.get(NAME_COOKIE, ""))[:NAME_CHARS]))
    except ValueError:  # a cookie edited by hand
        st.session_state.setdefault(_NAME, "")


def role(person: Person) -> str:
    return "instructor" if person.instructor else "student"


# --- what the person may change, and whose it is -------------------------------------------------------------------
def changeable(thing) -> bool:
    """Whether the current person may stop, resume, rename, annotate or delete this run (or sweep)."""
    return can_change(current_person(), thing)


def is_mine(thing) -> bool:
    """Whether the current person owns this run (or sweep); one made before runs had owners is nobody's."""
    return bool(mine([thing], current_person()))


def only_mine(things: list) -> list:
    """The runs (or sweeps) the current person owns."""
    return mine(things, current_person())


def owner_label(thing, what: str = "run") -> str:
    """"Ada's run", escaped for markdown: where the owner's buttons would be for anyone else."""
    name = thing["owner_name"] if thing["owner_name"] else "someone else"
    return md(f"{name}'s {what}")


def with_owners(table: pd.DataFrame, runs: list, include: bool) -> pd.DataFrame:
    """The table with an "owner" column of display names (never identities) when an instructor asks for it;
    rows that are not runs (the n-gram baseline) get none."""
    if not include or not current_person().instructor:
        return table
    names = {r.id: r.owner_name for r in runs}
    return table.assign(owner=[names.get(i, "") if pd.notna(i) else "" for i in table["run"]])


# --- the sidebar ---------------------------------------------------------------------------------------------------
def identity_controls() -> None:
    """The sidebar's "You" block: who you are; sign in / out where the deployment set it up; else your name and,
    where lmcore.toml has an instructor passphrase, its field. Keeps the browser's identity in cookies."""
    person = current_person()
    box = st.sidebar.container(border=True)
    shown = md(person.name) if person.name else "anonymous"
    if not shared_server():
        box.markdown(f"**You:** {shown} · this machine's owner")
        box.caption("A classroom server names its instructors in lmcore.toml's [classroom] (see the README).")
        return
    box.markdown(f"**You:** {shown} · {role(person)}")
    if signed_in_user():
        box.caption(f"Signed in as {md(person.id.removeprefix('oidc:'))}")
        box.button("Sign out", key="me_sign_out", on_click=st.logout, icon=":material/logout:")
        return
    if sign_in_configured():
        box.button("Sign in", key="me_sign_in", on_click=st.login, icon=":material/login:",
                   help="with your university account; until then you are anonymous in this browser")
    st.session_state.setdefault(NAME_KEY, person.name)
    box.text_input("Your name", key=NAME_KEY, max_chars=NAME_CHARS, on_change=_name_typed,
                   placeholder="shown beside your runs", help="what others see beside your runs; kept in this browser")
    _instructor_field(box, person)
    _say(box)
    _keep_in_cookies(box, person)


def _name_typed() -> None:
    try:
        st.session_state[_NAME] = normal_name(st.session_state[NAME_KEY])
    except ValueError as err:
        st.session_state[_SAID] = ("error", f"Name not changed: {err}")
        st.session_state[NAME_KEY] = st.session_state[_NAME]


def _instructor_field(box, person: Person) -> None:
    if person.instructor:
        box.button("Leave instructor mode", key="me_leave", on_click=st.session_state.pop, args=(INSTRUCTOR_KEY, None))
    elif classroom().passphrase_sha256:
        with box.expander("Instructor", icon=":material/key:"):
            st.text_input("Instructor passphrase", key=PASSPHRASE_KEY, type="password", on_change=_passphrase_typed,
                          help="from the instructor's lmcore.toml: lets this session change every run")


def _passphrase_typed() -> None:
    typed = st.session_state.get(PASSPHRASE_KEY) or ""
    st.session_state[PASSPHRASE_KEY] = ""  # never kept, never shown again
    if is_instructor_passphrase(typed, classroom()):
        st.session_state[INSTRUCTOR_KEY] = True
        st.session_state[_SAID] = ("success", "Instructor mode: you may change every run, in this session")
    elif typed:
        st.session_state[_SAID] = ("error", "That is not the instructor passphrase.")


def _say(box) -> None:
    """What the last name or passphrase typed did, said once."""
    kind, message = st.session_state.pop(_SAID, (None, ""))
    if kind == "error":
        box.error(md(message))
    elif kind == "success":
        box.success(md(message))


_WRITTEN = "_identity_cookies_written"  # whether this session has written the cookies


def _keep_in_cookies(box, person: Person) -> None:
    """Write the identity and name into this browser's cookies when they are not what it sent: a same-origin
    script (the same for every run while nothing changes, so the frame is not loaded again)."""
    wanted = {ID_COOKIE: person.id, NAME_COOKIE: quote(person.name, safe="")}  # quoted: only [A-Za-z0-9%._~-]
    sent = {k: _cookies().get(k) for k in wanted}
    # once this session has written, the browser's cookie is no longer what it sent: keep the script on the page
    # (a name changed and changed back had matched what was sent and was never written back)
    if wanted == sent and not st.session_state.get(_WRITTEN):
        return
    st.session_state[_WRITTEN] = True
    lines = "".join(f"parent.document.cookie = "
                    f"{json.dumps(f'{k}={v}; max-age={COOKIE_MAX_AGE}; path=/; SameSite=Strict')};"
                    for k, v in wanted.items())
    # an iframe of this origin (not st.html: the pages' own html elements stay theirs alone)
    box.iframe(f"<script>{lines}</script>", height=1)

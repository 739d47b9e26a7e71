"""The data folder: its run store, opened once per server, and the deployment's limits and classroom.

Light on purpose (no torch): every page opens the store, the Corpus page first of all."""
from __future__ import annotations

import sqlite3
import threading

import streamlit as st

from appstate.text import md
from lmcore.classroom import Classroom, load_classroom
from lmcore.limits import LimitError, Limits, load_limits
from lmcore.paths import default_home
from lmcore.runs.store import RunStore


def _build_native() -> None:
    from lmcore.nn import native  # imports torch (1.3 s measured on 2 cores): in this timer thread, not at a paint
    native.build_in_background()


@st.cache_resource
def _store(home: str) -> RunStore:
    # once per server, 5 s after the first page (on two cores the compiler would slow its paint): the first LSTM
    # job then finds the C++ loop built
    timer = threading.Timer(5.0, _build_native)
    timer.daemon = True
    timer.start()
    return RunStore(home)


def get_store() -> RunStore:
    """The store in $LMCORE_HOME (or ~/.lmcore), opened once per data folder.

    The first call in a session (the app's start for that user) marks runs whose job process died
    without reporting (killed, machine restarted) as interrupted. A data folder that cannot be used
    stops the page with a message instead of a traceback."""
    try:
        store = _store(str(default_home()))
        if not st.session_state.get("_interrupted_checked"):
            if store.list_runs(("starting", "running")):
                # the job service and torch: 3.3 s measured on 2 cores, paid only when there is a run to check
                from lmcore.runs.service import mark_interrupted
                mark_interrupted(store)
            st.session_state["_interrupted_checked"] = True
        return store
    except (OSError, sqlite3.Error) as err:
        st.error(f"The data folder {md(default_home())} cannot be used: {md(err)}. Point LMCORE_HOME at a "
                 "writable folder with free space, then reload.")
        st.stop()


@st.cache_data(ttl=10, show_spinner=False)
def _settings(home: str) -> tuple[Limits, Classroom]:
    return load_limits(home), load_classroom(home)


def _lmcore_toml() -> tuple[Limits, Classroom]:
    """lmcore.toml in the data folder (or $LMCORE_CONFIG), re-read every 10 s; a broken one stops the page."""
    try:
        return _settings(str(default_home()))
    except LimitError as err:
        st.error(f"The limits file is not usable: {md(err)}")
        st.stop()


def limits() -> Limits:
    """The deployment's limits: lmcore.toml's [limits]."""
    return _lmcore_toml()[0]


def classroom() -> Classroom:
    """Who teaches: lmcore.toml's [classroom] (instructors, the passphrase's hash)."""
    return _lmcore_toml()[1]

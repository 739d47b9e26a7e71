"""RNN LM Explorer: routing only. Each page lives in views/ and talks to lmcore through appstate.

The folder is not called pages/: Streamlit treats a pages/ folder as a legacy multipage app and, for a
direct link such as /compare opened before any session has run this file, runs that page without
st.navigation (wrong menu, no shared frame), which would break shareable URLs.
"""
import os

import streamlit as st

from appstate import get_store
from appstate.figures import figure_controls
from appstate.identity import identity_controls

st.set_page_config(page_title="RNN LM Explorer", page_icon=":material/repeat:", layout="wide")
# A new data folder opens on the lecture's tour, one with runs on its corpus; LMCORE_START_PAGE (lecture or corpus)
# fixes it, e.g. for a class's server, or for page tests that must not pay for the tour first.
start = os.environ.get("LMCORE_START_PAGE") or ("corpus" if get_store().has_runs() else "lecture")
new_folder = start != "corpus"
page = st.navigation([
    st.Page("views/lecture.py", title="Lecture", icon=":material/school:", default=new_folder),
    st.Page("views/corpus.py", title="Corpus", icon=":material/description:", default=not new_folder),
    st.Page("views/train.py", title="Train", icon=":material/model_training:"),
    st.Page("views/compare.py", title="Compare", icon=":material/leaderboard:"),
    st.Page("views/sweeps.py", title="Sweeps", icon=":material/grid_view:"),
    st.Page("views/hidden.py", title="Hidden states", icon=":material/grid_on:"),
    st.Page("views/gates.py", title="Gates", icon=":material/door_open:"),
    st.Page("views/interventions.py", title="Interventions", icon=":material/content_cut:"),
    st.Page("views/next_word.py", title="Next word", icon=":material/keyboard_tab:"),
    st.Page("views/embeddings.py", title="Word representations", icon=":material/scatter_plot:"),
    st.Page("views/gradients.py", title="Gradients through time", icon=":material/trending_down:"),
    st.Page("views/bptt.py", title="BPTT by hand", icon=":material/calculate:"),
    st.Page("views/memory.py", title="Markov vs memory", icon=":material/memory:"),
], expanded=True)  # thirteen pages: Streamlit would fold the last three under "View more"
identity_controls()  # who you are: signed in, or this browser's identity and name; the instructor's passphrase
figure_controls()  # the sidebar's figure settings, the same for every page
page.run()

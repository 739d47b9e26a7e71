"""RNN LM Explorer: routing only. Each page lives in pages/ and talks to lmcore through appstate."""
import streamlit as st

st.set_page_config(page_title="RNN LM Explorer", page_icon="🔁", layout="wide")
st.navigation([
    st.Page("pages/corpus.py", title="Corpus", icon="📄", default=True),
    st.Page("pages/train.py", title="Train", icon="🏋️"),
    st.Page("pages/compare.py", title="Compare", icon="📊"),
]).run()

"""The one door between the pages and lmcore (TensorFlow Playground's state.ts): session and URL state, the run
store, the chosen corpus, cached loaders. Pages import this package and its modules, never lmcore (lmcore.viz
aside) and never each other.

This front door holds what every page needs and stays light (no torch: the Corpus page, a cold server's first
paint, imports nothing heavier). The rooms behind it, by concern:
    text       md(): a user's text made literal for Streamlit's markdown; MISSING
    home       the data folder: the run store, the limits
    corpus     the chosen corpus, uploads, the corpus in the URL, the corpus and its n-gram baseline cached
    widgets    values that last (URL, across pages), defaults that follow the run or preset, curve controls
    training   the Train and Compare pages: the lineup, the run service, statuses, curves, history, comparisons
    sweeps     the Sweeps page: the grid, Start / Stop / Resume, the sweep's tables
    models     runs to look inside: choosing, loading, the opening of a model page, texts, traces (torch)
    inspection what the model pages measure through lmcore.inspect, cached per checkpoint (torch)
"""
from appstate.corpus import CorpusError, cached_corpus, corpus_label, corpus_params, corpus_spec
from appstate.home import get_store, limits
from appstate.text import MISSING, md
from appstate.widgets import URL, curve_controls, follow_default, keep_across_pages, selected_run_ids, \
    set_selected_run_ids
from lmcore.nn.architectures import model_name
from lmcore.training.allocator import ask_for_huge_pages

ask_for_huge_pages()  # the app's process, before its first tensor (nothing above imports torch): see allocator.py

__all__ = ["MISSING", "URL", "CorpusError", "cached_corpus", "corpus_label", "corpus_params", "corpus_spec",
           "curve_controls", "follow_default", "get_store", "keep_across_pages", "limits", "md", "model_name",
           "selected_run_ids", "set_selected_run_ids"]

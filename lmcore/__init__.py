"""RNN LM Explorer core library: corpora, recurrent language models, training, run store, inspection.

No Streamlit import anywhere in this package: it is usable from a notebook or the command line.
"""


"""The lecture, told by the app: ten steps from the chain rule to the perplexity table, each beside a figure from
trained models (the demo runs until the user has finished runs of their own on the agreement corpus)."""
import streamlit as st

import appstate
from appstate import lecture
from appstate.figures import chart
from lmcore.viz.bptt import unrolled_figure
from lmcore.viz.gates import fig44_figure, glyph_layout
from lmcore.viz.gradients import decay_figure
from lmcore.viz.lecture import margins_figure, size_figure, word_probability_figure
from lmcore.viz.memory import agreement_figure, context_figure
from lmcore.viz.style import run_colour

st.title("The lecture, on trained models")
st.caption("Recurrent networks for language modelling, as an argument in ten steps: each one the lecture's paragraph "
           "and equation beside a figure computed now from real trained weights, then a link that opens the page it "
           "comes from in the same state. Every sentence about a figure is worked out from the figure's numbers.")
models = lecture.tour_models()
if "lstm" not in models:
    st.error("The tour needs an LSTM on the agreement corpus, and none was found (the demo runs in assets/demos are "
             "missing). Train one on the Train page with the agreement corpus.")
    st.stop()
mine = [m for m in models.values() if m.own]
st.info("Figures from " + "; ".join(f"**{appstate.md(m.name)}**: {appstate.md(m.run.ref.label)}"
                                    + (" (yours)" if m.own else " (shipped with the app)") for m in models.values())
        + (". Your own runs on the agreement corpus replace the demos as they finish." if not mine else "."))
steps = {s.key: s for s in lecture.STEPS}
keys = {m.name: m.run.ref.key for m in models.values()}  # each model keeps its run's colour in every figure


def opening(key: str) -> None:
    step = steps[key]
    st.header(step.title, anchor=key)
    st.markdown(step.text)
    st.latex(step.equation)


def closing(key: str, said: str, question=None) -> None:
    st.markdown(appstate.md(said))
    if question is not None:
        with st.expander(f"Self-check: {question.ask}"):
            st.markdown(appstate.md(question.answer))
    page, params = lecture.try_it(key, models)
    st.page_link(page, label=f"Try it: {steps[key].try_label}", icon=":material/open_in_new:", query_params=params)


lstm = models["lstm"]
opening("chain")
probs, said, question = lecture.chain_step(lstm)
chart(word_probability_figure(probs, lstm.name, run_colour(lstm.run.ref.key)),
      "lecture-word-probability", width="stretch", key="fig_chain")
closing("chain", said, question)

opening("markov")
table, said, question = lecture.markov_step(models)
chart(agreement_figure(table, keys), "lecture-agreement", width="stretch", key="fig_markov")
closing("markov", said, question)

opening("ffnn")
with st.spinner("Measuring each model's perplexity with 1 to 200 words of context (once per run)…"):
    curves, baseline = lecture.context_step(models, ("ffnn", "rnn", "lstm", "gru"))
if "ffnn" in models:
    ffnn = models["ffnn"]
    chart(context_figure({ffnn.name: curves[ffnn.name]}, baseline, lecture.ngram_name(), run_keys=keys),
          "lecture-context", width="stretch", key="fig_ffnn")
    said, question = lecture.ffnn_says(curves, ffnn, baseline)
    closing("ffnn", said, question)
else:
    st.warning("No FFNN on the agreement corpus to show: train one (Train page, preset FFNN).")

opening("rnn")
chart(context_figure(curves, baseline, lecture.ngram_name(), log_y=True, run_keys=keys),
      "lecture-context", width="stretch", key="fig_rnn")
said, question = lecture.rnn_says(curves, models)
closing("rnn", said, question)

opening("roses")
margins, said, question = lecture.roses_step(models)
chart(margins_figure(margins, keys), "lecture-margins", width="stretch", key="fig_roses")
closing("roses", said, question)

opening("bptt")
walk, t, said = lecture.bptt_step()
chart(unrolled_figure(walk), "lecture-unrolled", width="stretch", key="fig_bptt")
closing("bptt", said)

opening("vanish")
decay, said, question = lecture.decay_step(models)
chart(decay_figure(decay, "Error signal reaching back", "‖∂ℓ_t/∂h_{t−k}‖", keys), "lecture-decay",
      width="stretch",
      key="fig_vanish")
closing("vanish", said, question)

opening("lstm")
tokens, chain, said, question = lecture.lstm_step(lstm)
glyphs = glyph_layout(chain.gates, "lstm", 0.1, 0.9, 0, chain.constant)
chart(fig44_figure(tokens, chain.shading, glyphs, 0, lecture.ROSES_SOURCE, "lstm",
                   f"{lstm.name}, unit {chain.unit}: ‖∂h_t/∂x_{lecture.ROSES_SOURCE}‖", chain.notes,
                   chain.constant, (0.1, 0.9)), "lecture-fig44", width="stretch", key="fig_lstm")
closing("lstm", said, question)

opening("gru")
rows, said = lecture.gru_step(models)
chart(size_figure(rows, {m.slot.upper(): m.run.ref.key for m in models.values()}),
      "lecture-size", width="stretch", key="fig_gru")
closing("gru", said)

opening("table")
table, said, question = lecture.table_step(models)
chart(size_figure(table, keys), "lecture-size", width="stretch", key="fig_table")
st.dataframe(table, hide_index=True, width="stretch", placeholder=appstate.MISSING,
             column_config={"parameters": st.column_config.NumberColumn(format="localized"),
                            "valid ppl": st.column_config.NumberColumn(format="%.2f")})
closing("table", said, question)

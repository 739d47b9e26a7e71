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
keys = lecture.colour_keys(models)  # each model keeps one colour in every figure of the tour


def told(key: str, figure, said: str, question=None, table=None) -> None:
    """One step: the lecture's paragraph and equation, the figure, what it shows, a self-check, the try-it link."""
    step = steps[key]
    st.header(step.title, anchor=key)
    st.markdown(step.text)
    st.latex(step.equation)
    chart(figure, f"lecture-{key}", width="stretch", key=f"fig_{key}")
    if table is not None:
        st.dataframe(table, hide_index=True, width="stretch", placeholder=appstate.MISSING,
                     column_config={"parameters": st.column_config.NumberColumn(format="localized"),
                                    "valid ppl": st.column_config.NumberColumn(format="%.2f")})
    st.markdown(appstate.md(said))
    if question is not None:
        with st.expander(f"Self-check: {question.ask}"):
            st.markdown(appstate.md(question.answer))
    page, params = lecture.try_it(key, models)
    st.page_link(page, label=f"Try it: {step.try_label}", icon=":material/open_in_new:", query_params=params)


lstm = models["lstm"]
probs, *said = lecture.chain_step(lstm)
told("chain", word_probability_figure(probs, lstm.name, run_colour(keys[lstm.name])), *said)
table, *said = lecture.markov_step(models)
told("markov", agreement_figure(table, keys), *said)
with st.spinner("Measuring each model's perplexity with 1 to 200 words of context (once per run)…"):
    curves, baseline = lecture.context_step(models, ("ffnn", "rnn", "lstm", "gru"))
if "ffnn" in models:
    ffnn = models["ffnn"]
    told("ffnn", context_figure({ffnn.name: curves[ffnn.name]}, baseline, lecture.ngram_name(), run_keys=keys),
         *lecture.ffnn_says(curves, ffnn, baseline))
else:
    st.warning("No FFNN on the agreement corpus to show: train one (Train page, preset FFNN).")
told("rnn", context_figure(curves, baseline, lecture.ngram_name(), log_y=True, run_keys=keys),
     *lecture.rnn_says(curves, models))
margins, *said = lecture.roses_step(models)
told("roses", margins_figure(margins, keys), *said)
walk, said = lecture.bptt_step()
told("bptt", unrolled_figure(walk), said)
decay, *said = lecture.decay_step(models)
told("vanish", decay_figure(decay, "Error signal reaching back", "‖∂ℓ_t/∂h_{t−k}‖", keys), *said)
tokens, chain, *said = lecture.lstm_step(lstm)
glyphs = glyph_layout(chain.gates, "lstm", 0.1, 0.9, 0, chain.constant)
told("lstm", fig44_figure(tokens, chain.shading, glyphs, 0, lecture.ROSES_SOURCE, "lstm",
                          f"{lstm.name}, unit {chain.unit}: ‖∂h_t/∂x_{lecture.ROSES_SOURCE}‖", chain.notes,
                          chain.constant, (0.1, 0.9)), *said)
rows, said = lecture.gru_step(models)
told("gru", size_figure(rows, {m.slot.upper(): keys[m.name] for m in models.values()}), said)
table, *said = lecture.table_step(models)
told("table", size_figure(table, keys), *said, table=table)

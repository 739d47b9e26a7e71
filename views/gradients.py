"""Gradients through time: how far back each model's error signal reaches, and what it looks at."""
import streamlit as st

import appstate
from appstate import URL, models
from appstate.inspection import decay_curves, first_input_sensitivity, saliency, training_stages
from appstate.figures import chart
from lmcore.viz.gates import FIGURE_PX, tokens_that_fit
from lmcore.viz.gradients import ROW_AXIS_PX, decay_figure, fig41_figure
from lmcore.viz.hidden import coloured_text_html

st.title("Gradients through time")
st.caption("The lecture: “as we backpropagate through time, gradients tend toward 0” for the simple RNN, while "
           "the LSTM's linear cell lets them through. Here the decay is measured on your trained models, averaged "
           "over many target positions t of the validation text (band: 10th–90th percentile).")
st.latex(r"\Big\lVert \frac{\partial \ell_t}{\partial h_{t-k}} \Big\rVert \quad\text{and}\quad "
         r"\Big\lVert \frac{\partial h_t}{\partial h_{t-k}} \Big\rVert_F = "
         r"\Big\lVert \prod_{j=t-k+1}^{t} \mathrm{diag}(f'(\mathrm{net}_j))\, U \Big\rVert_F \text{ (Elman)}")
models.not_listed("gradient through time")
refs = models.pick_runs("Runs (e.g. lecture RNN, tanh RNN, IRNN, LSTM, GRU)", key="decay_runs", max_runs=5,
                        archs=models.RECURRENT)
if not refs:
    st.info("Pick one or more runs.")
    st.stop()
stages = {ref.key: training_stages(ref) for ref in refs}
longest = max(stages.values(), key=len)
c1, c2, c3 = st.columns(3)
stage = c1.select_slider("Through training", options=list(range(len(longest))), value=len(longest) - 1,
                         format_func=lambda i: longest[i][0], key="stage", bind=URL,
                         help="Which checkpoint: the initialisation, then the one kept after each epoch (demo runs: "
                              "trained only). Watch the curves change as the model learns.")
K = c2.slider("K (steps back)", 5, 200, 50, key="k", bind=URL,
              help="How far back the gradient is followed: the curves run from k = 0 (the step of the loss) to k = K "
                   "steps before it.")
positions = c3.slider("Target positions averaged", 4, 64, 32, key="pos", bind=URL,
                      help="How many loss positions t of the validation text each curve averages: more gives a "
                           "smoother curve and a narrower band, and takes longer.")
loss_curves, jac_curves, run_keys = {}, {}, {}
for ref in refs:
    label, path = stages[ref.key][min(stage, len(stages[ref.key]) - 1)]
    try:
        loss, jac = decay_curves(path, K, positions)
    except ValueError as err:
        st.warning(f"{appstate.md(ref.label)}: {appstate.md(err)}")
        continue
    loss_curves[f"{ref.label} · {label}"] = loss
    jac_curves[f"{ref.label} · {label}"] = jac
    run_keys[f"{ref.label} · {label}"] = ref.key
left, right = st.columns(2)
chart(decay_figure(loss_curves, "Error signal reaching back", "‖∂ℓ_t/∂h_{t−k}‖", run_keys),
      "gradients-decay", left, width="stretch")
chart(decay_figure(jac_curves, "State Jacobian", "‖∂h_t/∂h_{t−k}‖_F", run_keys),
      "gradients-decay", right, width="stretch")
st.caption("For the LSTM the state at t−k is the whole memory block (h, c). A straight line on this log axis is "
           "geometric decay; a flat line is memory. A curve that stops has vanished: below the smallest number a "
           "float can hold (the legend says from which k).")
st.page_link("views/bptt.py", label="Why it decays: backprop through time by hand, the delta rule multiplying by "
             "Uᵀ·f′(net) once per step back", icon=":material/calculate:")

st.header("Graves' Fig. 4.1, from real numbers")
st.caption("The network unrolled over time; each node shaded by its sensitivity to the input at the first step, x_0 "
           "(steps are numbered from 0, as on the Gates page; black: high, white: none): hidden nodes by ‖∂h̄_t/∂x_0‖ "
           "(the Gates page's Fig. 4.4 computation), output nodes by ‖∂y_t[w_{t+1}]/∂x_0‖. The simple RNN's shading "
           "fades as the first input is forgotten.")
text_slot = st.container()  # the text goes above the figures but follows the runs picked in them
archs = {"elman": "Elman RNN", "lstm": "LSTM", "gru": "GRU"}
shown = [(col, run) for col, arch in zip(st.columns(3), archs)
         if (run := models.pick_model(archs[arch], key=f"fig41_{arch}", archs=(arch,), container=col,
                                      fallback=f"demo:agreement-{arch}")) is not None]
appstate.follow_default("fig41_text", models.example_text_for([run for _, run in shown]), fill=True)
fig_text = text_slot.text_input("Text for the figure", key="fig41_text", max_chars=500, bind=URL,
                                help="The input at its first token, x_0, is the one whose influence is traced.")
texts = {run.ref.key: models.tokens_of(fig_text, run.cfg) for _, run in shown}
fit = tokens_that_fit(FIGURE_PX, ROW_AXIS_PX)
longest_text = max(map(len, texts.values()), default=0)
start = text_slot.slider("Window: first step shown", 0, longest_text - fit, key="fig41_at", bind=URL,
                         help=f"Each figure shows {fit} steps, what stays legible on a wide screen; slide along a "
                              "longer text to see where the first input is forgotten.") \
    if longest_text > fit else 0
for col, run in shown:
    tokens = texts[run.ref.key]
    if len(tokens) < 2:
        col.error("Type at least two tokens.")
        continue
    models.unknown_caption(tokens, run.vocab, col)
for _, run in shown:  # one model per row, full width, the same steps one above the other
    tokens = texts[run.ref.key]
    if len(tokens) < 2:
        continue
    first = min(start, max(0, len(tokens) - fit))
    hidden, output = first_input_sensitivity(run, tokens)
    chart(fig41_figure(tokens, hidden, output, title=appstate.model_name(run.cfg.model), start=first,
                       stop=min(len(tokens), first + fit)), "gradients-fig41",
          width="stretch", key=f"fig41_chart_{run.ref.arch}")

st.header("Saliency over the past")
st.caption("For one prediction, each earlier token coloured by ‖∂ log p(w_t)/∂x_{t−k}‖, the gradient with respect "
           "to its input embedding: how far back each model looks for that prediction.")
text_slot = st.container()
picked = [(i, col, run) for i, col in enumerate(st.columns(2))
          if (run := models.pick_model(f"Run {i + 1}", key=f"saliency{i}", container=col, archs=models.RECURRENT,
                                       default=refs[min(i, len(refs) - 1)].key)) is not None]
appstate.follow_default("saliency_text", models.example_text_for([run for _, _, run in picked]), fill=True)
text = text_slot.text_input("Text", key="saliency_text", max_chars=2000, bind=URL)
for i, col, run in picked:
    tokens = models.tokens_of(text, run.cfg)
    if len(tokens) < 2:
        col.error("Type at least two tokens.")
        continue
    models.unknown_caption(tokens, run.vocab, col)
    position = col.slider("Predicted token", 1, len(tokens) - 1, len(tokens) - 2, key=f"saliency_pos{i}",
                          format="%d", bind=URL,
                          help="The position t of the predicted token w_t; the tokens before it are coloured by how much "
                               "the prediction p(w_t | w_<t) depends on each of them.")
    col.markdown(f"Predicting token {position}: **{appstate.md(tokens[position])}**")
    col.html(coloured_text_html(tokens[:position + 1], saliency(run, tokens, position)[:position + 1],
                                name="‖∂ log p/∂x‖"))

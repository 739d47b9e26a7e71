"""Backprop through time by hand: the lecture's delta rule, stepped backwards, beside autograd."""
import pandas as pd
import streamlit as st

import appstate
from appstate import URL
from appstate.corpus import tokenize_line
from appstate.inspection import walkthrough
from appstate.figures import chart
from lmcore.viz.bptt import unrolled_figure, walk_back_figure

st.title("Backprop through time, by hand")
st.caption("The lecture's RNN exactly as in its equations (1)–(4): one-hot x(t), sigmoid hidden layer s(t), "
           "softmax output y(t), weights V, U, W, no biases. Its gradients come from the delta rule written in "
           "numpy (lmcore/lecture/numpy_rnn.py), and are checked here against PyTorch's autograd on the same example.")
st.latex(r"s_j(t) = f(\mathrm{net}_j(t)),\quad \mathrm{net}_j(t) = \sum_i x_i(t) v_{ji} + \sum_h s_h(t-1) u_{jh},"
         r"\quad y_k(t) = g\big(\sum_j s_j(t) w_{kj}\big)")
st.latex(r"\delta_j(t-1) = \sum_h \delta_h(t)\, u_{hj}\, f'(\mathrm{net}_j(t-1)), \qquad "
         r"\Delta u_{ji} \mathrel{+}= \eta\, \delta_j(t)\, s_i(t-1)")

text = st.text_input("Training example", "the roses in the vase by the door to the kitchen are red .", max_chars=500,
                     key="text", bind=URL, help="One sequence: the RNN reads it token by token and at each step "
                                                 "predicts the next one; its loss is summed over the steps.")
c1, c2, c3, c4 = st.columns(4)
tokenizer = c1.selectbox("Tokens", ["word", "char"], key="tok", bind=URL,
                         help="word: one input x(t) per word (split at spaces); char: one per character.")
tokens = tokenize_line(text, tokenizer, lowercase=True)
if len(tokens) < 2:
    st.error("Type at least two tokens.")
    st.stop()
hidden = c2.slider("Hidden units", 2, 64, 8, key="hidden", bind=URL, help="The size of s(t), and of U (hidden × hidden).")
scale = c3.slider("Initial weight scale", 0.05, 3.0, 0.5, key="scale", bind=URL,
                  help="V, U and W start drawn from N(0, scale²): larger weights give a larger U and a slower decay.")
seed = c4.number_input("Seed", 0, 10_000, 0, key="seed", bind=URL,
                       help="Which random initial weights: the same seed gives the same numbers.")
c5, c6 = st.columns(2)
tau = c5.slider("τ (truncation depth)", 1, len(tokens) - 1, min(6, len(tokens) - 1), key="tau", bind=URL,
                help="Truncated BPTT: the error is carried back at most τ steps before it is dropped.")
t = c6.slider("Output time t to walk back from", 0, len(tokens) - 2, len(tokens) - 2, key="t", bind=URL,
              format="%d", help="the error of y(t), the prediction of the token after position t")
guo = st.checkbox("Use f′(g) as Guo (2013) writes, instead of f′(net)", value=False, key="guo", bind=URL,
                  help="the lecture's correction: the derivative must be taken at net, not at the activation")

w = walkthrough(tokens, hidden=hidden, tau=tau, seed=int(seed), scale=scale, inspect_t=t, guo_typo=guo)
st.markdown(f"Walking back from y({t}), which predicts **{appstate.md(w.tokens[t + 1])}** after **{appstate.md(w.tokens[t])}**; "
            f"loss of the example {w.loss:.3f} nats.")
chart(unrolled_figure(w), "bptt-unrolled", width="stretch", key="bptt_unrolled")
chart(walk_back_figure(w), "bptt-walk-back", width="stretch")
errors = pd.DataFrame([{"weights": n, "relative error, delta rule vs autograd": e} for n, e in w.rel_errors.items()])
left, right = st.columns([2, 3])
left.dataframe(errors, hide_index=True, placeholder=appstate.MISSING, width="stretch",
               column_config={"relative error, delta rule vs autograd": st.column_config.NumberColumn(format="%.2e")})
if guo:
    right.warning("With f′(g) the delta rule no longer matches autograd: the lecture's correction matters.")
else:
    right.success("The hand-written delta rule and autograd agree to rounding error (float64).")
right.caption("Each factor Uᵀ·f′(net) multiplies the error once more per step back; with σ′ ≤ 1/4 and small U "
              "the terms shrink geometrically: the vanishing gradient.")
st.page_link("views/gradients.py", label="The same decay measured on trained models: gradients through time",
             icon=":material/trending_down:")

"""The lecture as an argument in ten steps, each told beside a figure of trained models (the Lecture page).

What each step says is written here, once: the lecture's paragraph and equation, which never change, and the
sentences about the figure, which are computed from its numbers (so a sentence never claims what the figure
does not show), the self-check question and the answer read from the same numbers. The page only draws.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from lmcore.corpus.tokenize import EOS
from lmcore.corpus.vocab import Vocab

ROSES = "the roses in the vase by the door to the kitchen are red ."
ROSES_SOURCE = 1            # "roses": the input whose influence the LSTM's chain follows
TOUR_CORPUS = "builtin:agreement"  # the lecture's roses at scale: every figure reads this corpus
# The models of the tour: slot -> (its name in the text, the architectures that fill it).
SLOTS = {"ffnn": ("FFNN", ("ffnn",)), "rnn": ("RNN", ("elman", "irnn")), "lstm": ("LSTM", ("lstm",)),
         "gru": ("GRU", ("gru",))}
NGRAM_ORDER = 3


@dataclass(frozen=True)
class Step:
    key: str          # a stable anchor: "markov", "ffnn", …
    title: str
    text: str         # the lecture's paragraph, markdown, its notation
    equation: str     # LaTeX
    try_label: str    # what the "try it" link opens


STEPS = (
    Step("chain", "1 · A language model is the chain rule",
         "A sentence's probability is the product of each word's probability given every word before it. A language "
         "model is a recipe for those conditional probabilities; the figure shows them word by word for the "
         "lecture's sentence, as one trained model assigns them.",
         r"P(w_1 \dots w_{|w|}) = \prod_{i=1}^{|w|+1} P(w_i \mid w_1, \dots, w_{i-1})",
         "Next word: the same sentence, every prediction ranked"),
    Step("markov", "2 · The Markov assumption, and why it is wrong",
         "An n-gram model keeps only the last n − 1 words. But “the roses in the vase by the door to the kitchen "
         "**are** red”: the verb agrees with a subject nine words back, and “Captain Ahab nursed his grudge for "
         "many years before seeking the White …” needs a word from twelve words ago. The figure asks a Kneser–Ney "
         "3-gram, at the verb of thousands of such sentences, whether P(are) > P(is) (or the other way round).",
         r"P(w_i \mid w_1, \dots, w_{i-1}) \approx P(w_i \mid w_{i-n+1}, \dots, w_{i-1})",
         "Markov vs memory: agreement by distance"),
    Step("ffnn", "3 · A feedforward network learns n-gram probabilities",
         "Last lecture's network (Bengio et al. 2003) reads the embeddings of the n − 1 previous words, "
         "concatenated, through one tanh layer: shared parameters and word representations, no zero "
         "probabilities. But its window is as fixed as the n-gram's. The figure lets each model see only the last "
         "k words before every prediction (Khandelwal et al. 2018).",
         r"x_i = [e(w_{i-n+1}); \dots; e(w_{i-1})],\quad h_i = \tanh(V x_i + b_1),\quad "
         r"y_i = \mathrm{softmax}(W h_i + b_2)",
         "Markov vs memory: context use"),
    Step("rnn", "4 · A recurrent network is a recursive function",
         "The RNN feeds its hidden layer back in: h_i depends on x_i and, through h_{i−1}, on every word before "
         "it. So P(w_{i+1} | w_1 … w_i) has no Markov assumption. The same measurement as above, now with the "
         "recurrent models.",
         r"y_i = \mathrm{softmax}(W h_i + b_2),\quad h_i = \sigma(V x_i + U h_{i-1} + b_1),\quad "
         r"x_i = \mathrm{onehot}(w_i)",
         "Markov vs memory: every model's context use"),
    Step("roses", "5 · The roses, scored",
         "The lecture's four sentences, cut just before the verb. Each bar is log P(are) − log P(is) at the verb: "
         "above zero, the model prefers the verb that agrees with “roses”.",
         r"\log P(\textit{are} \mid \textit{the roses} \dots) - \log P(\textit{is} \mid \textit{the roses} \dots)",
         "Markov vs memory: the lecture's sentences"),
    Step("bptt", "6 · Training: SGD on cross-entropy, backprop through time",
         "The loss is the cross-entropy of each prediction. Unrolled over time the RNN is a deep network whose "
         "layers share U; backpropagation carries each error δ back one step at a time by the delta rule, and "
         "truncated BPTT stops after τ steps. The figure is one truncated step of the lecture's RNN on the roses "
         "sentence, untrained (small random weights): forward values, and the deltas walking back, computed in "
         "numpy and checked against autograd.",
         r"\delta_j(t-1) = \sum_h \delta_h(t)\, u_{hj}\, f'(\mathrm{net}_j(t-1)),\qquad "
         r"\Delta u_{ji} \mathrel{+}= \eta\, \delta_j(t)\, s_i(t-1)",
         "BPTT by hand: the same walk back, every number"),
    Step("vanish", "7 · Gradients vanish through time",
         "Each step back multiplies the error by Uᵀ·diag(f′(net)); with σ′ ≤ ¼ the product shrinks geometrically and "
         "the simple RNN “rapidly forgets”. The LSTM's additive cell lets the error through. The figure measures "
         "‖∂ℓ_t/∂h_{t−k}‖ on the trained models, averaged over positions of the validation text.",
         r"\Big\lVert \frac{\partial \ell_t}{\partial h_{t-k}} \Big\rVert,\qquad "
         r"\frac{\partial h_t}{\partial h_{t-k}} = \prod_{j=t-k+1}^{t} \mathrm{diag}(f'(\mathrm{net}_j))\, U",
         "Gradients through time: the decay with k"),
    Step("lstm", "8 · The LSTM: a linear memory cell behind gates",
         "The cell c_t is linear: if the forget gate is open (near 1) and the input gate closed (near 0) it passes "
         "its content on unchanged, so the block can hold a word over many steps and decide when to show it through "
         "the output gate. Graves' Fig. 4.4 from the trained LSTM: each circle is one unit's h_t, black while it "
         "still depends on the input “roses”, with its gates drawn as O (open) and — (closed).",
         r"c_t = f_t \odot c_{t-1} + i_t \odot g_t,\quad h_t = o_t \odot \tanh(c_t),\quad "
         r"i_t, f_t, o_t = \sigma(V x_t + U h_{t-1} + b)",
         "Gates: the same chain, every unit and model"),
    Step("gru", "9 · The GRU: the same job with fewer parameters",
         "The GRU merges cell and hidden state and uses two gates, update z and reset r: three weight blocks to the "
         "LSTM's four, so fewer parameters at the same size, with, in most cases, comparable perplexity.",
         r"z_t = \sigma(V_z x_t + U_z h_{t-1}),\ r_t = \sigma(V_r x_t + U_r h_{t-1}),\ "
         r"h_t = (1 - z_t) \odot n_t + z_t \odot h_{t-1}",
         "Train: an LSTM and a GRU on this corpus, side by side"),
    Step("table", "10 · The perplexity table",
         "Perplexity is e to the mean cross-entropy: the number of words a model is, on average, as unsure between "
         "as a uniform guess. The lecture's table (Le et al. 2015, a billion words) ranks LSTM, IRNN and RNN; here "
         "the same models and the two fixed windows on one corpus, lower is better.",
         r"\mathrm{PPL} = \exp\Big(-\frac{1}{N} \sum_{i=1}^{N} \log P(w_i \mid w_1, \dots, w_{i-1})\Big)",
         "Train: the four models on this corpus, then Compare shows the table"),
)
STEP_KEYS = tuple(s.key for s in STEPS)


@dataclass(frozen=True)
class Question:
    ask: str
    answer: str


# --- numbers the figures show ----------------------------------------------------------------------------------
@torch.no_grad()
def word_probabilities(model, vocab: Vocab, tokens: list[str]) -> pd.DataFrame:
    """P(w_i | w_1 … w_{i−1}) for every word of a sentence read from <eos> (one row per word, in order)."""
    model.eval()
    ids = vocab.encode([EOS, *tokens])
    x = torch.as_tensor(ids[:-1], device=model.encoder.weight.device).view(-1, 1)
    logits, _, _ = model(x)
    logp = torch.log_softmax(logits[:, 0], dim=-1).gather(1, torch.as_tensor(ids[1:]).view(-1, 1))[:, 0]
    return pd.DataFrame({"step": range(1, len(tokens) + 1), "word": tokens, "p": logp.exp().numpy()})


def pct(x: float) -> str:
    return f"{x:.0%}"


def _at(df: pd.DataFrame, k: int) -> float:
    """A context-use curve's perplexity with k tokens of context."""
    return float(df.loc[df["context"] == str(k), "ppl"].iloc[0])


def chain_says(probs: pd.DataFrame, model: str) -> tuple[str, Question]:
    verb = probs[probs["word"] == "are"]
    hardest = probs.loc[probs["p"].idxmin()]
    said = (f"The {model} gives the sentence log P = {float(np.log(probs['p']).sum()):.1f} nats, the sum of the "
            f"{len(probs)} bars' logs; its least expected word is “{hardest['word']}” (P = {hardest['p']:.2g}).")
    if len(verb):
        said += f" At “are” it gives P = {float(verb['p'].iloc[0]):.2f}."
    q = Question("Which word of the sentence does the model find hardest to predict, and why might that be?",
                 f"“{hardest['word']}”, the lowest bar (P = {hardest['p']:.2g}): many words could stand there, and "
                 "the model spreads its probability over them.")
    return said, q


def accuracy_in(table: pd.DataFrame, model: str, near: bool) -> float:
    """A model's agreement accuracy within 0–3 words between subject and verb (near) or at 4 or more, weighted
    by the sentences at each distance."""
    rows = table[(table["model"] == model) & table["distance"].notna()]
    rows = rows[rows["distance"] < 4] if near else rows[rows["distance"] >= 4]
    return float((rows["accuracy"] * rows["items"]).sum() / max(rows["items"].sum(), 1))


def markov_says(table: pd.DataFrame, ngram: str) -> tuple[str, Question]:
    near, far = accuracy_in(table, ngram, True), accuracy_in(table, ngram, False)
    said = (f"With subject and verb at most 3 words apart the {ngram} is right {pct(near)} of the time; at 4 or more "
            f"words apart, {pct(far)}: " + ("no better than a coin toss, since the subject has left its window."
                                            if far < 0.6 else "above chance, from cues other than the subject."))
    q = Question("The 3-gram sees two words back. Why is it still right at distance 0 (“the roses are”)?",
                 f"At distance 0 the subject is one of its two words: it is right {pct(near)} within 3 words, "
                 f"{pct(far)} beyond.")
    return said, q


def ffnn_says(curves: dict[str, pd.DataFrame], ffnn: str, window: int, ngram_ppl: float,
              ngram: str) -> tuple[str, Question]:
    df = curves[ffnn]
    inside, beyond = _at(df, window - 1), _at(df, 50)
    flat = abs(beyond - inside) <= 1e-6 * inside
    said = (f"The {ffnn} reads {window - 1} words: its perplexity falls from {_at(df, 1):.1f} with one word of "
            f"context to {inside:.1f} with {window - 1}, and " + ("stays exactly there with 50 (flat beyond its window)"
                                                                    if flat else f"is {beyond:.1f} with 50")
            + f". The {ngram}'s is {ngram_ppl:.1f}" + (", higher: shared parameters generalise better than counts."
                                                      if inside < ngram_ppl else "."))
    q = Question(f"What does the {ffnn} gain from 50 words of context over {window - 1}?",
                 f"Nothing: {inside:.2f} with {window - 1} words, {beyond:.2f} with 50. Its input layer has room for "
                 f"{window - 1} words; anything earlier never reaches it.")
    return said, q


def rnn_says(curves: dict[str, pd.DataFrame], recurrent: list[str], ffnn: str | None = None,
             window: int = 5) -> tuple[str, Question]:
    parts = [f"the {name} {_at(curves[name], 5):.2f} with 5 words and {_at(curves[name], 50):.2f} with 50"
             for name in recurrent]
    gains = {name: _at(curves[name], 5) - _at(curves[name], 50) for name in recurrent}
    best = max(gains, key=gains.get)
    said = ("Perplexity with 5 and with 50 words of context: " + "; ".join(parts) + ". "
            + (f"The recurrent models keep improving past any fixed window, the {best} most." if gains[best] > 0
               else "On these runs longer context does not help: a finding worth checking on more training."))
    if ffnn:
        said += f" The {ffnn}'s curve is flat from {window - 1} words on."
    q = Question("Which curve keeps falling furthest to the right, and what does that say about the model?",
                 f"The {best}'s ({gains[best]:+.2f} from 5 to 50 words): it uses words far back in the text, which no "
                 "fixed window can.")
    return said, q


def roses_says(margins: pd.DataFrame, far: int = 9) -> tuple[str, Question]:
    """margins: model, distance, subject ("roses" or "rose"), margin = log P(are) − log P(is) at the verb."""
    at = margins[margins["distance"] == far].pivot_table(index="model", columns="subject", values="margin", sort=False)
    uses = [m for m, r in at.iterrows() if r["roses"] > 0 > r["rose"]]
    blind = [m for m, r in at.iterrows() if abs(r["roses"] - r["rose"]) < 1e-6]
    parts = [f"{m}: {r['roses']:+.2f} after “roses”, {r['rose']:+.2f} after “rose”" for m, r in at.iterrows()]
    said = (f"{far} words between subject and verb. " + "; ".join(parts) + ". "
            + (f"Right both times, so using the subject: {', '.join(uses)}. " if uses else "")
            + (f"The same number for both sentences, since the subject is outside the window: {', '.join(blind)}."
               if blind else ""))
    q = Question(f"Which model can use the word “roses” when predicting “are” {far} words later?",
                 (f"{', '.join(uses)}: its bar flips sign when “roses” becomes “rose”. " if uses else
                  "None on these runs: no bar flips sign when “roses” becomes “rose”. ")
                 + (f"{', '.join(blind)} give exactly the same number to both sentences: the 3-gram reads only "
                    "“the kitchen”, the FFNN “door to the kitchen”, the same words in both." if blind else ""))
    return said, q


def bptt_says(walk, t: int, tau: int) -> str:
    norms = walk.record.delta_norms
    return (f"Forward, the RNN gives the word after “{walk.tokens[t]}” probability {walk.target_probs[t]:.2f}; "
            "backward, "
            f"the error of y({t}) is ‖δ‖ = {norms[0]:.1e} at step t and {norms[-1]:.1e} at t−{len(norms) - 1}, "
            f"{norms[0] / norms[-1]:,.0f}× smaller after {len(norms) - 1} steps back, where truncation (τ = {tau}) "
            f"stops it. The delta rule and autograd agree to {max(walk.rel_errors.values()):.0e} (relative).")


def decay_says(curves: dict[str, object], rnn: str, lstm: str, k: int = 20) -> tuple[str, Question]:
    def at(name):
        c = curves[name]
        i = int(np.searchsorted(c.k, k))
        return float(c.mean[min(i, len(c.mean) - 1)])
    r, l = at(rnn), at(lstm)
    ratio = l / r if r > 0 else math.inf
    said = (f"{k} steps back the {rnn}'s error signal is {r:.1e}, the {lstm}'s {l:.1e}: "
            + (f"{ratio:,.0f}× larger in the LSTM." if ratio >= 1 else f"{1 / ratio:,.0f}× smaller in the LSTM (the "
               "lecture's claim does not hold on these runs)."))
    q = Question(f"Which model's error can still change the weights that read a word {k} steps back?",
                 f"The {lstm if ratio >= 1 else rnn}'s: its ‖∂ℓ_t/∂h_t−{k}‖ is {max(r, l):.1e}, "
                 f"against {min(r, l):.1e}.")
    return said, q


def holding_unit(sensitivity_at_verb: np.ndarray, f: np.ndarray, i: np.ndarray, source: int, verb: int) -> int:
    """The unit to draw for the lecture's claim: among the units whose state at the verb depends on the source at
    least half as much as the most dependent one's, the one whose cell holds (f > 0.9, i < 0.1) most often between.
    f, i: (T, H) gate values."""
    candidates = np.flatnonzero(sensitivity_at_verb >= 0.5 * sensitivity_at_verb.max())
    span = slice(source + 1, verb)
    held = ((f[span] > 0.9) & (i[span] < 0.1)).sum(axis=0)
    return int(max(candidates, key=lambda u: (held[u], sensitivity_at_verb[u])))


def lstm_says(shading: np.ndarray, tokens: list[str], gates: dict[str, np.ndarray], unit: int,
              verb: int) -> tuple[str, Question]:
    """shading: ‖∂h_t/∂x_roses‖ relative to its peak; gates: this unit's i, f, o, c over the same steps."""
    i, f, o, c = (gates[g] for g in "ifoc")
    between = range(ROSES_SOURCE + 1, verb)
    held = [t for t in between if f[t] > 0.9 and i[t] < 0.1]
    hidden = [t for t in held if o[t] < 0.1]
    shown = [t for t in between if o[t] > 0.5]
    words = lambda ts: ", ".join(f"“{tokens[t]}” ({t})" for t in ts)
    said = (f"Drawn: unit {unit}, the one that depends on “roses” at “are” and holds its cell most often on the way. ")
    if held:
        said += (f"At {words(held)} its forget gate is open (f > 0.9) and its input gate closed (i < 0.1): the cell "
                 "passes its content on.")
        if hidden:
            said += f" At {words(hidden)} the output gate is closed too (o < 0.1), so h_t hides what the cell holds."
    else:
        said += "On this run no step between them has f > 0.9 and i < 0.1: this unit rewrites its cell at every word."
    if shown:
        said += (f" Where the output gate opens ({words(shown)}), h_t depends on “roses” again, up to "
                 f"{max(shading[t] for t in shown):.0%} of its peak.")
    t = (hidden or held or [ROSES_SOURCE + 1])[0]
    q = Question(f"At “{tokens[t]}” (step {t}) the circle is {'pale' if shading[t] < 0.3 else 'dark'}. Is “roses” "
                 "forgotten there?",
                 f"Look at the gates: f = {f[t]:.2f}, i = {i[t]:.2f}, o = {o[t]:.2f}; the cell goes from "
                 f"{c[t - 1]:.2f} to {c[t]:.2f}. " + ("The cell keeps it; h_t = o ⊙ tanh(c_t) shows little of it "
                                                      "because the output gate is closed." if t in hidden else
                                                      "Read the gates: open f and closed i keep the cell."))
    return said, q


def gru_says(rows: pd.DataFrame) -> str:
    lstm, gru = rows.set_index("model").loc["LSTM"], rows.set_index("model").loc["GRU"]
    return (f"Same hidden size: the GRU has {int(gru['parameters']):,} parameters, "
            f"the LSTM {int(lstm['parameters']):,} "
            f"({gru['parameters'] / lstm['parameters']:.0%}); validation perplexity {gru['valid ppl']:.2f} against "
            f"{lstm['valid ppl']:.2f} (" + (f"within {abs(gru['valid ppl'] / lstm['valid ppl'] - 1):.1%}"
                                            if abs(gru["valid ppl"] / lstm["valid ppl"] - 1) < 0.1 else "apart")
            + ").")


def table_says(table: pd.DataFrame) -> tuple[str, Question]:
    ranked = table.sort_values("valid ppl")
    said = "Best to worst: " + ", ".join(f"{m} {v:.2f}" for m, v in zip(ranked["model"], ranked["valid ppl"])) + "."
    q = Question("Which is better here: a fixed window with shared parameters (FFNN) or counts (n-gram)? And which "
                 "recurrent model wins?",
                 said + " Lower perplexity is better.")
    return said, q

"""The lecture's RNN with hand-written truncated backpropagation through time, in numpy only.

Forward, equations (1)-(4) of the lecture (Guo 2013 notation), for t = 0 .. T-1 of one chunk:

    net(t)     = V x(t) + U s(t-1) [+ b1]     (2)   net_j(t) = Σ_i x_i(t) v_ji + Σ_h s_h(t-1) u_jh
    s(t)       = f(net(t)),  f = σ            (1)
    net_out(t) = W s(t) [+ b2]                (4)   net_k(t) = Σ_j s_j(t) w_kj
    y(t)       = g(net_out(t)),  g = softmax  (3)

x(t) is the one-hot vector of the input token, d(t) the one-hot vector of the target (the next token).
V: (hidden, vocab) input→hidden, U: (hidden, hidden) recurrent, W: (vocab, hidden) hidden→output.

Loss: cross-entropy in nats SUMMED over the chunk, L = Σ_t -log y_{d(t)}(t), like the lecture's Σ over patterns p.

Sign convention: `backward` returns the gradient of L (dV = ∂L/∂V, ...). The lecture's delta is
δ_k = (d_k - y_k) g'(net_k), which for softmax with cross-entropy is d - y, and its update is
ΔV = η Σ δ xᵀ; our delta is y - d, the opposite sign, so dV = -ΔV / η and an SGD step is V -= η dV.

Truncation (Williams & Peng style, per output): the error of each output y(t) goes back at most τ
steps: it reaches net(t), net(t-1), ..., net(t-τ+1) and no further, nor before the chunk start, and
s(t-τ) is taken as a constant. So τ = 1 uses only the current step (ΔU += δ(t) s(t-1)ᵀ, no step back),
and τ >= T is full BPTT over the chunk. Between chunks the state is carried but never differentiated
through (`sgd_train`), as in min-char-rnn. The cost is O(T·τ) per chunk: every output has its own walk back.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # = 1 / (1 + e^-z), without overflow for large |z|


def sigmoid_prime(z: np.ndarray) -> np.ndarray:
    """f'(z) = σ(z)(1 - σ(z)). The lecture's point: evaluate it at net, not at the activation s = σ(net)."""
    sz = sigmoid(z)
    return sz * (1.0 - sz)


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max())
    return e / e.sum()


def one_hot(i: int, n: int) -> np.ndarray:
    v = np.zeros(n)
    v[i] = 1.0
    return v


@dataclass
class LectureRNN:
    V: np.ndarray                   # (hidden, vocab)   input -> hidden
    U: np.ndarray                   # (hidden, hidden)  hidden(t-1) -> hidden(t)
    W: np.ndarray                   # (vocab, hidden)   hidden -> output
    b1: np.ndarray | None = None    # (hidden,)  optional
    b2: np.ndarray | None = None    # (vocab,)   optional

    @classmethod
    def init(cls, vocab: int, hidden: int, seed: int = 0, scale: float = 0.1,
             biases: bool = False) -> "LectureRNN":
        """Weights drawn from N(0, scale²); biases (when asked for) start at zero."""
        rng = np.random.default_rng(seed)
        return cls(V=scale * rng.standard_normal((hidden, vocab)),
                   U=scale * rng.standard_normal((hidden, hidden)),
                   W=scale * rng.standard_normal((vocab, hidden)),
                   b1=np.zeros(hidden) if biases else None,
                   b2=np.zeros(vocab) if biases else None)

    @property
    def hidden(self) -> int:
        return self.U.shape[0]


@dataclass
class Caches:
    """Everything the forward pass computed, in dicts keyed by t; s[-1] is the initial state s0."""
    x: dict = field(default_factory=dict)
    net_hidden: dict = field(default_factory=dict)
    s: dict = field(default_factory=dict)
    net_out: dict = field(default_factory=dict)
    y: dict = field(default_factory=dict)
    d: dict = field(default_factory=dict)

    @property
    def T(self) -> int:
        return len(self.y)


@dataclass
class Grads:
    """Gradients of the summed loss L (not the lecture's Δ: dV = -ΔV / η)."""
    dV: np.ndarray
    dU: np.ndarray
    dW: np.ndarray
    db1: np.ndarray | None = None
    db2: np.ndarray | None = None


@dataclass
class BackwardRecord:
    """The walk back from one output time t: entry k is about step t-k (k = 0 .. min(τ, t+1) - 1)."""
    t: int
    deltas: list[np.ndarray]    # δ(t-k) = ∂ℓ_t/∂net(t-k)
    delta_norms: list[float]    # ‖δ(t-k)‖
    dU_norms: list[float]       # ‖δ(t-k) s(t-k-1)ᵀ‖_F, this step's contribution to dU


def forward(params: LectureRNN, inputs: list[int], targets: list[int],
            s0: np.ndarray) -> tuple[float, Caches]:
    """Run equations (1)-(4) over one chunk; return the summed cross-entropy and the caches."""
    V, U, W, b1, b2 = params.V, params.U, params.W, params.b1, params.b2
    vocab = V.shape[1]
    c = Caches()
    c.s[-1] = np.array(s0, dtype=float)
    loss = 0.0
    for t in range(len(inputs)):
        c.x[t] = one_hot(inputs[t], vocab)                                  # (vocab,)
        c.net_hidden[t] = V @ c.x[t] + U @ c.s[t - 1]                       # (2)  (hidden,)
        if b1 is not None:
            c.net_hidden[t] = c.net_hidden[t] + b1
        c.s[t] = sigmoid(c.net_hidden[t])                                   # (1)  (hidden,)
        c.net_out[t] = W @ c.s[t]                                           # (4)  (vocab,)
        if b2 is not None:
            c.net_out[t] = c.net_out[t] + b2
        c.y[t] = softmax(c.net_out[t])                                      # (3)  (vocab,)
        c.d[t] = one_hot(targets[t], vocab)
        loss -= np.log(c.y[t][targets[t]])
    return float(loss), c


def backward(params: LectureRNN, caches: Caches, tau: int, inspect_t: int | None = None,
             guo_typo: bool = False) -> tuple[Grads, BackwardRecord]:
    """Truncated BPTT of depth τ by the delta rule; also the record of the walk back from output inspect_t.

    inspect_t defaults to the last output time. guo_typo=True evaluates f' at the activation,
    σ'(s) = σ'(σ(net)), as Guo (2013) writes; it exists only to show that this gives a wrong gradient.
    """
    if tau < 1:
        raise ValueError(f"tau must be at least 1, got {tau}")
    V, U, W = params.V, params.U, params.W
    x, s, net, y, d = caches.x, caches.s, caches.net_hidden, caches.y, caches.d
    T = caches.T
    inspect_t = T - 1 if inspect_t is None else inspect_t
    f_prime = {t: sigmoid_prime(s[t] if guo_typo else net[t]) for t in range(T)}   # f'(net(t))
    dV, dU, dW = np.zeros_like(V), np.zeros_like(U), np.zeros_like(W)
    db1 = None if params.b1 is None else np.zeros_like(params.b1)
    db2 = None if params.b2 is None else np.zeros_like(params.b2)
    record = BackwardRecord(t=inspect_t, deltas=[], delta_norms=[], dU_norms=[])

    for t in range(T):                                        # every output y(t) sends its error back
        delta_out = y[t] - d[t]                               # (3) back: softmax + cross-entropy
        dW += np.outer(delta_out, s[t])                       # (4) back
        if db2 is not None:
            db2 += delta_out
        delta = (W.T @ delta_out) * f_prime[t]                # (1) back: δ(t) = (Wᵀ δ_out(t)) ⊙ f'(net(t))
        for k in range(min(tau, t + 1)):                      # steps t, t-1, ..., t-τ+1, not before 0
            if k > 0:
                delta = (U.T @ delta) * f_prime[t - k]        # δ(t-k) = (Uᵀ δ(t-k+1)) ⊙ f'(net(t-k))
            dV += np.outer(delta, x[t - k])                   # (2) back, input term
            dU_k = np.outer(delta, s[t - k - 1])              # (2) back, recurrent term
            dU += dU_k
            if db1 is not None:
                db1 += delta
            if t == inspect_t:
                record.deltas.append(delta.copy())
                record.delta_norms.append(float(np.linalg.norm(delta)))
                record.dU_norms.append(float(np.linalg.norm(dU_k)))
    return Grads(dV, dU, dW, db1, db2), record


def sgd_train(corpus_ids: list[int], vocab: int, hidden: int, tau: int, lr: float, epochs: int,
              chunk: int, seed: int = 0, scale: float = 0.1,
              biases: bool = False) -> tuple[LectureRNN, list[float]]:
    """Plain SGD over contiguous chunks; the last state of a chunk is the (constant) s0 of the next.

    Returns the trained parameters and the loss history: one entry per chunk, in nats per token.
    The state starts at zero at the start of every epoch.
    """
    params = LectureRNN.init(vocab, hidden, seed=seed, scale=scale, biases=biases)
    history = []
    for _ in range(epochs):
        s_prev = np.zeros(hidden)
        for p in range(0, len(corpus_ids) - 1, chunk):
            inputs = corpus_ids[p:p + chunk]
            targets = corpus_ids[p + 1:p + chunk + 1]
            inputs = inputs[:len(targets)]                    # the last chunk may be short
            loss, caches = forward(params, inputs, targets, s_prev)
            grads, _ = backward(params, caches, tau)
            params.V -= lr * grads.dV
            params.U -= lr * grads.dU
            params.W -= lr * grads.dW
            if params.b1 is not None:
                params.b1 -= lr * grads.db1
            if params.b2 is not None:
                params.b2 -= lr * grads.db2
            s_prev = caches.s[len(inputs) - 1]                # explicit truncation: carried, not differentiated
            history.append(loss / len(inputs))
    return params, history

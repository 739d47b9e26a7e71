"""Word representations: rows of the input embedding matrix (encoder.weight) or of the output matrix W.

In the lecture x is one-hot, so V x picks one column of V: each word's representation. Here an embedding
layer does the picking (x_t = encoder.weight[token]) and V acts on that vector. W (decoder.weight) has a row
per word too: the direction in h that raises that word's probability. With tied weights the two are one matrix.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..corpus.tokenize import EOS, UNK
from ..corpus.vocab import Vocab
from ..model import RNNLM

MATRICES = {"input": "input embeddings x (encoder.weight)", "output": "output matrix W (decoder.weight)"}


def embedding_matrix(model: RNNLM, which: str = "input") -> np.ndarray:
    """(V, d): one row per vocabulary entry."""
    if which not in MATRICES:
        raise ValueError(f"unknown matrix {which!r}; choose one of {', '.join(MATRICES)}")
    layer = model.encoder if which == "input" else model.decoder
    return layer.weight.detach().float().cpu().numpy()


@dataclass
class Projection:
    coords: np.ndarray      # (n, k) the centred rows in the principal directions
    components: np.ndarray  # (k, d) unit principal directions
    explained: np.ndarray   # (k,) fraction of the total variance along each direction


def pca(matrix: np.ndarray, k: int = 2) -> Projection:
    """Principal components by SVD of the centred matrix: X - mean = U S Vt, directions = rows of Vt."""
    x = np.asarray(matrix, dtype=np.float64)
    x = x - x.mean(axis=0)  # (n, d)
    _, s, vt = np.linalg.svd(x, full_matrices=False)
    k = min(k, vt.shape[0])
    components = vt[:k] * np.sign(vt[:k, [0]] + (vt[:k, [0]] == 0))  # fix the sign: first entry ≥ 0
    var = s ** 2
    explained = var[:k] / var.sum() if var.sum() > 0 else np.zeros(k)
    return Projection(coords=x @ components.T, components=components, explained=explained)


def most_frequent_ids(vocab: Vocab, n: int) -> np.ndarray:
    """The n most frequent words of the training split: the vocabulary is sorted by count after <unk>, <eos>."""
    return np.array([i for i, w in enumerate(vocab.itos) if w not in (UNK, EOS)][:n], dtype=np.int64)


def cosine_neighbours(matrix: np.ndarray, query: int, k: int = 10,
                      among: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The k rows most similar to row `query` by cosine similarity (itself left out), most similar first.

    among: only rows 0..among-1 are candidates (the most frequent words: rare ones are barely trained).
    """
    m = np.asarray(matrix, dtype=np.float64)
    unit = m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12)
    sims = unit @ unit[query]  # (n,)
    sims[query] = -np.inf
    if among is not None:
        sims[among:] = -np.inf
    order = np.argsort(-sims, kind="stable")[:k]
    order = order[np.isfinite(sims[order])]
    return order, sims[order]


def find_word(vocab: Vocab, word: str, lowercase: bool = False) -> tuple[int | None, list[str]]:
    """(id, []) for a known word; (None, close matches) for one the vocabulary lacks."""
    w = word.strip() or word
    if lowercase:
        w = w.lower()
    if w in vocab.stoi:
        return vocab.stoi[w], []
    return None, difflib.get_close_matches(w, vocab.itos, n=5)


def neighbour_table(matrix: np.ndarray, vocab: Vocab, query: int, k: int = 10,
                    among: int | None = None) -> pd.DataFrame:
    """Rows of (rank, word, cosine similarity, frequency rank in the training split)."""
    ids, sims = cosine_neighbours(matrix, query, k, among)
    return pd.DataFrame({"rank": np.arange(1, len(ids) + 1), "word": vocab.decode(ids), "cosine similarity": sims,
                         "frequency rank": pd.array([i - 1 if vocab.itos[i] not in (UNK, EOS) else None for i in ids],
                                                   dtype="Int64")})

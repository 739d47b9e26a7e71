"""Word representations: rows of the input embedding matrix (encoder.weight) or of the output matrix W.

In the lecture x is one-hot, so V x picks one column of V: each word's representation. Here an embedding
layer does the picking (x_t = encoder.weight[token]) and V acts on that vector. W (decoder.weight) has a row
per word too: the direction in h that raises that word's probability. With tied weights the two are one matrix.
The feedforward model with direct connections keeps W and D side by side in decoder.weight ([W D], rows of
H + (n − 1)·E): its output vectors are W's columns alone, the part that reads h, as for every other model.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from lmcore.corpus.tokenize import EOS, UNK
from lmcore.corpus.vocab import Vocab
from lmcore.nn.model import RNNLM

MATRICES = {"input": "input embeddings x (encoder.weight)", "output": "output matrix W (decoder.weight)"}


def embedding_matrix(model: RNNLM, which: str = "input") -> np.ndarray:
    """(V, d): one row per vocabulary entry. Output: W's rows, (V, H), without an FFNN's direct connections D."""
    if which not in MATRICES:
        raise ValueError(f"unknown matrix {which!r}; choose one of {', '.join(MATRICES)}")
    if which == "output" and model.cfg.output == "adaptive":
        raise ValueError("this model's output layer is an adaptive softmax: rare words are read through smaller "
                         "projections of h, so there is no one output vector per word; look at the input vectors")
    weight = model.encoder.weight if which == "input" else model.decoder.weight[:, :model.cfg.hidden]
    return weight.detach().float().cpu().numpy()


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


# --- maps of the most frequent words: t-SNE or PCA, and how many neighbours each keeps -------------------------
METHODS = {"t-SNE": "keeps each word's near neighbours near; distances between groups mean little",
           "PCA": "the two straight directions of largest variance; a linear view that loses most of the variance"}
NEIGHBOURS = 10  # k of "neighbours kept"


@dataclass
class WordMap:
    ids: np.ndarray               # (n,) vocabulary ids, most frequent first
    coords: np.ndarray            # (n, 2) each word's place on the map
    method: str                   # a key of METHODS
    kept: np.ndarray              # (n,) share of each word's NEIGHBOURS nearest (cosine, full space) also nearest on the map
    perplexity: float | None      # t-SNE: the perplexity used (capped below the number of words)
    explained: np.ndarray | None  # PCA: fraction of these words' variance along each axis

    @property
    def score(self) -> float:
        """Neighbours kept, averaged over the words: 1 keeps every neighbourhood, a random map about k/(n-1)."""
        return float(self.kept.mean()) if self.kept.size else 0.0


def usable_perplexity(perplexity: float, n: int) -> float:
    """t-SNE's perplexity (an effective number of neighbours) must stay below n; keep it under (n-1)/3,
    as each point's affinities are computed over its 3·perplexity nearest points."""
    return float(min(perplexity, max((n - 1) / 3, 1.0)))


def tsne(matrix: np.ndarray, perplexity: float = 30.0, seed: int = 0) -> np.ndarray:
    """(n, 2) t-SNE map of the rows by cosine distance (the measure of the neighbour table), the same on every call:
    it starts from the PCA map, not at random (the seed is passed for scikit-learn's other random draws).

    One thread: on 2 shared cores OpenMP's second thread made it 3x slower."""
    from sklearn.manifold import TSNE  # here, not above: importing scikit-learn takes ~1.5 s of every page's start
    from threadpoolctl import threadpool_limits  # installed with scikit-learn

    x = np.asarray(matrix, dtype=np.float64)  # (n, d)
    if x.shape[0] < 3:
        return pca(x, 2).coords if x.shape[0] else np.zeros((0, 2))
    model = TSNE(n_components=2, perplexity=usable_perplexity(perplexity, x.shape[0]), metric="cosine",
                 init="pca", random_state=seed)
    with threadpool_limits(limits=1):
        return model.fit_transform(x)


def _nearest(distances: np.ndarray, k: int) -> np.ndarray:
    """(n, k) indices of each row's k smallest distances (in no order), itself left out."""
    d = distances.copy()
    np.fill_diagonal(d, np.inf)
    return np.argpartition(d, k - 1, axis=1)[:, :k]


def neighbours_kept(full: np.ndarray, coords: np.ndarray, k: int = NEIGHBOURS) -> np.ndarray:
    """(n,) for each row: the share of its k nearest rows by cosine in the full space that are also among its
    k nearest points on the map (Euclidean). 1: the map keeps every neighbourhood; a random map: about k/(n-1)."""
    x = np.asarray(full, dtype=np.float64)
    n = x.shape[0]
    k = min(k, n - 1)
    if k < 1:
        return np.ones(n)
    unit = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    y = np.asarray(coords, dtype=np.float64)
    squared = (y ** 2).sum(axis=1)
    on_map = squared[:, None] + squared[None, :] - 2 * y @ y.T  # (n, n) squared distances: same order
    near_full, near_map = _nearest(-(unit @ unit.T), k), _nearest(on_map, k)
    shared = (near_full[:, :, None] == near_map[:, None, :]).any(axis=2).sum(axis=1)  # (n,)
    return shared / k


def word_map(matrix: np.ndarray, ids: np.ndarray, method: str = "t-SNE", perplexity: float = 30.0,
             seed: int = 0) -> WordMap:
    """The rows `ids` of the matrix (the most frequent words) on a 2-D map by t-SNE or PCA."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    ids = np.asarray(ids, dtype=np.int64)
    x = np.asarray(matrix, dtype=np.float64)[ids]  # (n, d)
    if method == "PCA":
        proj = pca(x, 2)
        coords, used, explained = proj.coords, None, proj.explained
    else:
        coords = pca(tsne(x, perplexity, seed), 2).coords  # turned so its long side lies along x, as a screen does
        used, explained = usable_perplexity(perplexity, len(ids)), None
    return WordMap(ids=ids, coords=coords, method=method, kept=neighbours_kept(x, coords), perplexity=used,
                   explained=explained)

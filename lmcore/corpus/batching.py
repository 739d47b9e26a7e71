"""Batching for truncated backpropagation through time.

A token stream is cut into B contiguous columns; each training chunk is τ rows of that grid:

    stream: a b c d e f g h i j k l m n o p q r s t u v w x    (B = 4)

            column 0  1  2  3
    row 0:       a  g  m  s     <- chunk 1 (τ = 2): inputs rows 0-1, targets rows 1-2
    row 1:       b  h  n  t
    row 2:       c  i  o  u     <- chunk 2 starts here; its h_0 is chunk 1's last h
    ...

Column j of chunk k+1 continues column j of chunk k, so the hidden state is carried across
chunks (and detached, so gradients stop at the chunk boundary: that is the truncation).
"""
from __future__ import annotations

import copy
from typing import Iterator

import numpy as np
import torch


class MappedGrid:
    """The (rows, B) grid of a memory-mapped id stream, read a chunk at a time instead of loaded whole.

    Row slices (all bptt_chunks takes) come back as (τ, B) long tensors on the device; column j is
    ids[j*rows : (j+1)*rows], as in batchify's grid.
    """

    def __init__(self, ids: np.ndarray, batch_size: int, device: torch.device | str = "cpu"):
        self.ids, self.device = ids, torch.device(device)
        self.rows = len(ids) // batch_size
        self.shape = torch.Size((self.rows, batch_size))
        self._columns = np.arange(batch_size) * self.rows  # (B,) start of each stream

    def size(self, dim: int | None = None):
        return self.shape if dim is None else self.shape[dim]

    def __len__(self) -> int:
        return self.rows

    def __getitem__(self, key) -> "torch.Tensor | MappedGrid":
        if isinstance(key, tuple) and len(key) == 2 and key[0] == slice(None) and isinstance(key[1], slice):
            part = copy.copy(self)  # grid[:, a:b]: a block of streams (one rank's, under DDP)
            part._columns = self._columns[key[1]]
            part.shape = torch.Size((self.rows, len(part._columns)))
            return part
        if not isinstance(key, slice) or key.step not in (None, 1):
            raise TypeError("a MappedGrid is read by row ranges (grid[a:b]) or blocks of columns (grid[:, a:b])")
        start, stop, _ = key.indices(self.rows)
        index = np.arange(start, max(start, stop))[:, None] + self._columns[None, :]  # (τ, B)
        return torch.from_numpy(self.ids[index].astype(np.int64)).to(self.device)

    def contiguous(self) -> "MappedGrid":
        return self

    @property
    def is_cuda(self) -> bool:
        return self.device.type == "cuda"


def batchify(ids: np.ndarray, batch_size: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """(N,) ids -> (N // B, B) grid of B contiguous streams; the ragged tail is dropped.

    A memory-mapped stream (a big corpus) gives a MappedGrid, which reads rows as they are asked for."""
    if isinstance(ids, np.memmap):
        return MappedGrid(ids, batch_size, device)
    rows = len(ids) // batch_size
    grid = torch.as_tensor(np.asarray(ids[: rows * batch_size]), dtype=torch.long)
    return grid.view(batch_size, rows).t().contiguous().to(device)  # (rows, B)


def bptt_chunks(grid: torch.Tensor, bptt: int, first: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield (inputs, targets), each (τ', B), with targets the inputs shifted one step ahead.

    first: chunks to skip (a resumed run starts where it stopped in the epoch)."""
    for start in range(first * bptt, grid.size(0) - 1, bptt):
        length = min(bptt, grid.size(0) - 1 - start)
        yield grid[start:start + length], grid[start + 1:start + 1 + length]


def n_chunks(grid: torch.Tensor, bptt: int) -> int:
    return max(0, -(-(grid.size(0) - 1) // bptt))

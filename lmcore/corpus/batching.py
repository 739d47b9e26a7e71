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

from typing import Iterator

import numpy as np
import torch


def batchify(ids: np.ndarray, batch_size: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """(N,) ids -> (N // B, B) grid of B contiguous streams; the ragged tail is dropped."""
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

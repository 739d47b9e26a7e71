"""Imported first by every benchmark: lmcore from this checkout (no install needed), and big tensors in huge pages
as lmcore's own processes allocate them (lmcore.training.allocator), so the references timed beside lmcore get
them too. Before any tensor: PyTorch reads the setting at its first allocation."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lmcore.training.allocator import ask_for_huge_pages  # noqa: E402

ask_for_huge_pages()

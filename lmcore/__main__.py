import sys

from lmcore.training.allocator import ask_for_huge_pages

ask_for_huge_pages()  # before any tensor exists: PyTorch reads it at its first allocation

from lmcore.cli.main import main  # noqa: E402

sys.exit(main())

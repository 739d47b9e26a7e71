"""The data folder: where the run store, uploads, the corpus cache and lmcore.toml live."""
from __future__ import annotations

import os
from pathlib import Path


def default_home() -> Path:
    """`LMCORE_HOME` if set, else ~/.lmcore."""
    return Path(os.environ.get("LMCORE_HOME") or Path.home() / ".lmcore")

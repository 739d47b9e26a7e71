"""Where things live: the data folder (the run store, uploads, the corpus cache, lmcore.toml) and the demo
runs shipped with the code."""
from __future__ import annotations

import os
from pathlib import Path

DEMO_DIR = Path(__file__).resolve().parents[1] / "assets" / "demos"


def default_home() -> Path:
    """`LMCORE_HOME` if set, else ~/.lmcore."""
    return Path(os.environ.get("LMCORE_HOME") or Path.home() / ".lmcore")

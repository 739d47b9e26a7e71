"""One value: checked where it comes from a config or a request (shared by the model's, the training's and the
sampler's settings, so a crafted JSON config is refused the same way wherever it enters), and written in words."""
from __future__ import annotations

import math
import numbers

MAX_SEED = 2**32 - 1  # numpy's and CUDA's generators take no more; torch.manual_seed fails from 2**64


def check_whole(name: str, value) -> None:
    """A whole number: bool (a JSON true) and floats are refused, so a crafted config cannot slip them in."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be a whole number, not {value!r}")


def check_finite(name: str, value) -> None:
    """A real, finite number: NaN slips through every comparison (nan < 0 is False) and inf means no bound."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, not {value!r}")


def ordinal(n: int) -> str:
    """1st, 2nd, 3rd, 11th, 95th."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def check_text(name: str, value, max_chars: int, lines: bool = False) -> str:
    """Text a person typed (a run's name, a note): a string of at most max_chars once stripped, without control
    characters (a terminal would act on them); one line unless `lines`. Returns it stripped, line ends as \\n."""
    if not isinstance(value, str):
        raise ValueError(f"{name} must be text, not {value!r}")
    text = value.replace("\r\n", "\n").replace("\r", "\n").strip()
    allowed = "\n\t" if lines else ""
    if not lines and "\n" in text:
        raise ValueError(f"{name} must be one line")
    bad = next((c for c in text if (ord(c) < 32 or 127 <= ord(c) < 160) and c not in allowed), None)
    if bad is not None:
        raise ValueError(f"{name} must not hold control characters (found {bad!r})")
    if len(text) > max_chars:
        raise ValueError(f"{name} must be at most {max_chars:,} characters, not {len(text):,}")
    return text

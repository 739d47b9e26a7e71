"""Bytes to text: decode what the user gives us, or say clearly why it is not text."""
from __future__ import annotations

import codecs
from pathlib import Path


class CorpusError(ValueError):
    """The one error the corpus layer raises for input it cannot use; its message is shown to the user."""


# Control characters other than tab, newline and carriage return mark a binary file.
_CONTROL = {c for c in range(32) if c not in (9, 10, 13)} | {127}


def decode_text(data: bytes, name: str = "input") -> str:
    """Decode bytes as UTF-8, honouring a UTF-8 or UTF-16 byte-order mark.

    Raises CorpusError naming the file and the reason when the bytes are not text.
    """
    if data.startswith(codecs.BOM_UTF8):
        encoding, body = "utf-8", data[len(codecs.BOM_UTF8):]
    elif data.startswith(codecs.BOM_UTF16_LE) or data.startswith(codecs.BOM_UTF16_BE):
        encoding, body = "utf-16", data
    else:
        encoding, body = "utf-8", data
    if encoding == "utf-8" and b"\x00" in body:
        raise CorpusError(f"{name}: contains NUL bytes, so it is binary data or UTF-16 without a "
                          "byte-order mark; save it as UTF-8 text")
    try:
        text = body.decode(encoding)
    except UnicodeDecodeError as err:
        raise CorpusError(f"{name}: is not valid {encoding.upper()} text (bad byte at offset "
                          f"{err.start}); save it as UTF-8") from None
    text = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    controls = sum(1 for ch in text[:100_000] if ord(ch) in _CONTROL)
    if controls:
        raise CorpusError(f"{name}: contains {controls} control characters, so it looks like binary "
                          "data rather than text")
    if not text.strip():
        raise CorpusError(f"{name}: is empty or holds only whitespace")
    return text


def read_text_file(path: str | Path) -> str:
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CorpusError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise CorpusError(f"{path}: is a folder; give a .txt file or a folder with train.txt, "
                          "valid.txt and test.txt") from None
    except OSError as err:
        raise CorpusError(f"{path}: cannot be read ({err.strerror})") from None
    return decode_text(data, str(path))

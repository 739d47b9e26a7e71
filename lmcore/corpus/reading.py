"""Bytes to text: decode what the user gives us, or say clearly why it is not text.

What is accepted, and what is said when it is not:
- UTF-8, with or without a byte-order mark (BOM); UTF-16 with a BOM.
- UTF-16 without a BOM is read only when its NUL bytes fall in the pattern of mostly-ASCII text
  (every other byte NUL: at odd offsets for little-endian, even ones for big-endian) and the
  bytes then decode cleanly; `Decoded.note` says which byte order was assumed.
- Latin-1 / Windows-1252 is refused, naming UTF-8 and the first bad byte: any byte string decodes
  as Latin-1, so guessing it would turn binary files into garbage text without a word.
- Images, archives, documents and other binary data are refused, named by their magic number
  where it is known, else by their NUL bytes or by control characters making up over
  DENSE_CONTROL_SHARE of the text. Sparse control characters, as real text has (backspace
  overstrike in Debian's fortunes, form feeds in the GPL, a stray ESC), are cleaned instead:
  overstrike keeps the character struck last, form feeds and vertical tabs become line breaks,
  terminal colour codes and the rest are removed, and `Decoded.note` says how many and which
  (ControlTally: the streamed reader feeds it pieces and gets the same text and note).
- Only regular files are opened: a FIFO, a device such as /dev/zero, a socket or a folder is refused
  by what it is before any open() that could block or never end (check_regular; every corpus file,
  a folder's three, a streamed file and the stream's cache, is opened by open_regular); sizes come
  from stat, and a file larger than BINARY_SAMPLE_BYTES is judged on its first bytes before it is
  read whole.
- Empty and whitespace-only input is refused; so is input over a size limit when one is given.
Every refusal is a CorpusError whose message starts with the input's name.
"""
from __future__ import annotations

import codecs
import os
import re
import stat
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path


class CorpusError(ValueError):
    """The one error the corpus layer raises for input it cannot use; its message is shown to the user."""


# Control characters other than tab, newline and carriage return mark a binary file.
_CONTROL = {c for c in range(32) if c not in (9, 10, 13)} | {127}
_CONTROL_RE = re.compile("[" + "".join(re.escape(chr(c)) for c in sorted(_CONTROL)) + "]")

# Magic numbers of files people upload by mistake (first bytes -> what it is).
MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"%PDF-", "a PDF document"),
    (b"PK\x03\x04", "a zip archive (.docx, .xlsx, .odt and PyTorch .pt files are zip archives too)"),
    (b"PK\x05\x06", "an empty zip archive"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"BZh", "a bzip2 archive"),
    (b"\xfd7zXZ\x00", "an xz archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"Rar!\x1a\x07", "a RAR archive"),
    (b"\x7fELF", "an executable (ELF)"),
    (b"MZ\x90\x00", "a Windows executable"),
    (b"SQLite format 3\x00", "an SQLite database"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an old Microsoft Office document (.doc, .xls)"),
    (b"{\\rtf", "an RTF document; save it as plain text"),
)
_UTF16_SAMPLE = 4096  # bytes looked at to recognise UTF-16 without a byte-order mark

# Above this share of the characters, control characters mean binary data; at or below, text to clean.
# Fortunes with overstrike have ~0.1%, a man page rendered with overstrike ~3% at worst on a header;
# binary data decoding as text has ~10% (32 of 256 byte values are controls).
DENSE_CONTROL_SHARE = 0.05
BINARY_SAMPLE_BYTES = 2**20  # a bigger file is refused on its first MB when that is binary, unread beyond
_CONTROL_NAMES = {8: "backspace", 11: "vertical tab", 12: "form feed", 27: "ESC", 7: "bell", 127: "DEL"}
_ANSI_RE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]")  # terminal colour and cursor codes, ESC [ ... m
_OVERSTRIKE_RE = re.compile("[^\n\x08]\x08")     # 'x\by': typewriter overstrike; y is what shows
_MARKUP_RE = re.compile("(.)\x08(?=\\1)|_\x08(?=[^\\s\x08])")  # nroff bold 'w\bw' and underline '_\bw': markup, not noise
_FILE_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
               (stat.S_ISCHR, "a character device (such as /dev/zero)"), (stat.S_ISBLK, "a block device (a disk)"),
               (stat.S_ISSOCK, "a socket"))


@dataclass(frozen=True)
class Decoded:
    text: str
    encoding: str   # "utf-8", "utf-16-le", "utf-16-be"
    note: str = ""  # set when the encoding was assumed rather than declared (UTF-16 without a BOM)


def human_size(n: int) -> str:
    return f"{n / 2**20:.1f} MB" if n >= 2**20 else f"{n / 2**10:.1f} KB" if n >= 2**10 else f"{n} bytes"


def _utf16_without_bom(data: bytes) -> str | None:
    """'utf-16-le' or 'utf-16-be' when the NUL bytes fall every other byte, as in UTF-16 ASCII text."""
    sample = data[:_UTF16_SAMPLE]
    if len(sample) < 4 or len(data) % 2:
        return None
    even, odd = sample[0::2], sample[1::2]
    nul_even, nul_odd = even.count(0) / len(even), odd.count(0) / len(odd)
    if nul_odd >= 0.4 and nul_even <= 0.02:
        return "utf-16-le"  # 'a\x00b\x00'
    if nul_even >= 0.4 and nul_odd <= 0.02:
        return "utf-16-be"  # '\x00a\x00b'
    return None


def _line_of(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def _not_utf8(data: bytes, err: UnicodeDecodeError, name: str) -> CorpusError:
    bad = data[err.start]
    where = f"byte 0x{bad:02X} at offset {err.start} (line {_line_of(data, err.start)})"
    following = data[err.start + 1:err.start + 2]
    if 0xC2 <= bad <= 0xF4 and following and 0x80 <= following[0] <= 0xBF:  # a UTF-8 sequence cut short
        return CorpusError(f"{name}: is not valid UTF-8 text ({where}: a multi-byte character is cut short, so the "
                           "file may be damaged or cut); save it again as UTF-8")
    try:
        looks_latin = not _CONTROL_RE.search(data[:100_000].decode("cp1252"))
    except UnicodeDecodeError:  # bytes Windows-1252 leaves undefined (0x81, 0x8D, 0x8F, 0x90, 0x9D)
        looks_latin = False
    hint = (" It looks like Latin-1 / Windows-1252 text, which is not read here because any bytes at all "
            "decode as Latin-1." if looks_latin else "")
    return CorpusError(f"{name}: is not valid UTF-8 text ({where}).{hint} Save it as UTF-8 "
                       "(e.g. `iconv -f latin1 -t utf-8 in.txt > out.txt`, or \"Save as… UTF-8\" in an editor)")


def _control_counts(text: str) -> dict[int, int]:
    """Code point -> count of each control character in text (str.count per code point: no list of matches)."""
    return {c: n for c in sorted(_CONTROL) if (n := text.count(chr(c)))}


@dataclass
class ControlTally:
    """Cleans text given whole or in pieces cut where no rule reaches across (after a line end: no rule
    matches one), and judges the whole by the sum: the in-memory reader and the streamed one share it."""
    counts: Counter = field(default_factory=Counter)
    outside_markup: int = 0  # control characters left once markup and terminal codes are taken out
    chars: int = 0
    lines: int = 0  # line ends before the next piece
    first: tuple[int, int] | None = None  # (code point, line) of the first control character

    def clean(self, piece: str) -> str:
        found = _CONTROL_RE.search(piece)
        if found and self.first is None:
            self.first = (ord(found.group()), self.lines + piece.count("\n", 0, found.start()) + 1)
        self.chars += len(piece)
        self.lines += piece.count("\n")
        if not found:
            return piece
        self.counts.update(_control_counts(piece))
        # Well-formed markup (nroff bold and underline, terminal colour codes) may be dense in a man page and is
        # still text; the density that says "binary" is of the control characters left outside it.
        piece = _MARKUP_RE.sub("", _ANSI_RE.sub("", piece))
        self.outside_markup += sum(_control_counts(piece).values())
        piece = _OVERSTRIKE_RE.sub("", piece)  # keeps the character struck last: '_\bw' and 'w\bw' show 'w'
        return _CONTROL_RE.sub("", piece.replace("\f", "\n").replace("\v", "\n"))

    def note(self, name: str) -> str:
        """What was cleaned, in words ("" for nothing); CorpusError when the controls are dense, or any is NUL."""
        if not self.counts:
            return ""
        total = sum(self.counts.values())
        if 0 in self.counts or self.outside_markup > DENSE_CONTROL_SHARE * self.chars:
            code, line = self.first
            raise CorpusError(f"{name}: contains {total:,} control characters (the first, U+{code:04X}, on line "
                              f"{line}), so it looks like binary data rather than text")
        kinds = ", ".join(f"{n:,} {_CONTROL_NAMES.get(c, f'U+{c:04X}')}{'s' if n > 1 else ''}"
                          for c, n in sorted(self.counts.items(), key=lambda item: (-item[1], item[0])))
        return f"{name}: cleaned {total:,} control characters ({kinds}): " + "; ".join(self._how())

    def _how(self) -> list[str]:
        how = []
        if 8 in self.counts:
            how.append("overstruck letters keep the letter struck last")
        if 11 in self.counts or 12 in self.counts:
            how.append("page breaks became line breaks")
        if 27 in self.counts:
            how.append("terminal codes (ESC [ … m) were removed with their ESC")
        if set(self.counts) - {8, 11, 12, 27}:
            how.append("the others were removed")
        return how


def clean_controls(text: str, name: str) -> tuple[str, str]:
    """(text, note): sparse control characters cleaned and counted by kind; dense ones, or any NUL, refused."""
    tally = ControlTally()
    text = tally.clean(text)
    return text, tally.note(name)


def read_bytes(data: bytes, name: str = "input", max_bytes: int | None = None) -> Decoded:
    """Decode bytes as text (see the module's docstring for what is accepted); raises CorpusError."""
    if max_bytes is not None and len(data) > max_bytes:
        raise CorpusError(f"{name}: is {human_size(len(data))}, over the limit of {human_size(max_bytes)} "
                          "(max_upload_mb)")
    if not data:
        raise CorpusError(f"{name}: is empty (0 bytes)")
    for magic, what in MAGIC:
        if data.startswith(magic):
            raise CorpusError(f"{name}: is {what}, not text; give a plain-text (.txt) file in UTF-8")
    note = ""
    if data.startswith(codecs.BOM_UTF8):
        encoding, body = "utf-8", data[len(codecs.BOM_UTF8):]
    elif data.startswith(codecs.BOM_UTF16_LE):  # checked after UTF-8: its BOM never starts with FF FE
        encoding, body = "utf-16-le", data[2:]
    elif data.startswith(codecs.BOM_UTF16_BE):
        encoding, body = "utf-16-be", data[2:]
    elif b"\x00" in data:
        guess = _utf16_without_bom(data)
        if guess is None:
            raise CorpusError(f"{name}: contains NUL bytes, so it is binary data rather than text (UTF-16 text "
                              "needs a byte-order mark unless it is mostly ASCII); save it as UTF-8 text")
        encoding, body = guess, data
        note = (f"{name}: read as UTF-16 {guess[-2:].upper()} without a byte-order mark (every other byte is "
                "NUL, as in UTF-16 text); saving it as UTF-8 avoids the guess")
    else:
        encoding, body = "utf-8", data
    try:
        text = body.decode(encoding)
    except UnicodeDecodeError as err:
        if encoding == "utf-8":
            raise _not_utf8(body, err, name) from None
        raise CorpusError(f"{name}: is not valid {encoding.upper()} text (bad bytes at offset {err.start}); "
                          "save it as UTF-8") from None
    text = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    text, cleaned = clean_controls(text, name)
    note = "; ".join(n for n in (note, cleaned) if n)
    if not text.strip():
        raise CorpusError(f"{name}: is empty apart from whitespace ({human_size(len(data))} of spaces and "
                          "line breaks)")
    return Decoded(text, encoding, note)


def decode_text(data: bytes, name: str = "input", max_bytes: int | None = None) -> str:
    """The text of `data` (see read_bytes); raises CorpusError naming `name` and the reason."""
    return read_bytes(data, name, max_bytes).text


def file_kind(mode: int) -> str | None:
    """What a stat mode names when it is not a regular file ("a FIFO (named pipe)", ...); None for a file."""
    return next((what for is_kind, what in _FILE_KINDS if is_kind(mode)), None)


def check_regular(path: str | Path, name: str | None = None) -> os.stat_result:
    """stat() of a regular file; CorpusError naming what else the path is (stat never blocks, open() may)."""
    info = os.stat(path)
    _refuse_kind(info.st_mode, name or str(path))
    return info


def _refuse_kind(mode: int, name: str) -> None:
    if kind := file_kind(mode):
        raise CorpusError(f"{name}: is {kind}, not a regular file")


def open_regular(path: str | Path, name: str | None = None, max_bytes: int | None = None,
                 limit_name: str = "max_upload_mb"):
    """(binary file, size) of a regular file, refused by kind or size before anything could block or grow.

    stat() first says what the path is (a FIFO's open() waits for a writer for ever; /dev/zero never
    ends); the open is non-blocking and fstat() checks again, so a path swapped in between is caught too."""
    name = name or str(path)
    check_regular(path, name)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        info = os.fstat(fd)
        _refuse_kind(info.st_mode, name)
        if max_bytes is not None and info.st_size > max_bytes:
            raise CorpusError(f"{name}: is {human_size(info.st_size)}, over the limit of {human_size(max_bytes)} "
                              f"({limit_name})")
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb"), info.st_size


def _refuse_binary_head(head: bytes, name: str) -> None:
    """Refuses a big file whose first bytes are binary (as read_bytes would the whole), before reading the rest."""
    try:
        read_bytes(head, name)
    except CorpusError as err:
        message = str(err)
        if "binary" in message or message.startswith(f"{name}: is ") and "not text" in message:
            raise CorpusError(message.replace(" control characters (", f" control characters in its first "
                                              f"{human_size(len(head))} (", 1)) from None
    # other complaints (a character cut at the sample's end, say) are the whole file's to make


def _fill(f, view: memoryview) -> int:
    """Bytes read into view until it is full or the file ends."""
    got = 0
    while got < len(view) and (n := f.readinto(view[got:])):
        got += n
    return got


@contextmanager
def file_errors(path: Path):
    """What goes wrong opening or reading a corpus file, as one CorpusError naming it."""
    try:
        yield
    except CorpusError as err:
        if "is a folder" in str(err):
            raise CorpusError(f"{path}: is a folder; give a .txt file or a folder with train.txt, "
                              "valid.txt and test.txt") from None
        raise
    except FileNotFoundError:
        raise CorpusError(f"{path}: no such file") from None
    except OSError as err:
        raise CorpusError(f"{path}: cannot be read ({err.strerror or err})") from None
    except ValueError as err:  # a NUL character in the path, say
        raise CorpusError(f"{str(path)!r}: not a usable file name ({err})") from None


def open_text(path: Path, max_bytes: int | None = None):
    """(binary file, size, first bytes) of a regular file; a big one whose first bytes are binary is refused
    on them (as read_bytes would refuse the whole), unread beyond."""
    f, size = open_regular(path, max_bytes=max_bytes)
    try:
        head = f.read(min(size, BINARY_SAMPLE_BYTES))
        if size > len(head):
            _refuse_binary_head(head[:len(head) & ~1], str(path))  # whole UTF-16 units
    except BaseException:
        f.close()
        raise
    return f, size, head


def read_file(path: str | Path, max_bytes: int | None = None) -> Decoded:
    """A text file's decoded contents; what the path is and its size are checked before it is read."""
    path = Path(path)
    with file_errors(path):
        f, size, head = open_text(path, max_bytes)
        with f:
            data = bytearray(size)  # never more than stat said: a file that grows while read cannot grow memory
            data[:len(head)] = head
            with memoryview(data) as view:
                got = len(head) + _fill(f, view[len(head):])
        del data[got:]  # a file that shrank while read
    return read_bytes(data, str(path), max_bytes)


def read_text_file(path: str | Path, max_bytes: int | None = None) -> str:
    return read_file(path, max_bytes).text

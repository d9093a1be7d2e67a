"""The slow, exact passes over a CSV: row widths and blank lines, the first bad cell, the first byte not UTF-8.

numpy's C parser (:mod:`.csv_reader`) reads the numbers fast but cannot say where a problem is, nor count cells it
was not asked for. These passes run only to check what numpy skips (row widths, when it reads some columns) or
after it failed, and name the line number a text editor shows, the header being line 1.
"""

from __future__ import annotations

import codecs
import csv
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from lr_lightning.data.checks import FLOAT32_MAX, float32_overflow_message
from lr_lightning.errors import InputError

__all__ = ["SPACE", "Lines", "check_row_widths", "data_rows", "diagnose_csv", "encoding_error", "parse_number"]

#: ASCII whitespace: what numpy's parser strips around a number (``str.strip()`` would strip Unicode spaces too).
SPACE = " \t\r\n\v\f"

#: Bytes of a CSV scanned at a time when checking its rows' widths.
_SCAN_BYTES = 1 << 24


@dataclass
class Lines:
    """The data lines of a CSV that hold no cells: skipped, as numpy skips empty lines.

    Attributes:
        skipped: line numbers (as an editor counts them) of every empty or whitespace-only line after the header.
        whitespace: the whitespace-only ones among them, which numpy's parser does not skip by itself.

    """

    skipped: list[int]
    whitespace: list[int]

    def line_of(self, row: int) -> int:
        """Return the line number of data row ``row`` (0-based, in parsed order)."""
        line = row + 2
        for skipped in self.skipped:  # in increasing order
            if skipped > line:
                break
            line += 1
        return line


def _is_blank(row: list[str]) -> bool:
    """Tell whether a CSV record is an empty or whitespace-only line (skipped); ``,,`` is a row of empty cells."""
    return not row or (len(row) == 1 and not row[0].strip(SPACE))


def _width_error(path: Path, line: int, cells: int, width: int) -> InputError:
    """Build the error for a data line of ``cells`` cells under a header of ``width`` names."""
    return InputError(f"{path}, row {line}: {cells} cells but the header names {width} columns")


def check_row_widths(path: Path, width: int, delimiter: str) -> Lines:
    """Check that every data line has ``width`` cells, and find the blank lines (skipped).

    numpy's parser reads only the chosen columns (``usecols``) and ignores extra cells, so the widths are checked
    here: a count of delimiters per line, in C (``bytes.count``), for files without quotes; with quotes, the
    ``csv`` module's count of cells.
    """
    skipped: list[int] = []
    whitespace: list[int] = []
    separator = delimiter.encode()
    # A line of only these is blank; a tab delimiter makes "\t" a row of two empty cells, as the csv module reads it.
    space = b" \t\r\v\f".replace(separator, b"")
    with path.open("rb") as handle:
        handle.readline()  # the header: one line (a name with a line break was refused)
        line = 1
        carry = b""
        while True:
            chunk = handle.read(_SCAN_BYTES)
            block = carry + chunk if carry else chunk
            if b'"' in block:
                return _check_row_widths_quoted(path, width, delimiter)
            lines = block.split(b"\n") if block else []
            carry = lines.pop() if chunk else b""  # a line the next chunk continues; at the end, the last line
            counts = [text.count(separator) for text in lines]
            if width == 1:  # find the blank lines by their content; numpy refuses a line with a delimiter itself
                odd = [i for i, text in enumerate(lines) if not text.strip(space)]
            elif counts.count(width - 1) != len(counts):
                odd = [i for i, count in enumerate(counts) if count != width - 1]
            else:
                odd = []
            for i in odd:
                number = line + 1 + i
                if lines[i].strip(space):
                    raise _width_error(path, number, counts[i] + 1, width)
                skipped.append(number)
                if lines[i] not in (b"", b"\r"):
                    whitespace.append(number)
            line += len(lines)
            if not chunk:
                return Lines(skipped, whitespace)


def _check_row_widths_quoted(path: Path, width: int, delimiter: str) -> Lines:
    """Do what :func:`check_row_widths` does for a file with quotes, whose cells may hold delimiters and line breaks."""
    skipped: list[int] = []
    whitespace: list[int] = []
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle, delimiter=delimiter)
        next(reader)
        for row in reader:
            number = reader.line_num
            if _is_blank(row):
                skipped.append(number)
                if row:
                    whitespace.append(number)
            elif len(row) != width:
                raise _width_error(path, number, len(row), width)
    return Lines(skipped, whitespace)


def data_rows(path: Path, header: list[str], delimiter: str) -> Iterator[tuple[int, list[str]]]:
    """Yield the line number and cells of each data row, skipping the lines numpy skips (blank, whitespace-only).

    Raises :class:`~lr_lightning.errors.InputError` for a row of another width than ``header``, and
    :class:`UnicodeDecodeError` for a byte that is not UTF-8 (see :func:`encoding_error`).
    """
    with path.open(newline="", encoding="utf-8-sig") as handle:  # utf-8-sig: Excel writes a byte-order mark
        reader = csv.reader(handle, delimiter=delimiter)
        next(reader)
        for row in reader:
            if _is_blank(row):
                continue
            if len(row) != len(header):
                raise _width_error(path, reader.line_num, len(row), len(header))
            yield reader.line_num, row


def parse_number(cell: str) -> float | None:
    """Read the number in a CSV cell as numpy's parser does; ``None`` if numpy cannot read one.

    Python's ``float()`` also accepts ``1_000`` and non-ASCII digits; numpy does not, and the two must agree.
    """
    text = cell.strip(SPACE)
    if not text or "_" in text or not text.isascii():
        return None
    try:
        return float(text)
    except ValueError:
        return None


def encoding_error(path: Path, header: list[str] | None, delimiter: str) -> InputError:
    """Build the error naming the row and column of the first byte of ``path`` that is not UTF-8."""
    raw = path.read_bytes()
    start = len(codecs.BOM_UTF8) if raw.startswith(codecs.BOM_UTF8) else 0
    try:
        raw[start:].decode("utf-8")
    except UnicodeDecodeError as error:
        offset = start + error.start
    else:  # pragma: no cover - only called after a decoding error
        return InputError(f"{path}: the file is not UTF-8 text")
    line_start = raw.rfind(b"\n", 0, offset) + 1
    row = raw.count(b"\n", 0, offset) + 1
    if header is None and row > 1:  # the text layer decodes ahead: the header itself may be fine
        first = raw[start : raw.find(b"\n")].decode("utf-8")
        header = [name.strip() for name in next(csv.reader([first], delimiter=delimiter))]
    # The cells before the bad byte, plus one: the index of the cell that holds it.
    before = raw[line_start:offset].decode("utf-8", errors="replace")
    index = len(next(csv.reader([before + "x"], delimiter=delimiter))) - 1
    column = repr(header[index]) if header is not None and row > 1 and index < len(header) else str(index + 1)
    return InputError(
        f"{path}, row {row}, column {column}: byte 0x{raw[offset]:02x} is not UTF-8 text; the file must be "
        "UTF-8 (save it again as UTF-8, e.g. 'CSV UTF-8' in a spreadsheet)"
    )


def diagnose_csv(
    path: Path,
    header: list[str],
    numeric_columns: list[str],
    delimiter: str,
    too_large: bool = False,
    features: Sequence[str] = (),
) -> str | None:
    """Find the first cell that is not a finite number (or a row of the wrong width) and raise an error naming it.

    Only runs after the fast parser has failed or found a bad value, so its speed does not matter; it reports
    the line number a text editor shows, counting blank lines, and reads cells as numpy does
    (:func:`parse_number`). With ``too_large``, it returns the message naming the first cell whose magnitude
    float32 cannot hold (``None`` if there is none) instead. A bad cell of one of the ``features`` gets the option
    that would read it: ``categorical`` for text, ``missing`` for an empty cell.
    """
    indices = [header.index(name) for name in numeric_columns]
    try:
        for line, row in data_rows(path, header, delimiter):
            for index in indices:
                cell = row[index].strip(SPACE)
                where = f"{path}, row {line}, column {header[index]!r}"
                value = parse_number(cell)
                feature = header[index] in features
                if not cell:
                    fix = "set missing: mean or median to impute it" if feature else "fill in or remove the value"
                    raise InputError(f"{where}: '' is not a number (an empty cell: {fix})")
                if value is None:
                    categories = feature and any(character.isalpha() for character in cell)
                    hint = f"; if the column holds categories, list it in categorical: [{header[index]}]"
                    raise InputError(f"{where}: {cell!r} is not a number{hint if categories else ''}")
                if not math.isfinite(value):
                    raise InputError(f"{where}: {cell} is not a finite number (remove or fill the missing values)")
                if too_large and abs(value) > FLOAT32_MAX:
                    return float32_overflow_message(where, cell)
    except UnicodeDecodeError:
        raise encoding_error(path, header, delimiter) from None
    return None

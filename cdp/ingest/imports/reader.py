"""Reading an uploaded CSV: encoding and delimiter sniffing, streaming rows with limits.

Encodings: a BOM decides (UTF-8/UTF-16); otherwise a sample that decodes as strict UTF-8 is
UTF-8, and anything else is handed to charset-normalizer (restricted to the Western encodings
real exports use), falling back to CP1252. Rows are decoded with `surrogateescape`, so a byte that
does not fit the detected encoding rejects only its row, with a reason, instead of the job.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

from django.conf import settings

from cdp.api.errors import ApplicationError

SAMPLE_BYTES = 64 * 1024
DELIMITERS = (",", ";", "\t", "|")
DEFAULT_MAX_FIELD_BYTES = 1024 * 1024


class ImportFileError(ApplicationError):
    """The file as a whole cannot be read: the job fails with this code and message."""


def max_field_bytes() -> int:
    return int(getattr(settings, "CDP_IMPORT_MAX_FIELD_BYTES", DEFAULT_MAX_FIELD_BYTES))


@dataclass(frozen=True)
class Dialect:
    encoding: str
    delimiter: str


def _utf16_without_bom(sample: bytes) -> str | None:
    """UTF-16 text without a byte-order mark: CSV is mostly ASCII, so one byte of nearly every
    pair is NUL, always on the same side (odd offsets little-endian, even big-endian)."""
    pairs = len(sample) // 2
    if pairs < 8:
        return None
    even, odd = sample[0 : 2 * pairs : 2].count(0), sample[1 : 2 * pairs : 2].count(0)
    if odd >= 0.9 * pairs and even <= 0.05 * pairs:
        return "utf-16-le"
    if even >= 0.9 * pairs and odd <= 0.05 * pairs:
        return "utf-16-be"
    return None


def detect_encoding(sample: bytes) -> str:
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    if (utf16 := _utf16_without_bom(sample)) is not None:
        return utf16
    try:
        sample.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError as exc:
        if exc.start >= len(sample) - 3 and exc.reason == "unexpected end of data":
            return "utf-8"  # the sample cut a character in two
    from charset_normalizer import from_bytes

    best = from_bytes(
        sample, cp_isolation=["cp1252", "latin_1", "iso8859_15", "utf_8"], threshold=0.5
    ).best()
    name = (best.encoding if best is not None else "cp1252").replace("_", "-")
    # Latin-1 and CP1252 agree except for 0x80-0x9F, where CP1252 has the printable characters
    # (euro sign, quotes) that spreadsheet exports actually contain.
    return "cp1252" if name in ("latin-1", "iso8859-1") else name


def detect_delimiter(text: str) -> str:
    lines = [line for line in text.splitlines()[:50] if line.strip()]
    if not lines:
        return ","
    try:
        return csv.Sniffer().sniff("\n".join(lines), delimiters="".join(DELIMITERS)).delimiter
    except csv.Error:
        header = lines[0]
        return max(DELIMITERS, key=header.count)


def sniff(sample: bytes) -> Dialect:
    """Encoding and delimiter from the first bytes; refuses empty and binary files."""
    if not sample.strip():
        raise ImportFileError("import_empty_file", "the file is empty")
    encoding = detect_encoding(sample)
    if b"\x00" in sample and not encoding.startswith("utf-16"):
        raise ImportFileError("import_binary_file", "the file is not text (it contains NUL bytes)")
    text = sample.decode(encoding, errors="replace")
    if sum(1 for c in text[:4096] if not c.isprintable() and c not in "\r\n\t") > 40:
        raise ImportFileError("import_binary_file", "the file is not text")
    return Dialect(encoding=encoding, delimiter=detect_delimiter(text))


class FieldTooLarge(Exception):
    pass


def _bounded_lines(text: IO[str], limit: int) -> Iterator[str]:
    """Lines of at most `limit` characters: a 100 MB single field never reaches memory whole."""
    while True:
        line = text.readline(limit + 1)
        if not line:
            return
        if len(line) > limit and not line.endswith("\n"):
            raise FieldTooLarge
        yield line


@dataclass
class RawRow:
    number: int  # the row a spreadsheet shows (header = 1, blank rows counted): for reports
    values: list[str]
    ordinal: int = 0  # data rows up to and including this one (blank rows not): for resuming


class RowStream:
    """The header and then the data rows of a binary stream, lazily."""

    def __init__(self, binary: IO[bytes], dialect: Dialect) -> None:
        self.dialect = dialect
        limit = max_field_bytes()
        csv.field_size_limit(limit)
        self._text = io.TextIOWrapper(
            binary,  # type: ignore[arg-type]
            encoding=dialect.encoding,
            errors="surrogateescape",
            newline="",
        )
        self._reader = csv.reader(_bounded_lines(self._text, limit), delimiter=dialect.delimiter)
        self.rows_read = 0  # data rows
        self.records = 1  # rows as a spreadsheet counts them, the header included
        try:
            header = next(self._reader)
        except StopIteration:
            raise ImportFileError("import_empty_file", "the file has no header row") from None
        except (csv.Error, FieldTooLarge):
            raise ImportFileError(
                "import_unreadable_header", "the header row is not valid CSV or is too long"
            ) from None
        self.header = [h.strip().lstrip("\ufeff") for h in header]
        if not any(self.header):
            raise ImportFileError("import_no_header", "the first row has no column names")
        if any(_looks_like_data(h) for h in self.header):
            # Kept as headers, the row's values would be stored in plaintext (the job's headers
            # and mapping), shown in the admin and the API, and named in the error report.
            raise ImportFileError(
                "import_no_header",
                "the first row holds an e-mail address or a phone number, not column names: "
                "the file needs a header row",
            )
        if any(_has_surrogates(h) for h in self.header):
            raise ImportFileError(
                "import_encoding", f"the header row is not valid {dialect.encoding}"
            )

    def _too_large(self) -> ImportFileError:
        return ImportFileError(
            "import_field_too_large",
            f"row {self.records + 1} has a field over the {max_field_bytes():,}-character "
            "limit; rows before it were imported",
        )

    def __iter__(self) -> Iterator[RawRow]:
        while True:
            try:
                values = next(self._reader)
            except StopIteration:
                return
            except FieldTooLarge:
                raise self._too_large() from None
            except csv.Error as exc:
                if "limit" in str(exc):  # a quoted field of many short lines: the same limit
                    raise self._too_large() from None
                raise ImportFileError(
                    "import_invalid_csv",
                    f"row {self.records + 1}: invalid CSV; rows before it were imported",
                ) from None
            self.records += 1
            if not values or (len(values) == 1 and not values[0].strip()):
                continue  # a blank row: not data, but it has a number
            self.rows_read += 1
            yield RawRow(self.records, values, self.rows_read)


_EMAIL_LIKE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_PHONE_LIKE = re.compile(r"\+?[\d\s().-]+")


def _looks_like_data(header: str) -> bool:
    """A column name is never an e-mail address or a phone number (a date such as 2024-01-31,
    eight digits, is a possible column name and is not matched)."""
    if _EMAIL_LIKE.fullmatch(header):
        return True
    digits = sum(c.isdigit() for c in header)
    return bool(_PHONE_LIKE.fullmatch(header)) and (
        digits >= 10 or (header.startswith("+") and digits >= 8)
    )


_SURROGATES = re.compile("[\udc80-\udcff]")


def _has_surrogates(text: str) -> bool:
    """Bytes that did not decode (kept as lone surrogates by `surrogateescape`)."""
    return _SURROGATES.search(text) is not None


def has_bad_encoding(values: list[str]) -> bool:
    return _SURROGATES.search("".join(values)) is not None

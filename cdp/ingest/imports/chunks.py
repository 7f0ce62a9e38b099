"""The file as chunks of cleaned rows, from the row after the last committed one.

Reading and cleaning (CSV parsing, phone numbers, blind indexes, row fingerprints) need no
database; the run writes each chunk in its own transaction. Cleaning is deterministic, so a
chunk retried after a conflict reuses its clean rows instead of cleaning them again.

(Cleaning the next chunk in a thread while the run waited on PostgreSQL was tried: on this
shared 2-core machine it read slower under load, each wait on the database then also waiting
for the GIL, so the run stays single-threaded.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from cdp.ingest.imports.reader import ImportFileError, RawRow, RowStream
from cdp.ingest.imports.rows import Context
from cdp.ingest.imports.storage import DecryptingReader


@dataclass
class Chunk:
    rows: list[RawRow]
    cleaned: list[Any]  # per row: its clean row, or the list of its RowErrors
    position: int  # plaintext bytes read when the chunk was complete
    error: ImportFileError | None = None  # the file cannot be read past this chunk


def import_chunks(
    stream: RowStream,
    reader: DecryptingReader,
    *,
    rows_done: int,
    size: int,
    clean: Callable[[RawRow, Context], Any],
    ctx: Context,
) -> Iterator[Chunk]:
    """Chunks of `size` rows after data row `rows_done`, the last one shorter. A file that turns
    unreadable ends the chunks with one carrying the error (and the rows read before it)."""
    rows: list[RawRow] = []
    cleaned: list[Any] = []
    try:
        for raw in stream:
            if raw.ordinal <= rows_done:
                continue
            rows.append(raw)
            cleaned.append(clean(raw, ctx))
            if len(rows) >= size:
                yield Chunk(rows, cleaned, reader.position)
                rows, cleaned = [], []
    except ImportFileError as exc:
        yield Chunk(rows, cleaned, reader.position, error=exc)
        return
    if rows:
        yield Chunk(rows, cleaned, reader.position)

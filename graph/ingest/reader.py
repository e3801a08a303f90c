"""Streams the rows of a dataset file (CSV or Parquet) in batches, each row with its line number.

Memory stays flat: one batch of rows at a time. CSV line numbers are the physical line of the
row's first character (the header is line 1), so an error can be found in an editor; Parquet
rows are numbered from 1.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from graph.errors import ValidationFailed
from graph.ingest.formats import SPECS, FileSpec

SUFFIXES = (".csv", ".parquet")


@dataclass(frozen=True)
class DatasetFile:
    """A file of a dataset folder, matched to its spec by name (`orders.csv`, `stock.parquet`)."""

    spec: FileSpec
    path: Path

    @property
    def is_csv(self) -> bool:
        return self.path.suffix == ".csv"


def find_files(folder: Path) -> list[DatasetFile]:
    """The dataset files in `folder`, in load order.

    Raises:
        ValidationFailed: the folder is missing, holds no dataset file, or one name twice.
    """
    if not folder.is_dir():
        raise ValidationFailed(f"{folder}: not a folder")
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix not in SUFFIXES or path.stem not in SPECS:
            continue
        if path.stem in found:
            raise ValidationFailed(
                f"{folder}: both {found[path.stem].name} and {path.name} hold {path.stem}; keep one"
            )
        found[path.stem] = path
    if not found:
        names = ", ".join(f"{name}.csv" for name in SPECS)
        raise ValidationFailed(f"{folder}: no dataset file found (expected any of {names})")
    return [DatasetFile(spec, found[spec.name]) for spec in SPECS.values() if spec.name in found]


def read_header(file: DatasetFile) -> list[str]:
    """Column names as written in the file (stripped of spaces and a byte-order mark)."""
    if file.is_csv:
        with file.path.open(newline="", encoding="utf-8-sig") as handle:
            header = next(csv.reader(handle), None)
        if header is None:
            raise ValidationFailed(f"{file.path}: empty file (no header line)")
        return [name.strip() for name in header]
    import pyarrow.parquet as pq

    return [str(name) for name in pq.ParquetFile(file.path).schema_arrow.names]


def iter_batches(
    file: DatasetFile, columns: list[str], batch_size: int
) -> Iterator[tuple[list[int], list[dict[str, Any]]]]:
    """Yields (line numbers, rows) with the format's columns only; '' and absent become None."""
    if file.is_csv:
        yield from _csv_batches(file.path, columns, batch_size)
    else:
        yield from _parquet_batches(file.path, columns, batch_size)


def _csv_batches(
    path: Path, columns: list[str], batch_size: int
) -> Iterator[tuple[list[int], list[dict[str, Any]]]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = [name.strip() for name in next(reader)]
        positions = [(name, header.index(name) if name in header else None) for name in columns]
        lines: list[int] = []
        rows: list[dict[str, Any]] = []
        line = reader.line_num + 1
        for record in reader:
            if not record or (len(record) == 1 and not record[0].strip()):
                line = reader.line_num + 1
                continue  # blank line
            row: dict[str, Any] = {
                name: (record[index] or None) if index is not None and index < len(record) else None
                for name, index in positions
            }
            if len(record) != len(header):
                row["__width__"] = (len(record), len(header))
            lines.append(line)
            rows.append(row)
            line = reader.line_num + 1
            if len(rows) >= batch_size:
                yield lines, rows
                lines, rows = [], []
        if rows:
            yield lines, rows


def _parquet_batches(
    path: Path, columns: list[str], batch_size: int
) -> Iterator[tuple[list[int], list[dict[str, Any]]]]:
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(path)
    present = [name for name in columns if name in parquet.schema_arrow.names]
    number = 1
    for batch in parquet.iter_batches(batch_size=batch_size, columns=present):
        rows = batch.to_pylist()
        for row in rows:
            for name in columns:
                value = row.get(name)
                row[name] = None if value == "" else value
        yield list(range(number, number + len(rows))), rows
        number += len(rows)


def content_hash(files: list[DatasetFile]) -> str:
    """SHA-256 over the files' names and bytes, in load order: the same folder, the same hash."""
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.path.name.encode())
        digest.update(b"\0")
        with file.path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    return f"sha256:{digest.hexdigest()}"

"""Validation of dataset rows: types and values (pydantic), then references and cross-row rules.

A row is checked in two steps. `check_types` validates a whole batch with pydantic-core and
returns the good rows and one `RowError` per bad cell. `References` then answers whether the
ids a row names exist, in this load (earlier files, or the same file for categories) or in the
graph, asking Neo4j only about ids it has not seen, in batches.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import neo4j
from pydantic import ValidationError

from graph.ingest.formats import RELATION_LABELS, FileSpec

#: Reference kinds and the node label/key they resolve to in the graph: the one allow-list.
REFERENCE_LABELS = RELATION_LABELS


@dataclass(frozen=True)
class RowError:
    """One reason a row was refused: where (file, line, column), what (value) and why."""

    file: str
    line: int
    column: str | None
    value: Any
    reason: str
    kind: str  # a short code for the summary counts, e.g. "greater_than", "unknown_product"

    def describe(self) -> str:
        where = f"{self.file}:{self.line}"
        if self.column:
            where += f" column {self.column}"
        shown = "" if self.value is None else f" (value {str(self.value)[:80]!r})"
        return f"{where}{shown}: {self.reason}"


def unknown_reference(file: str, line: int, column: str, kind: str, value: str) -> RowError:
    """The error of a row naming an id that exists neither in this load nor in the graph."""
    return RowError(
        file,
        line,
        column,
        value,
        f"unknown {kind} {value!r}: not in this load nor in the graph",
        f"unknown_{kind}",
    )


@dataclass
class ErrorCollector:
    """Keeps the first `keep` errors in full and counts every error by file, column and kind."""

    keep: int = 50
    first: list[RowError] = field(default_factory=list)
    counts: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    rows: Counter[str] = field(default_factory=Counter)  # bad rows per file

    def add(self, error: RowError) -> None:
        if len(self.first) < self.keep:
            self.first.append(error)
        self.counts[(error.file, error.column or "-", error.kind)] += 1

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def check_types(
    spec: FileSpec, file_label: str, lines: list[int], rows: list[dict[str, Any]]
) -> tuple[list[tuple[int, dict[str, Any]]], dict[int, list[RowError]]]:
    """Validates a batch; returns (line, clean row) pairs and the errors of each bad line."""
    errors: dict[int, list[RowError]] = {}
    for index, row in enumerate(rows):
        width = row.pop("__width__", None)
        if width is not None:
            errors.setdefault(lines[index], []).append(
                RowError(
                    file_label,
                    lines[index],
                    None,
                    None,
                    f"row has {width[0]} fields but the header has {width[1]}",
                    "wrong_field_count",
                )
            )
    candidates = [(line, row) for line, row in zip(lines, rows, strict=True) if line not in errors]
    try:
        clean = spec.adapter.validate_python([row for _, row in candidates])
        return [(line, row) for (line, _), row in zip(candidates, clean, strict=True)], errors
    except ValidationError as exc:
        bad_indexes: set[int] = set()
        for item in exc.errors(include_url=False):
            index = int(item["loc"][0])
            column = str(item["loc"][1]) if len(item["loc"]) > 1 else None
            line = candidates[index][0]
            bad_indexes.add(index)
            reason = item["msg"]
            kind = item["type"]
            if kind == "missing" or (item.get("input") is None and column in spec.required):
                reason, kind = "required value is missing", "missing"
            errors.setdefault(line, []).append(
                RowError(file_label, line, column, item.get("input"), reason, kind)
            )
    remaining = [pair for i, pair in enumerate(candidates) if i not in bad_indexes]
    clean = spec.adapter.validate_python([row for _, row in remaining])
    return [(line, row) for (line, _), row in zip(remaining, clean, strict=True)], errors


class References:
    """Ids known to exist: loaded in this run, or found in the graph (asked once per id)."""

    def __init__(self, driver: neo4j.Driver | None, database: str) -> None:
        self._driver = driver
        self._database = database
        self.loaded: dict[str, set[str]] = {kind: set() for kind in REFERENCE_LABELS}
        self._in_graph: dict[str, set[str]] = {kind: set() for kind in REFERENCE_LABELS}
        self._not_in_graph: dict[str, set[str]] = {kind: set() for kind in REFERENCE_LABELS}

    def add(self, kind: str, ids: Iterable[str]) -> None:
        self.loaded[kind].update(ids)

    def unknown(self, kind: str, ids: Iterable[str]) -> set[str]:
        """The ids among `ids` that exist neither in this load nor in the graph."""
        loaded, found, absent = self.loaded[kind], self._in_graph[kind], self._not_in_graph[kind]
        to_ask = {i for i in ids if i not in loaded and i not in found and i not in absent}
        if to_ask:
            present = self._ask_graph(kind, sorted(to_ask))
            found.update(present)
            absent.update(to_ask - present)
        return {i for i in ids if i not in loaded and i not in found}

    def _ask_graph(self, kind: str, ids: list[str]) -> set[str]:
        if self._driver is None:
            return set()
        label, key = REFERENCE_LABELS[kind]
        # Label and key come from the allow-list above; the ids travel as a parameter.
        query = f"UNWIND $ids AS id MATCH (n:{label} {{{key}: id}}) RETURN id"
        present: set[str] = set()
        for start in range(0, len(ids), 10_000):
            records = self._driver.execute_query(
                query,
                {"ids": ids[start : start + 10_000]},
                database_=self._database,
                routing_=neo4j.RoutingControl.READ,
            ).records
            present.update(record["id"] for record in records)
        return present

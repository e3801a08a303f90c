"""Cypher kept in `.cypher` files next to the code, loaded by name and cached."""

from __future__ import annotations

from functools import cache
from importlib import resources


@cache
def load_cypher(package: str, name: str) -> str:
    """Text of `<package>/<name>.cypher`, e.g. `load_cypher("graph", "schema")`."""
    return resources.files(package).joinpath(f"{name}.cypher").read_text(encoding="utf-8")


def split_statements(text: str) -> list[str]:
    """Statements of a file: `//` comment lines dropped, split on `;` at line end."""
    statements: list[str] = []
    current: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("//"):
            continue
        current.append(line)
        if stripped.endswith(";"):
            statements.append("\n".join(current).rstrip().rstrip(";"))
            current = []
    if current:
        statements.append("\n".join(current))
    return statements

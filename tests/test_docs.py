"""The README stays true: every setting is in its configuration table."""

from __future__ import annotations

import pytest

from graph.settings import AppSettings, Neo4jSettings
from tests.conftest import REPOSITORY

SETTINGS = [("KGREC_", AppSettings), ("NEO4J_", Neo4jSettings)]


@pytest.mark.parametrize(
    "variable",
    [f"{prefix}{name.upper()}" for prefix, cls in SETTINGS for name in cls.model_fields],
)
def test_every_setting_is_documented(variable: str) -> None:
    readme = (REPOSITORY / "README.md").read_text()
    assert f"| `{variable}` |" in readme, f"{variable} is missing from README's configuration table"

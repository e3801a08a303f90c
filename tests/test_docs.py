"""The README stays true: every setting is in its configuration table."""

from __future__ import annotations

import re

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


def test_every_metric_is_in_the_runbook() -> None:
    """docs/operations.md lists what /metrics exports (a new metric must be documented): the
    families of the app's registry, and the drift gauges computed at scrape time."""
    from api.metrics import Metrics

    runbook = (REPOSITORY / "docs" / "operations.md").read_text()
    families = list(Metrics().registry.collect())
    assert families
    names = {f"{f.name}_total" if f.type == "counter" else f.name for f in families}
    source = (REPOSITORY / "api" / "routes_monitoring.py").read_text()
    names |= set(re.findall(r'GaugeMetricFamily\(\s*"(kgrec_[a-z_]+)"', source))
    assert {"kgrec_drift_psi", "kgrec_drift_status"} <= names
    for name in sorted(names):
        assert f"`{name}`" in runbook, f"{name} is missing from docs/operations.md"

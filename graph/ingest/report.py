"""Ingest reports as JSON, for CI pipelines and audits."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from graph.ingest.service import IngestReport


def report_dict(report: IngestReport) -> dict[str, Any]:
    data = dataclasses.asdict(report)
    data["error_total"] = report.error_total
    data["rows_rejected"] = report.rows_rejected
    return data


def write_report(report: IngestReport, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report_dict(report), indent=2, default=str) + "\n")

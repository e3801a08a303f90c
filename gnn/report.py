"""The quality table: one row per model, the same columns in the CLI, the JSON file and the
benchmark's Markdown. A figure prints as `value [low, high]` (bootstrap 95% interval)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from gnn.evaluate import EvalResult

COLUMNS: list[tuple[str, str, str]] = [
    # (header, slice, metric)
    ("NDCG@10", "all", "ndcg@10"),
    ("Recall@10", "all", "recall@10"),
    ("HR@10", "all", "hit@10"),
    ("MRR@10", "all", "mrr@10"),
    ("NDCG@20", "all", "ndcg@20"),
    ("Recall@20", "all", "recall@20"),
    ("HR@20", "all", "hit@20"),
    ("MRR@20", "all", "mrr@20"),
    ("Coverage@10", "all", "coverage@10"),
    ("Novelty@10", "all", "novelty@10"),
    ("ILD@10", "all", "diversity@10"),
    ("Cold NDCG@10", "cold_customers", "ndcg@10"),
    ("Cold Recall@20", "cold_customers", "recall@20"),
    ("New-product NDCG@10", "new_products", "ndcg@10"),
    ("New-product Recall@20", "new_products", "recall@20"),
]


def cell(result: EvalResult, slice_name: str, metric: str, digits: int = 4) -> str:
    part = result.slices.get(slice_name)
    if part is None or metric not in part.metrics:
        return "n/a"
    value, low, high = part.metrics[metric]
    if math.isnan(low):
        return f"{value:.{digits}f}"
    return f"{value:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def table_rows(results: dict[str, EvalResult], seconds: dict[str, float]) -> list[list[str]]:
    rows = []
    for name, result in results.items():
        row = [name] + [cell(result, s, m) for _, s, m in COLUMNS]
        row.append(f"{seconds.get(name, 0.0):.1f}")
        rows.append(row)
    return rows


def headers() -> list[str]:
    return ["model"] + [h for h, _, _ in COLUMNS] + ["fit s"]


def ties_with_best(results: dict[str, EvalResult], metric: str = "ndcg@10") -> dict[str, str]:
    """Per model: 'best', 'tie' (its interval overlaps the best one's) or 'below'."""
    scored = {
        name: r.slices["all"].metrics[metric]
        for name, r in results.items()
        if metric in r.slices["all"].metrics
    }
    if not scored:
        return {}
    best = max(scored, key=lambda n: scored[n][0])
    low_best = scored[best][1]
    return {
        name: "best" if name == best else ("tie" if high >= low_best else "below")
        for name, (_, _, high) in scored.items()
    }


def markdown(results: dict[str, EvalResult], seconds: dict[str, float]) -> str:
    head = headers()
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(results, seconds)]
    return "\n".join(lines)


def write_json(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".partial")
    tmp.write_text(json.dumps(payload, indent=2))
    tmp.replace(path)

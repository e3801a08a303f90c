"""Benchmark: how kg-gnn's defaults were chosen, on the validation period of the synthetic shop.

Run (after `bench.recommend_quality --shop synthetic` has loaded the shop into its Neo4j):

  .venv/bin/python -m bench.kg_gnn_choices

Fits kg-gnn on the training period only (no refit) once per variant, from the old defaults to
the current ones one change at a time, plus the current ones without knowledge edges (the
ablation), and prints validation and test NDCG@10 overall, for cold-start customers and for
customers who bought a new product. Then, on the current model, sweeps `cold_length` (the
quantile of the bought products' vector lengths a never-bought product gets) and prints the
same figures for each: the trade-off between overall accuracy and new products. Choices are
made on validation; test is printed beside it, not used.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch

from bench.neo4j_startup import free_port
from gnn.evaluate import EvalResult
from gnn.models.embedding import KnowledgeGNN
from gnn.snapshot import export_snapshot
from gnn.train import Experiment, RunOptions, parse_params
from graph.driver import open_driver
from graph.local import LocalNeo4j
from graph.settings import Neo4jSettings

OLD = [
    "kg-gnn.normalize=true",
    "kg-gnn.temperature=0.2",
    "kg-gnn.id_dropout=0.3",
    "kg-gnn.cold_substitution=0.2",
]
VARIANTS: dict[str, tuple[list[str], int]] = {
    "old defaults (cosine, temperature 0.2, id dropout 0.3), 64 dimensions": (OLD, 64),
    "no id dropout": (
        [*OLD[:2], "kg-gnn.id_dropout=0.0", "kg-gnn.cold_substitution=0.1"],
        64,
    ),
    "and dot products, temperature 1": ([], 64),
    "and 128 dimensions (current defaults)": ([], 128),
    "current defaults without knowledge edges": (["kg-gnn.knowledge_edges=false"], 128),
}
COLD_LENGTHS = (0.5, 0.75, 0.9)


def figures(result: EvalResult) -> dict[str, float]:
    return {
        name: round(result.slices[name].value("ndcg@10"), 4)
        for name in ("all", "cold_customers", "new_products")
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--store",
        type=Path,
        default=Path(".kgrec/bench/recommend-synthetic-50000-10000/neo4j"),
        help="The Neo4j store bench.recommend_quality loaded the shop into.",
    )
    parser.add_argument("--output", type=Path, default=Path(".kgrec/bench/kg-gnn-choices.json"))
    args = parser.parse_args()
    if not args.store.exists():
        raise SystemExit(f"{args.store} not found: run bench.recommend_quality --shop synthetic")
    settings = Neo4jSettings(uri=f"bolt://127.0.0.1:{free_port()}", password="bench-password")
    local = LocalNeo4j(settings, args.store.resolve())
    local.start()
    try:
        with open_driver(settings) as driver:
            snapshot = export_snapshot(driver, database="neo4j")
    finally:
        local.stop()
    report: dict[str, Any] = {"variants": {}, "cold_length": {}}
    current: tuple[Experiment, KnowledgeGNN] | None = None
    for label, (params, dimensions) in VARIANTS.items():
        options = RunOptions(
            val_days=28,
            test_days=28,
            bootstrap_rounds=0,
            refit=False,
            dimensions=dimensions,
            params=parse_params(params, ["kg-gnn"]),
        )
        experiment = Experiment(snapshot, options)
        began = time.monotonic()
        run = experiment.run("kg-gnn")
        assert run.test is not None
        row = {
            "validation": figures(run.validation),
            "test": figures(run.test),
            "best_epoch": run.best_epoch,
            "seconds": round(time.monotonic() - began, 1),
        }
        report["variants"][label] = row
        print(f"{label}: {json.dumps(row)}", flush=True)
        if label.endswith("(current defaults)"):
            assert isinstance(run.model, KnowledgeGNN)
            current = (experiment, run.model)
    assert current is not None
    experiment, model = current
    assert experiment.test_evaluator is not None
    items = model._items
    assert items is not None
    for quantile in COLD_LENGTHS:
        model.params["cold_length"] = quantile
        with torch.no_grad():
            _, model._items = model.propagate(training=False)
        row = {
            "validation": figures(experiment.val_evaluator.evaluate(model, rounds=0)),
            "test": figures(experiment.test_evaluator.evaluate(model, rounds=0)),
        }
        report["cold_length"][str(quantile)] = row
        print(f"cold_length {quantile}: {json.dumps(row)}", flush=True)
    model._items = items
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()

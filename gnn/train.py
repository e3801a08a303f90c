"""Training and evaluation runs: export, temporal split, fit with early stopping, evaluate.

Protocol (the same for every model, in `kgrec train`, `kgrec evaluate` and the benchmarks):
1. Export the graph (`gnn.snapshot.export_snapshot`).
2. Split by time: the last `test_days` are the test period, the `val_days` before it the
   validation period, everything earlier is training.
3. Fit on the training view only, stopping early on validation NDCG@10.
4. With `refit`, fit a fresh model on training + validation for the number of epochs early
   stopping chose; that model is the one tested (and, in `kgrec train`, registered and served).
   Validation figures always come from step 3, so the gate compares like with like.
5. Evaluate on the test period (when there is one) with the evaluator of `gnn.evaluate`.
"""

from __future__ import annotations

import json
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import neo4j

from gnn.evaluate import EvalResult, Evaluator, content_unit_vectors
from gnn.models import MODELS, FitContext, Recommender
from gnn.snapshot import GraphSnapshot
from gnn.split import TemporalSplit, temporal_split, training_view
from graph.errors import KgrecError

EpochCallback = Callable[[str, int, int, float, float | None], None]


@dataclass
class RunOptions:
    val_days: int = 28
    test_days: int = 28
    seed: int = 0
    refit: bool = True
    patience: int = 3
    max_epochs: int | None = None
    dimensions: int = 128
    allow_repurchase: bool = False
    bootstrap_rounds: int = 1000
    validation_users: int | None = 10_000
    params: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class ModelRun:
    model: Recommender
    validation: EvalResult
    test: EvalResult | None
    fit_seconds: float
    refit_seconds: float
    best_epoch: int
    history: list[dict[str, float]]
    peak_rss_mib: float

    def metrics(self) -> dict[str, Any]:
        out: dict[str, Any] = {"validation": self.validation.to_json()}
        if self.test is not None:
            out["test"] = self.test.to_json()
        return out

    def training(self, split: TemporalSplit, options: RunOptions) -> dict[str, Any]:
        return {
            "split": split.describe(),
            "seed": options.seed,
            "refit": options.refit,
            "best_epoch": self.best_epoch,
            "fit_seconds": round(self.fit_seconds, 2),
            "refit_seconds": round(self.refit_seconds, 2),
            "peak_rss_mib": round(self.peak_rss_mib, 1),
            "history": self.history,
        }


def parse_params(values: list[str] | None, models: list[str]) -> dict[str, dict[str, Any]]:
    """`--param kg-gnn.layers=3` or `--param layers=3` (every chosen model that has it)."""
    out: dict[str, dict[str, Any]] = {}
    for raw in values or []:
        if "=" not in raw:
            raise KgrecError(f"--param {raw!r}: expected NAME=VALUE or MODEL.NAME=VALUE")
        key, text = raw.split("=", 1)
        target_models = models
        if "." in key:
            model, key = key.split(".", 1)
            target_models = [model]
        applied = False
        for model in target_models:
            defaults = MODELS[model].defaults if model in MODELS else {}
            if key in defaults:
                out.setdefault(model, {})[key] = _coerce(text, defaults[key], raw)
                applied = True
        if not applied:
            raise KgrecError(f"--param {raw!r}: no chosen model has a parameter {key!r}")
    return out


def _coerce(text: str, default: Any, raw: str) -> Any:
    try:
        if isinstance(default, bool):
            if text.lower() not in {"true", "false", "1", "0", "yes", "no"}:
                raise ValueError(text)
            return text.lower() in {"true", "1", "yes"}
        if isinstance(default, int):
            return int(text)
        if isinstance(default, float):
            return float(text)
        if isinstance(default, list):
            return json.loads(text)
    except (ValueError, json.JSONDecodeError) as exc:
        raise KgrecError(
            f"--param {raw!r}: {text!r} is not a valid {type(default).__name__}"
        ) from exc
    return text


def build_model(
    name: str,
    options: RunOptions,
    *,
    driver: neo4j.Driver | None = None,
    database: str | None = None,
) -> Recommender:
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose from {', '.join(MODELS)}")
    cls = MODELS[name]
    params = dict(options.params.get(name, {}))
    if "dim" in cls.defaults and "dim" not in params:
        params["dim"] = options.dimensions
    if getattr(cls, "needs_graph", False):
        if driver is None or database is None:
            raise ValueError(f"model {name!r} runs in Neo4j and needs a driver")
        return cls(driver=driver, database=database, **params)
    return cls(**params)


class Experiment:
    """One snapshot, one split, the evaluators; runs any model through the protocol."""

    def __init__(self, snapshot: GraphSnapshot, options: RunOptions) -> None:
        self.snapshot = snapshot
        self.options = options
        self.split = temporal_split(
            snapshot, val_days=options.val_days, test_days=options.test_days
        )
        vectors = content_unit_vectors(snapshot)
        self.val_evaluator = Evaluator(
            snapshot,
            start_ms=self.split.val_start_ms,
            end_ms=self.split.test_start_ms,
            period="validation",
            allow_repurchase=options.allow_repurchase,
            unit_vectors=vectors,
        )
        self.early_stop_evaluator = (
            self.val_evaluator.sample(options.validation_users, seed=options.seed)
            if options.validation_users
            else self.val_evaluator
        )
        self.test_evaluator = (
            Evaluator(
                snapshot,
                start_ms=self.split.test_start_ms,
                end_ms=self.split.end_ms,
                period="test",
                allow_repurchase=options.allow_repurchase,
                unit_vectors=vectors,
            )
            if options.test_days
            else None
        )

    def run(
        self,
        name: str,
        *,
        driver: neo4j.Driver | None = None,
        database: str | None = None,
        on_epoch: EpochCallback | None = None,
    ) -> ModelRun:
        options = self.options
        model = build_model(name, options, driver=driver, database=database)
        context = FitContext(
            seed=options.seed,
            validator=self.early_stop_evaluator.ndcg10,
            max_epochs=options.max_epochs,
            patience=options.patience,
            on_epoch=(lambda e, n, loss, val: on_epoch(name, e, n, loss, val))
            if on_epoch
            else None,
        )
        began = time.monotonic()
        model.fit(training_view(self.snapshot, self.split.val_start_ms), context)
        fit_seconds = time.monotonic() - began
        validation = self.val_evaluator.evaluate(
            model, rounds=options.bootstrap_rounds, seed=options.seed
        )
        refit_seconds = 0.0
        final = model
        if options.refit:
            began = time.monotonic()
            final = build_model(name, options, driver=driver, database=database)
            epochs = max(context.best_epoch, 1)
            refit_context = FitContext(
                seed=options.seed,
                max_epochs=epochs,
                on_epoch=(lambda e, n, loss, val: on_epoch(f"{name} refit", e, n, loss, val))
                if on_epoch
                else None,
            )
            final.fit(training_view(self.snapshot, self.split.test_start_ms), refit_context)
            refit_seconds = time.monotonic() - began
        test = (
            self.test_evaluator.evaluate(final, rounds=options.bootstrap_rounds, seed=options.seed)
            if self.test_evaluator is not None
            else None
        )
        return ModelRun(
            model=final,
            validation=validation,
            test=test,
            fit_seconds=fit_seconds,
            refit_seconds=refit_seconds,
            best_epoch=context.best_epoch,
            history=context.history,
            peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        )

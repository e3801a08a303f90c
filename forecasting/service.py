"""`kgrec forecast`: daily demand per product from the graph's orders, a model chosen per series
by rolling-origin backtest, inventory risk per stocked location, versioned `Forecast` nodes.

Series rule: a product's daily demand runs from its first order (or creation, if later orders
exist) to the last day with any order in the shop; days without orders are explicit zeros
(the shop was open, nobody bought). Orders carry no location, so demand is the product's, and
each location that stocks it is given an equal share for its risk.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import neo4j
import numpy as np

from forecasting.backtest import mase
from forecasting.models import ETS, ForecastModel, HistoricAverage, SeasonalNaive, WithFallback
from forecasting.risk import inventory_risk
from graph.cypher import load_cypher

LEVEL = 80
WEEK = 7


def candidates() -> list[ForecastModel]:
    """The models each series chooses from (each falls back when the series is too short)."""
    return [
        WithFallback(SeasonalNaive(WEEK), HistoricAverage()),
        WithFallback(ETS(season_length=WEEK), HistoricAverage()),
        HistoricAverage(),
    ]


@dataclass(frozen=True)
class SeriesForecast:
    product_id: str
    model: str
    mean: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    backtest_mae: float
    mase: float | None


def choose_and_forecast(
    args: tuple[str, np.ndarray, int, int],
) -> SeriesForecast:
    """Rolling-origin backtest over the last `folds` windows, then a forecast by the winner."""
    product_id, y, horizon, folds = args
    scores: dict[str, float] = {}
    models = candidates()
    for model in models:
        errors = []
        for fold in range(folds, 0, -1):
            cutoff = len(y) - fold * horizon
            if cutoff < 3:
                continue
            train, test = y[:cutoff], y[cutoff : cutoff + horizon]
            predicted = model.new().fit(train).predict(len(test))[model.alias]
            errors.append(float(np.mean(np.abs(predicted - test))))
        scores[model.alias] = float(np.mean(errors)) if errors else float("inf")
    best = min(models, key=lambda m: scores[m.alias])
    fitted = best.new().fit(y)
    forecast = fitted.predict(horizon, level=(LEVEL,))
    holdout = y[-horizon:] if len(y) > 2 * horizon else None
    scaled = None
    if holdout is not None:
        check = best.new().fit(y[:-horizon]).predict(horizon)[best.alias]
        value = mase(holdout, check, y[:-horizon], WEEK)
        scaled = None if np.isnan(value) else value
    return SeriesForecast(
        product_id,
        best.alias,
        forecast[best.alias],
        forecast[f"{best.alias}-lo-{LEVEL}"],
        forecast[f"{best.alias}-hi-{LEVEL}"],
        scores[best.alias],
        scaled,
    )


@dataclass
class ForecastRun:
    version: str
    series: int
    locations: int
    models: dict[str, int]
    median_mase: float | None
    at_risk: int


def load_daily_demand(driver: neo4j.Driver, database: str) -> tuple[date, dict[str, np.ndarray]]:
    """Daily units per product, as explicit-zero series ending on the shop's last order day."""
    records = driver.execute_query(
        load_cypher("forecasting", "daily_demand"),
        database_=database,
        routing_=neo4j.RoutingControl.READ,
    ).records
    if not records:
        return date.today(), {}
    days = [r["day"].to_native() for r in records]
    last = max(days)
    by_product: dict[str, dict[date, float]] = {}
    for record, day in zip(records, days, strict=True):
        by_product.setdefault(record["product_id"], {})[day] = float(record["units"])
    series = {}
    for product_id, sold in by_product.items():
        first = min(sold)
        length = (last - first).days + 1
        values = np.zeros(length)
        for day, units in sold.items():
            values[(day - first).days] = units
        series[product_id] = values
    return last, series


def run_forecast(
    driver: neo4j.Driver,
    *,
    database: str,
    horizon: int = 28,
    folds: int = 2,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> ForecastRun:
    """Forecasts every product with orders and writes a new current Forecast per location."""
    last_day, series = load_daily_demand(driver, database)
    stock = {
        (r["product_id"], r["location_id"]): (r["on_hand"], r["lead_time_days"])
        for r in driver.execute_query(
            load_cypher("forecasting", "stock"),
            database_=database,
            routing_=neo4j.RoutingControl.READ,
        ).records
    }
    version = f"forecast-{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    tasks = [(pid, y, horizon, folds) for pid, y in sorted(series.items())]
    results: list[SeriesForecast] = []
    with ProcessPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        for result in pool.map(choose_and_forecast, tasks, chunksize=16):
            results.append(result)
            if progress:
                progress(1)
    locations_of: dict[str, list[tuple[str, int | None, int | None]]] = {}
    for (pid, loc), (on_hand, lead) in stock.items():
        locations_of.setdefault(pid, []).append((loc, on_hand, lead))
    rows: list[dict[str, Any]] = []
    models: dict[str, int] = {}
    at_risk = 0
    created = datetime.now(UTC)
    for result in results:
        models[result.model] = models.get(result.model, 0) + 1
        places = locations_of.get(result.product_id) or [("ALL", None, None)]
        share = 1 / len(places)
        for location_id, on_hand, lead in places:
            mean, lower, upper = result.mean * share, result.lower * share, result.upper * share
            sd = np.maximum(upper - mean, 0) / 1.2816  # the 80% interval's half-width in sd
            row: dict[str, Any] = {
                "forecast_id": f"{version}|{result.product_id}|{location_id}",
                "product_id": result.product_id,
                "location_id": location_id,
                "model_version": version,
                "model": result.model,
                "created_at": created,
                "first_day": last_day + timedelta(days=1),
                "horizon_days": horizon,
                "mean": [round(float(v), 4) for v in mean],
                "lower": [round(float(v), 4) for v in lower],
                "upper": [round(float(v), 4) for v in upper],
                "level": LEVEL,
                "backtest_mae": result.backtest_mae,
                "mase": result.mase,
                "on_hand": on_hand,
                "lead_time_days": lead,
                "demand_over_lead_time": None,
                "days_of_cover": None,
                "stockout_probability": None,
                "overstock": None,
            }
            if on_hand is not None:
                risk = inventory_risk(int(on_hand), int(lead or 0), mean, sd)
                row |= {
                    "demand_over_lead_time": risk.demand_over_lead_time,
                    "days_of_cover": risk.days_of_cover,
                    "stockout_probability": risk.stockout_probability,
                    "overstock": risk.overstock,
                }
                at_risk += risk.stockout_probability >= 0.5
            rows.append(row)
    write_forecasts(driver, database, version, rows)
    scaled = [r.mase for r in results if r.mase is not None]
    return ForecastRun(
        version,
        len(results),
        len(rows),
        models,
        float(np.median(scaled)) if scaled else None,
        int(at_risk),
    )


def write_forecasts(
    driver: neo4j.Driver, database: str, version: str, rows: list[dict[str, Any]]
) -> None:
    """New forecasts become current and the ones they replace stop being current, in the same
    transaction per batch: there is never a moment with two current forecasts."""
    query = load_cypher("forecasting", "write_forecasts")
    for start in range(0, len(rows), 2_000):
        driver.execute_query(query, {"rows": rows[start : start + 2_000]}, database_=database)

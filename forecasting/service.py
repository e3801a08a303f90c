"""`kgrec forecast`: daily demand per product from the graph's orders, a model chosen per series
by rolling-origin backtest, inventory risk per stocked location, versioned `Forecast` nodes.

Series rule: a product's daily demand runs from its first order to the last day with any
order in the shop; days without orders are explicit zeros (the shop was open, nobody bought).
Orders carry no location, so demand is the product's, and each location that stocks it is
given an equal share for its risk.

Candidates per series: seasonal naive, historic average, and for series that are not
intermittent ETS and SARIMAX with the promotion discount and the day of the week as
regressors (forecasting/daily.py); beside them the pooled regression across every series,
fitted once per backtest cutoff. The lowest mean absolute error over the rolling-origin
windows wins.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import neo4j
import numpy as np
import pandas as pd

from forecasting.backtest import mase
from forecasting.daily import DailyPanel, PooledDailyRegression
from forecasting.models import (
    ETS,
    SARIMAX,
    ForecastModel,
    HistoricAverage,
    SeasonalNaive,
    WithFallback,
)
from forecasting.pooled import PooledLogRegression
from forecasting.risk import inventory_risk
from forecasting.series import sales_frame, with_lagged_level
from graph.cypher import load_cypher

LEVEL = 80
WEEK = 7


#: Share of zero days above which a series counts as intermittent.
INTERMITTENT = 0.5


def candidates(y: np.ndarray, regressors: bool = False) -> list[ForecastModel]:
    """The per-series models a series chooses from (each falls back when the series is too
    short); the pooled regression, fitted across series, competes beside them. Intermittent
    series (mostly zero days) skip ETS and SARIMAX: their smooth levels fit them badly and their
    fits are what makes forecasting slow (docs/benchmarks.md). SARIMAX(1,0,0) reads the
    regressors (promotion discount, day of week) when there are any."""
    models: list[ForecastModel] = [
        WithFallback(SeasonalNaive(WEEK), HistoricAverage()),
        HistoricAverage(),
    ]
    if np.mean(np.asarray(y) == 0) <= INTERMITTENT:
        models.insert(1, WithFallback(ETS(season_length=WEEK), HistoricAverage()))
        if regressors:
            models.insert(2, WithFallback(SARIMAX(order=(1, 0, 0)), HistoricAverage()))
    return models


@dataclass(frozen=True)
class SeriesTask:
    """One product's daily series and what its model choice needs. `exog` covers the series'
    days and `horizon` more; `pooled` holds the pooled regression's forecasts made at each
    backtest cutoff (key: the fold, counted back from the end) and at the end (key 0)."""

    product_id: str
    y: np.ndarray
    horizon: int
    folds: int = 2
    exog: np.ndarray | None = None
    pooled: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)


@dataclass(frozen=True)
class SeriesForecast:
    product_id: str
    model: str
    mean: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    backtest_mae: float
    mase: float | None


def choose_and_forecast(task: SeriesTask) -> SeriesForecast:
    """Rolling-origin backtest over the last `folds` windows, then a forecast by the winner.
    The holdout MASE is the winner's error on the last window (fold 1)."""
    y, horizon, x = task.y, task.horizon, task.exog
    windows = [
        (fold, len(y) - fold * horizon)
        for fold in range(task.folds, 0, -1)
        if len(y) - fold * horizon >= 3
    ]
    # Each candidate's forecast of each backtest window: per-series models fitted here, the
    # pooled regression's made across series beforehand (it competes once it has a forecast
    # of the future too).
    models = candidates(y, regressors=x is not None)
    backtests: dict[str, dict[int, np.ndarray]] = {}
    for model in models:
        backtests[model.alias] = {
            fold: model.new()
            .fit(y[:cutoff], None if x is None else x[:cutoff])
            .predict(horizon, None if x is None else x[cutoff : cutoff + horizon])[model.alias]
            for fold, cutoff in windows
        }
    pooled_alias = PooledDailyRegression.alias
    if 0 in task.pooled:
        backtests[pooled_alias] = {
            fold: task.pooled[fold][pooled_alias] for fold, _ in windows if fold in task.pooled
        }
    scores: dict[str, float] = {}
    for name, predicted in backtests.items():
        errors = [
            float(np.mean(np.abs(predicted[fold] - y[cutoff : cutoff + horizon])))
            for fold, cutoff in windows
            if fold in predicted
        ]
        scores[name] = float(np.mean(errors)) if errors else float("inf")
    alias = min(scores, key=lambda a: scores[a])
    if alias == pooled_alias:
        forecast = task.pooled[0]
    else:
        best = next(m for m in models if m.alias == alias)
        fitted = best.new().fit(y, None if x is None else x[: len(y)])
        forecast = fitted.predict(horizon, None if x is None else x[len(y) :], level=(LEVEL,))
    scaled = None
    if len(y) > 2 * horizon and 1 in backtests[alias]:
        value = mase(y[-horizon:], backtests[alias][1], y[:-horizon], WEEK)
        scaled = None if np.isnan(value) else value
    return SeriesForecast(
        task.product_id,
        alias,
        forecast[alias],
        forecast[f"{alias}-lo-{LEVEL}"],
        forecast[f"{alias}-hi-{LEVEL}"],
        scores[alias],
        scaled,
    )


def series_tasks(panel: DailyPanel, horizon: int, folds: int = 2) -> list[SeriesTask]:
    """One task per series of `panel`, with its regressors and the pooled regression's
    forecasts at every backtest cutoff (one fit across all series per cutoff)."""
    pooled: dict[int, dict[str, dict[str, np.ndarray]]] = {}
    model = PooledDailyRegression()
    for fold in range(folds, -1, -1):
        pooled[fold] = model.forecast(
            panel, panel.end - fold * horizon, horizon, level=(LEVEL,) if fold == 0 else ()
        )
    return [
        SeriesTask(
            product_id,
            y,
            horizon,
            folds,
            panel.exog(product_id, horizon),
            {fold: found[product_id] for fold, found in pooled.items() if product_id in found},
        )
        for product_id, y in sorted(panel.series.items())
    ]


@dataclass
class ForecastRun:
    version: str
    series: int
    locations: int
    models: dict[str, int]
    median_mase: float | None
    at_risk: int


def load_daily_demand(driver: neo4j.Driver, database: str, horizon: int = 0) -> DailyPanel:
    """Daily units per product, as explicit-zero series ending on the shop's last order day,
    with the regressors: promotions (those scheduled in the next `horizon` days too) and each
    product's top-level category."""
    records = driver.execute_query(
        load_cypher("forecasting", "daily_demand"),
        database_=database,
        routing_=neo4j.RoutingControl.READ,
    ).records
    if not records:
        return DailyPanel(date.today(), {}, {})
    days = [r["day"].to_native() for r in records]
    by_product: dict[str, dict[date, float]] = {}
    for record, day in zip(records, days, strict=True):
        by_product.setdefault(record["product_id"], {})[day] = float(record["units"])
    promotions = [
        (
            r["product_id"],
            r["starts_at"].to_native().date(),
            r["ends_at"].to_native().date(),  # its last day (promotions end at 23:59:59)
            r["discount_pct"],
        )
        for r in driver.execute_query(
            load_cypher("graph", "promotion_products"),
            {"since": min(days).isoformat(), "until": None},
            database_=database,
            routing_=neo4j.RoutingControl.READ,
        ).records
    ]
    groups = {
        r["product_id"]: r["group_id"]
        for r in driver.execute_query(
            load_cypher("forecasting", "product_groups"),
            database_=database,
            routing_=neo4j.RoutingControl.READ,
        ).records
    }
    return DailyPanel.from_days(by_product, max(days), promotions, groups, horizon)


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
    panel = load_daily_demand(driver, database, horizon)
    last_day = panel.origin + timedelta(days=panel.end - 1)
    stock = {
        (r["product_id"], r["location_id"]): (r["on_hand"], r["lead_time_days"])
        for r in driver.execute_query(
            load_cypher("forecasting", "stock"),
            database_=database,
            routing_=neo4j.RoutingControl.READ,
        ).records
    }
    version = f"forecast-{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    tasks = series_tasks(panel, horizon, folds)
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
    created = datetime.now(UTC)
    for result in results:
        models[result.model] = models.get(result.model, 0) + 1
        places = locations_of.get(result.product_id) or [("ALL", None, None)]
        share = 1 / len(places)
        for location_id, on_hand, lead in places:
            row = forecast_row(
                version=version,
                created=created,
                product_id=result.product_id,
                location_id=location_id,
                model=result.model,
                first_day=last_day + timedelta(days=1),
                mean=result.mean * share,
                lower=result.lower * share,
                upper=result.upper * share,
                days_per_step=1,
                stock=(on_hand, lead),
            )
            row |= {"backtest_mae": result.backtest_mae, "mase": result.mase}
            rows.append(row)
    # A product and location already forecast from orders keeps that forecast.
    taken = {row["forecast_id"] for row in rows}
    rows += [
        row
        for row in _weekly_sales_rows(driver, database, version, created, stock, horizon)
        if row["forecast_id"] not in taken
    ]
    write_forecasts(driver, database, version, rows)
    scaled = [r.mase for r in results if r.mase is not None]
    models["PooledRegression"] = sum(1 for r in rows if r["model"] == "PooledRegression")
    at_risk = sum(1 for r in rows if (r["stockout_probability"] or 0) >= 0.5)
    return ForecastRun(
        version,
        len(results),
        len(rows),
        models,
        float(np.median(scaled)) if scaled else None,
        int(at_risk),
    )


def forecast_row(
    *,
    version: str,
    created: datetime,
    product_id: str,
    location_id: str,
    model: str,
    first_day: date,
    mean: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    days_per_step: int,
    stock: tuple[int | None, int | None],
) -> dict[str, Any]:
    """The properties of one Forecast node, with the stock risk when the location has stock.
    `days_per_step` is 1 for daily and 7 for weekly forecasts; risk is computed per day."""
    on_hand, lead = stock
    row: dict[str, Any] = {
        "forecast_id": f"{version}|{product_id}|{location_id}",
        "product_id": product_id,
        "location_id": location_id,
        "model_version": version,
        "model": model,
        "granularity": "day" if days_per_step == 1 else "week",
        "created_at": created,
        "first_day": first_day,
        "horizon_days": len(mean) * days_per_step,
        "mean": [round(float(v), 4) for v in mean],
        "lower": [round(float(v), 4) for v in lower],
        "upper": [round(float(v), 4) for v in upper],
        "level": LEVEL,
        "on_hand": on_hand,
        "lead_time_days": lead,
        "demand_over_lead_time": None,
        "days_of_cover": None,
        "stockout_probability": None,
        "overstock": None,
    }
    if on_hand is not None:
        # The 80% interval's upper half-width is 1.2816 standard deviations.
        sd = np.maximum(np.asarray(upper) - np.asarray(mean), 0) / 1.2816
        daily_mean = np.repeat(np.asarray(mean) / days_per_step, days_per_step)
        daily_sd = np.repeat(sd / days_per_step, days_per_step)
        risk = inventory_risk(int(on_hand), int(lead or 0), daily_mean, daily_sd)
        row |= {
            "demand_over_lead_time": risk.demand_over_lead_time,
            "days_of_cover": risk.days_of_cover,
            "stockout_probability": risk.stockout_probability,
            "overstock": risk.overstock,
        }
    return row


def _weekly_sales_rows(
    driver: neo4j.Driver,
    database: str,
    version: str,
    created: datetime,
    stock: dict[tuple[str, str], tuple[int, int]],
    horizon_days: int,
) -> list[dict[str, Any]]:
    """Forecast rows for series from the `sales` file (weekly, per product and location)."""
    records = driver.execute_query(
        load_cypher("forecasting", "weekly_sales"),
        database_=database,
        routing_=neo4j.RoutingControl.READ,
    ).records
    frame = sales_frame([r.data() for r in records])
    if frame.empty or frame["series_id"].nunique() < 2:
        return []
    weeks = max(1, -(-horizon_days // WEEK))
    _, ahead, predicted = forecast_weekly_sales(frame, weeks)
    ahead = ahead.assign(
        mean=predicted["PooledRegression"],
        lower=predicted[f"PooledRegression-lo-{LEVEL}"],
        upper=predicted[f"PooledRegression-hi-{LEVEL}"],
    )
    first_week = pd.to_datetime(frame["period_start"]).max() + pd.Timedelta(days=7)
    rows = []
    for _, group in ahead.sort_values("period").groupby("series_id"):
        product_id, location_id = group["product_id"].iloc[0], group["location_id"].iloc[0]
        row = forecast_row(
            version=version,
            created=created,
            product_id=product_id,
            location_id=location_id,
            model="PooledRegression",
            first_day=first_week.date(),
            mean=group["mean"].to_numpy(),
            lower=group["lower"].to_numpy(),
            upper=group["upper"].to_numpy(),
            days_per_step=WEEK,
            stock=stock.get((product_id, location_id), (None, None)),
        )
        rows.append(row)
    return rows


def forecast_weekly_sales(
    frame: pd.DataFrame, weeks: int
) -> tuple[PooledLogRegression, pd.DataFrame, dict[str, np.ndarray]]:
    """Fits the pooled regression on every week and forecasts `weeks` more per series, with
    each series' last price, the competitors' last prices and no promotion or feature."""
    model = PooledLogRegression().fit(frame)
    last = frame.sort_values("period").groupby("series_id").tail(1)
    future = []
    for step in range(1, weeks + 1):
        rows = last.copy()
        rows["period"] = rows["period"] + step
        rows["on_promotion"] = False
        rows["featured"] = False
        future.append(rows)
    ahead = with_lagged_level(pd.concat(future, ignore_index=True).drop(columns=["y_lag"]), frame)
    return model, ahead, model.predict(ahead, level=(LEVEL,))


def write_forecasts(
    driver: neo4j.Driver, database: str, version: str, rows: list[dict[str, Any]]
) -> None:
    """New forecasts become current and the ones they replace stop being current, in the same
    transaction per batch: there is never a moment with two current forecasts."""
    query = load_cypher("forecasting", "write_forecasts")
    for start in range(0, len(rows), 2_000):
        driver.execute_query(query, {"rows": rows[start : start + 2_000]}, database_=database)

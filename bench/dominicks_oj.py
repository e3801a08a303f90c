"""Benchmark: Dominick's orange juice, the published 12-round protocol (DATASETS.md).

Run: .venv/bin/python -m bench.dominicks_oj [--workers 2] [--sarimax-sample 60]

Round r trains on weeks 40..T (T = 135, 137, ..., 157) and forecasts weeks T+2 and T+3 (a one
week gap); the error is MAPE on units (exp(logmove)) over every series (store x brand) and
round. Regressors of the forecast weeks (prices, deal, feature) are known in advance, as in
the published benchmark. Per-series models see each series' weeks in order, with missing
weeks filled by linear interpolation; the pooled regression uses observed weeks only.

Needs the converted data set: `kgrec datasets fetch dominicks-oj`.
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from forecasting.backtest import mape, rolling_origin
from forecasting.models import (
    ETS,
    SARIMAX,
    HistoricAverage,
    LogUnits,
    ModelFitError,
    Naive,
    SeasonalNaive,
    WithFallback,
)
from forecasting.pooled import PooledLogRegression
from forecasting.series import sales_frame

WEEK_ONE = pd.Timestamp("1989-09-14")
CUTOFFS = range(135, 158, 2)
HORIZONS = (2, 3)
PUBLISHED = {
    "Naive": 109.67,
    "SeasonalNaive": 165.06,
    "HistoricAverage": 70.74,
    "ETS": 70.99,
    "SARIMAX": 70.80,
    "LightGBM": 36.28,
}


def load(folder: Path) -> pd.DataFrame:
    """The long table of `kgrec forecast`, with Dominick's week numbers as periods."""
    if not (folder / "sales.csv").exists():
        raise SystemExit(f"{folder / 'sales.csv'} not found: run `make datasets` first")
    return sales_frame(pd.read_csv(folder / "sales.csv"), origin=WEEK_ONE - pd.Timedelta(days=7))


def series_forecasts(
    args: tuple[str, np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None],
) -> list[tuple[str, int, str, float]]:
    """Every per-series model's forecasts of one series, for every round."""
    series_id, periods, units, exog, with_sarimax = args
    full = np.arange(periods.min(), periods.max() + 1)
    filled = np.interp(full, periods, units)
    rows = []
    models = [
        Naive(),
        WithFallback(SeasonalNaive(52), Naive()),
        # As the published benchmark, on log units (logmove), back-transformed.
        LogUnits(HistoricAverage()),
        WithFallback(LogUnits(ETS(season_length=None)), LogUnits(HistoricAverage())),
    ]
    for split in rolling_origin(CUTOFFS, HORIZONS):
        history = filled[full <= split.cutoff]
        split.check(full[full <= split.cutoff], np.array(split.test_periods))
        wanted = [p for p in split.test_periods if p in set(periods)]
        if not wanted or len(history) < 2:
            continue
        for model in models:
            forecast = model.new().fit(history).predict(max(HORIZONS))[model.alias]
            for p in wanted:
                rows.append((series_id, p, model.alias, float(forecast[p - split.cutoff - 1])))
        if with_sarimax is not None and exog is not None:
            x_full = np.column_stack([np.interp(full, periods, col) for col in exog.T])
            train_x = x_full[full <= split.cutoff]
            future = np.arange(split.cutoff + 1, split.cutoff + max(HORIZONS) + 1)
            future_x = np.column_stack([np.interp(future, periods, col) for col in exog.T])
            try:
                model = SARIMAX(order=(1, 0, 0), log=True)
                forecast = model.fit(history, train_x).predict(max(HORIZONS), future_x)["SARIMAX"]
            except ModelFitError:
                continue
            for p in wanted:
                rows.append((series_id, p, "SARIMAX", float(forecast[p - split.cutoff - 1])))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(".kgrec/datasets/dominicks-oj/input"))
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--sarimax-sample", type=int, default=60)
    args = parser.parse_args()
    began = time.monotonic()
    sales = load(args.data)
    actual = sales.set_index(["series_id", "period"])["units"]
    series = sorted(sales["series_id"].unique())
    rng = np.random.default_rng(0)
    sample = set(rng.choice(series, size=min(args.sarimax_sample, len(series)), replace=False))

    # Pooled regression: one fit per round over all series.
    pooled_rows = []
    pooled_began = time.monotonic()
    for split in rolling_origin(CUTOFFS, HORIZONS):
        train = sales[split.train_mask(sales["period"].to_numpy())]
        test = sales[split.test_mask(sales["period"].to_numpy())]
        split.check(train["period"].to_numpy(), test["period"].to_numpy())
        model = PooledLogRegression().fit(train)
        predicted = model.predict(test)
        for key in ("PooledRegression", "PooledRegression-mape-optimal"):
            pooled_rows += [
                (s, p, key, v)
                for s, p, v in zip(test["series_id"], test["period"], predicted[key], strict=True)
            ]
    pooled_seconds = time.monotonic() - pooled_began

    # Per-series models, series spread over processes.
    tasks = []
    for series_id, group in sales.groupby("series_id"):
        group = group.sort_values("period")
        exog = np.column_stack(
            [
                np.log(group["price"]),
                group["on_promotion"].astype(float),
                group["featured"].astype(float),
            ]
        )
        tasks.append(
            (
                series_id,
                group["period"].to_numpy(),
                group["units"].to_numpy(float),
                exog,
                True if series_id in sample else None,
            )
        )
    per_series_began = time.monotonic()
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        rows = [row for result in pool.map(series_forecasts, tasks, chunksize=8) for row in result]
    per_series_seconds = time.monotonic() - per_series_began

    frame = pd.DataFrame(rows + pooled_rows, columns=["series_id", "period", "model", "forecast"])
    frame["actual"] = actual.reindex(
        pd.MultiIndex.from_frame(frame[["series_id", "period"]])
    ).to_numpy()
    total = time.monotonic() - began
    print(f"Dominick's OJ: {len(series)} series x {len(CUTOFFS)} rounds, weeks T+2 and T+3")
    print(f"{'model':<34}{'MAPE %':>8}{'published %':>13}{'forecasts':>11}")
    order = [
        "Naive",
        "SeasonalNaive",
        "HistoricAverage",
        "ETS",
        "SARIMAX",
        "PooledRegression",
        "PooledRegression-mape-optimal",
    ]
    for name in order:
        part = frame[frame["model"] == name]
        if part.empty:
            continue
        label = name + (f" ({len(sample)} series)" if name == "SARIMAX" else "")
        published = PUBLISHED.get(name)
        shown = f"{published:.2f}" if published else "-"
        print(
            f"{label:<34}{mape(part['actual'], part['forecast']):>8.2f}{shown:>13}{len(part):>11,}"
        )
    print(f"published LightGBM: {PUBLISHED['LightGBM']:.2f}")
    print(
        f"time: total {total:.1f} s; pooled regression {pooled_seconds:.1f} s "
        f"({len(series) * len(CUTOFFS) / pooled_seconds:,.0f} series-rounds/s); per-series models "
        f"{per_series_seconds:.1f} s ({len(series) * len(CUTOFFS) / per_series_seconds:,.0f} "
        f"series-rounds/s, {args.workers} processes)"
    )


if __name__ == "__main__":
    main()

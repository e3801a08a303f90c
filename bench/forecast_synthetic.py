"""Benchmark: demand forecasts and stockout predictions on a synthetic shop's holdout.

Run: .venv/bin/python -m bench.forecast_synthetic [--customers 5000 --products 500 --days 365]

The last `--holdout` days are hidden. Each product's daily series (explicit zeros) before them
goes through the same model choice as `kgrec forecast` (forecasting/service.py), then:
- MASE of that forecast over the holdout, scaled by the in-sample seasonal naive (7 days)
  error, beside the MASE of the seasonal naive forecast itself;
- stockouts: each stock record of the shop (on hand, lead time), taken as the stock at the
  cutoff, with an equal share of the product's demand, is a question "will demand over the
  lead time after the cutoff exceed what is on hand?". The forecast's probability is scored
  against what the holdout's actual orders did: the Brier score (beside the Brier score of
  always answering the base rate), and the recall of the stockouts that happened at a 0.5
  threshold, with precision beside it.
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from forecasting.backtest import mase
from forecasting.daily import DailyPanel, PooledDailyRegression, promotion_discounts
from forecasting.models import SeasonalNaive
from forecasting.risk import inventory_risk
from forecasting.service import WEEK, SeriesTask, choose_and_forecast, series_tasks
from graph.synthetic import ShopSpec, generate_shop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=5_000)
    parser.add_argument("--products", type=int, default=500)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--holdout", type=int, default=28)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--cache", type=Path, default=Path(".kgrec/bench"))
    parser.add_argument(
        "--no-regressors",
        action="store_true",
        help="Leave out SARIMAX and the pooled regression (the candidates before they came).",
    )
    args = parser.parse_args()
    spec = ShopSpec(args.customers, args.products, args.days, args.seed)
    folder = args.cache / f"shop-{spec.customers}-{spec.products}-{spec.days}-{spec.seed}"
    if not (folder / "stock.csv").exists():
        generate_shop(spec, folder)
    orders = pd.read_csv(folder / "orders.csv", usecols=["product_id", "ts", "quantity"])
    orders["day"] = pd.to_datetime(orders["ts"]).dt.normalize()
    daily = orders.groupby(["product_id", "day"])["quantity"].sum()
    last = daily.index.get_level_values("day").max()
    cutoff = last - pd.Timedelta(days=args.holdout)
    series: dict[str, np.ndarray] = {}
    holdouts: dict[str, np.ndarray] = {}
    first_days: dict[str, pd.Timestamp] = {}
    for product_id, group in daily.groupby(level="product_id"):
        days = group.index.get_level_values("day")
        index = pd.date_range(days.min(), last, freq="D")
        values = group.droplevel("product_id").reindex(index, fill_value=0).to_numpy(float)
        train_len = int((cutoff - days.min()).days) + 1
        if train_len < 2 * WEEK:
            continue
        series[str(product_id)] = values[:train_len]
        first_days[str(product_id)] = days.min()
        holdouts[str(product_id)] = values[train_len : train_len + args.holdout]

    origin = min(first_days.values()).date()
    panel = DailyPanel(
        origin,
        series,
        {pid: (first_days[pid].date() - origin).days for pid in series},
        shop_promotions(folder, origin, (last.date() - origin).days + 1),
        shop_groups(folder),
    )
    began = time.monotonic()
    if args.no_regressors:
        tasks = [SeriesTask(pid, y, args.holdout) for pid, y in sorted(series.items())]
    else:
        tasks = series_tasks(panel, args.holdout)
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        results = {r.product_id: r for r in pool.map(choose_and_forecast, tasks, chunksize=16)}
    seconds = time.monotonic() - began

    chosen, naive = [], []
    for pid, result in results.items():
        history, actual = series[pid], holdouts[pid]
        chosen.append(mase(actual, result.mean, history, WEEK))
        sn = SeasonalNaive(WEEK).fit(history).predict(len(actual))["SeasonalNaive"]
        naive.append(mase(actual, sn, history, WEEK))
    chosen_a, naive_a = np.array(chosen), np.array(naive)
    keep = np.isfinite(chosen_a) & np.isfinite(naive_a)

    stock = pd.read_csv(folder / "stock.csv")
    places = stock.groupby("product_id")["location_id"].transform("count")
    probabilities, outcomes = [], []
    for row, count in zip(stock.itertuples(), places, strict=True):
        found = results.get(row.product_id)
        if found is None:
            continue
        share = 1 / count
        mean = found.mean * share
        sd = np.maximum(found.upper - found.mean, 0) * share / 1.2816
        lead = int(row.lead_time_days)
        risk = inventory_risk(int(row.on_hand), lead, mean, sd)
        demand = holdouts[row.product_id][:lead].sum() * share
        probabilities.append(risk.stockout_probability)
        outcomes.append(float(demand > row.on_hand))
    p, o = np.array(probabilities), np.array(outcomes)
    brier = float(np.mean((p - o) ** 2))
    base = float(np.mean((o.mean() - o) ** 2))
    predicted = p >= 0.5
    recall = float((predicted & (o == 1)).sum() / max((o == 1).sum(), 1))
    precision = float((predicted & (o == 1)).sum() / max(predicted.sum(), 1))

    models = pd.Series([r.model for r in results.values()]).value_counts().to_dict()
    print(f"shop {folder}: {len(results)} product series, holdout {args.holdout} days")
    print(
        f"models chosen: {models}; {len(results) / seconds:.1f} series/s ({args.workers} processes)"
    )
    pooled = PooledDailyRegression()
    pooled.forecast(panel, panel.end, args.holdout)
    days = ("Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
    weekdays = ", ".join(
        f"{day} {c:+.3f}" for day, c in zip(days, pooled.coefficients[1:7], strict=True)
    )
    print(
        f"pooled daily regression at the cutoff, log(1 + units): discount "
        f"{pooled.coefficients[0]:+.3f}"
        f" per unit; weekdays against Monday: {weekdays}"
    )
    print(
        f"MASE over the holdout (vs in-sample seasonal naive): chosen model median "
        f"{np.median(chosen_a[keep]):.3f}, mean {np.mean(chosen_a[keep]):.3f}; seasonal naive "
        f"median {np.median(naive_a[keep]):.3f}, mean {np.mean(naive_a[keep]):.3f}"
    )
    print(
        f"stockouts: {len(o)} stock records, {int(o.sum())} ran out within their lead time "
        f"(base rate {o.mean():.3f}); Brier {brier:.3f} (base-rate Brier {base:.3f}); "
        f"recall {recall:.3f}, precision {precision:.3f} at p >= 0.5"
    )


def shop_promotions(folder: Path, origin: date, days: int) -> dict[str, np.ndarray]:
    """Each product's daily promotion discount, from the shop's promotions, products and
    categories files (targets resolved as `kgrec forecast` resolves them in the graph)."""
    products = pd.read_csv(folder / "products.csv", usecols=["product_id", "category_ids", "brand"])
    parents = _parents(folder)
    members: dict[tuple[str, str], list[str]] = {}
    for row in products.itertuples():
        members.setdefault(("product", row.product_id), []).append(row.product_id)
        members.setdefault(("brand", str(row.brand)), []).append(row.product_id)
        for category in str(row.category_ids).split("|"):
            for ancestor in _ancestors(category, parents):
                members.setdefault(("category", ancestor), []).append(row.product_id)
    promotions = pd.read_csv(folder / "promotions.csv")
    rows = []
    for promo in promotions.itertuples():
        first = pd.Timestamp(promo.starts_at).date()
        last = pd.Timestamp(promo.ends_at).date()
        for product_id in members.get((promo.target_type, str(promo.target_id)), []):
            rows.append((product_id, first, last, float(promo.discount_pct)))
    return promotion_discounts(rows, origin, days)


def shop_groups(folder: Path) -> dict[str, str]:
    """Each product's top-level category (the first by id)."""
    products = pd.read_csv(folder / "products.csv", usecols=["product_id", "category_ids"])
    parents = _parents(folder)
    return {
        row.product_id: min(_ancestors(c, parents)[-1] for c in str(row.category_ids).split("|"))
        for row in products.itertuples()
    }


def _parents(folder: Path) -> dict[str, str]:
    categories = pd.read_csv(folder / "categories.csv", dtype=str)
    return {
        c: p
        for c, p in zip(categories["category_id"], categories["parent_id"], strict=True)
        if isinstance(p, str)
    }


def _ancestors(category: str, parents: dict[str, str]) -> list[str]:
    """The category, its parent, ..., up to its top-level category (last)."""
    chain = [category]
    while chain[-1] in parents and len(chain) < 10:
        chain.append(parents[chain[-1]])
    return chain


if __name__ == "__main__":
    main()

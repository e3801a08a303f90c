"""The long table of weekly sales that the pooled regression reads (from the `sales` file)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

#: Periods between the lagged level and the period it helps forecast (known for horizons <= 3).
LAG = 3


def sales_frame(
    records: pd.DataFrame | Sequence[dict[str, Any]], origin: pd.Timestamp | None = None
) -> pd.DataFrame:
    """One row per product, location and week: units, the regressors (own price, promotion,
    feature), every product's price in the same location and week (`price:<product>`; its mean
    price there when it has no row that week), and the log units `LAG` weeks earlier (`y_lag`).
    Weeks without a row stay missing, never zero: a store's sales file may skip weeks for
    reasons other than no demand. `period` counts weeks from `origin` (default: the first
    week in the data)."""
    frame = pd.DataFrame(records)
    frame = frame[(frame["units"] > 0) & frame["price"].notna() & (frame["price"] > 0)].copy()
    if frame.empty:
        return frame
    start = pd.to_datetime(frame["period_start"])
    frame["period"] = ((start - (start.min() if origin is None else origin)).dt.days // 7).astype(
        int
    )
    frame["series_id"] = frame["location_id"] + "/" + frame["product_id"]
    wide = frame.pivot_table(index=["location_id", "period"], columns="product_id", values="price")
    wide = wide.fillna(wide.groupby(level=0).transform("mean")).fillna(wide.mean())
    wide.columns = [f"price:{c}" for c in wide.columns]
    with warnings.catch_warnings():
        # Hundreds of price columns: pandas warns about a "fragmented" frame; harmless here.
        warnings.simplefilter("ignore", pd.errors.PerformanceWarning)
        frame = frame.merge(wide.reset_index(), on=["location_id", "period"], how="left").copy()
    return with_lagged_level(frame, frame)


def with_lagged_level(rows: pd.DataFrame, history: pd.DataFrame) -> pd.DataFrame:
    """`rows` with `y_lag`: the series' log units `LAG` periods earlier, from `history`."""
    lag = history[["series_id", "period", "units"]].copy()
    lag["period"] += LAG
    lag["y_lag"] = np.log(lag.pop("units"))
    return rows.merge(lag, on=["series_id", "period"], how="left")

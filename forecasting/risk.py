"""Inventory risk from a demand forecast and current stock.

Daily demand forecasts (mean and standard deviation per day) over the replenishment lead time
add up to the demand before a restock can arrive; with independent days, means and variances
add. That total is taken as normal (truncated at zero, which only matters when the mean is
near zero), so the probability of a stockout before restock is P(demand > on hand).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class InventoryRisk:
    on_hand: int
    lead_time_days: int
    demand_over_lead_time: float  # mean units expected before a restock arrives
    demand_over_lead_time_sd: float
    days_of_cover: float | None  # on hand / mean daily demand; None when no demand is expected
    stockout_probability: float  # P(demand over the lead time > on hand)
    overstock: bool


def inventory_risk(
    on_hand: int,
    lead_time_days: int,
    daily_mean: np.ndarray,
    daily_sd: np.ndarray,
    overstock_days: float = 90.0,
) -> InventoryRisk:
    """Risk for one product at one location.

    Args:
        on_hand: units in stock now.
        lead_time_days: days from ordering to restock.
        daily_mean, daily_sd: the demand forecast per day from today; at least
            `lead_time_days` long (the last day is repeated if shorter).
        overstock_days: days of cover above which stock is flagged as overstock.
    """
    if on_hand < 0 or lead_time_days < 0:
        raise ValueError("on_hand and lead_time_days must not be negative")
    mean = np.maximum(np.asarray(daily_mean, float), 0.0)
    sd = np.maximum(np.asarray(daily_sd, float), 0.0)
    if len(mean) == 0:
        raise ValueError("the forecast holds no day")
    days = max(lead_time_days, 1)
    mean_l = np.resize(mean, days) if len(mean) < days else mean[:days]
    sd_l = np.resize(sd, days) if len(sd) < days else sd[:days]
    total = float(mean_l.sum()) if lead_time_days else 0.0
    total_sd = float(math.sqrt(float((sd_l**2).sum()))) if lead_time_days else 0.0
    if total_sd > 0:
        probability = float(stats.norm.sf(on_hand, loc=total, scale=total_sd))
    else:
        probability = 1.0 if total > on_hand else 0.0
    daily = float(mean.mean())
    cover = on_hand / daily if daily > 0 else None
    overstock = (cover is None and on_hand > 0) or (cover is not None and cover > overstock_days)
    return InventoryRisk(
        on_hand=on_hand,
        lead_time_days=lead_time_days,
        demand_over_lead_time=total,
        demand_over_lead_time_sd=total_sd,
        days_of_cover=cover,
        stockout_probability=probability,
        overstock=bool(overstock),
    )

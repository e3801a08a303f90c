"""Forecasting models, the backtest splitter and inventory risk, on small in-memory data."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from forecasting.backtest import LeakageError, Split, mape, mase, rolling_origin
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
from forecasting.risk import inventory_risk


def weekly_pattern_series(weeks: int = 16, seed: int = 0) -> np.ndarray:
    pattern = np.array([20.0, 22.0, 25.0, 24.0, 30.0, 45.0, 40.0])
    rng = np.random.default_rng(seed)
    return np.tile(pattern, weeks) + rng.normal(0, 1.0, 7 * weeks)


def test_weekly_seasonality_is_forecast_within_tolerance() -> None:
    history = weekly_pattern_series()
    truth = np.array([20.0, 22.0, 25.0, 24.0, 30.0, 45.0, 40.0] * 2)
    for model in (SeasonalNaive(7), ETS(season_length=7)):
        forecast = model.new().fit(history).predict(14, level=(80,))
        # Stated tolerance: within 10% MAPE of the true weekly pattern over two weeks.
        assert mape(truth, forecast[model.alias]) < 10, model.alias
        assert np.all(forecast[f"{model.alias}-lo-80"] <= forecast[model.alias])
        assert np.all(forecast[f"{model.alias}-hi-80"] >= forecast[model.alias])
    # A model blind to the season does much worse: the test can tell them apart.
    flat = HistoricAverage().fit(history).predict(14)["HistoricAverage"]
    assert mape(truth, flat) > 20


def test_three_point_series_falls_back_cleanly() -> None:
    model = WithFallback(ETS(season_length=7), HistoricAverage())
    fitted = model.new().fit(np.array([3.0, 5.0, 4.0]))
    assert fitted.used == "HistoricAverage"
    forecast = fitted.predict(2, level=(90,))
    assert set(forecast) == {"ETS", "ETS-lo-90", "ETS-hi-90"}
    assert forecast["ETS"] == pytest.approx([4.0, 4.0])
    with pytest.raises(ModelFitError, match="needs 4 points, got 3"):
        ETS().fit(np.array([3.0, 5.0, 4.0]))
    with pytest.raises(ModelFitError, match="needs 7 points"):
        SeasonalNaive(7).fit(np.array([1.0, 2.0]))


def test_clones_are_independent() -> None:
    template = Naive()
    first = template.new().fit(np.array([1.0, 2.0]))
    second = template.new().fit(np.array([5.0, 9.0]))
    assert first.predict(1)["Naive"][0] == 2.0 and second.predict(1)["Naive"][0] == 9.0
    assert not hasattr(template, "_last")


def test_sarimax_uses_its_regressors() -> None:
    rng = np.random.default_rng(1)
    promo = (rng.random(120) < 0.3).astype(float)
    y = 50 + 30 * promo + rng.normal(0, 2, 120)
    model = SARIMAX(order=(1, 0, 0)).fit(y[:100], promo[:100, None])
    forecast = model.predict(20, promo[100:, None])["SARIMAX"]
    on, off = forecast[promo[100:] == 1], forecast[promo[100:] == 0]
    assert on.mean() - off.mean() == pytest.approx(30, abs=4)


def test_log_units_forecasts_the_median_level() -> None:
    y = np.exp(np.random.default_rng(2).normal(3, 0.5, 200))
    forecast = LogUnits(HistoricAverage()).fit(y).predict(1)["HistoricAverage"][0]
    assert forecast == pytest.approx(math.exp(3), rel=0.1)
    with pytest.raises(ModelFitError, match="positive"):
        LogUnits(HistoricAverage()).fit(np.array([1.0, 0.0, 2.0]))


def test_splitter_never_lets_a_forecast_see_its_future() -> None:
    periods = np.arange(40, 161)
    for split in rolling_origin(range(135, 158, 2), (2, 3)):
        train, test = periods[split.train_mask(periods)], periods[split.test_mask(periods)]
        assert train.max() == split.cutoff < test.min() == split.cutoff + 2
        split.check(train, test)
    # A split that would train on a forecast week is refused.
    with pytest.raises(LeakageError, match="reaches period 137"):
        Split(135, (2, 3)).check(np.arange(40, 138), np.array([137, 138]))
    with pytest.raises(ValueError, match="horizons must be positive"):
        list(rolling_origin([10], [0, 1]))


def test_pooled_regression_recovers_price_and_promotion_effects() -> None:
    rng = np.random.default_rng(3)
    rows = []
    for store in range(20):
        level = rng.normal(4, 0.5)
        for product in ("A", "B"):
            for period in range(1, 81):
                price = rng.uniform(2, 4)
                promo = rng.random() < 0.2
                other = rng.uniform(2, 4)
                mu = level - 2.0 * np.log(price) + 0.8 * promo + 0.5 * np.log(other)
                rows.append(
                    {
                        "series_id": f"{store}/{product}",
                        "product_id": product,
                        "period": period,
                        "units": float(np.exp(mu + rng.normal(0, 0.1))),
                        "price": price,
                        "on_promotion": promo,
                        "featured": False,
                        "price:A": price if product == "A" else other,
                        "price:B": price if product == "B" else other,
                    }
                )
    frame = pd.DataFrame(rows)
    frame["y_lag"] = np.nan
    train, test = frame[frame["period"] <= 70], frame[frame["period"] > 70]
    model = PooledLogRegression(fourier=1).fit(train)
    forecast = model.predict(test, level=(90,))
    assert mape(test["units"], forecast["PooledRegression"]) < 12
    assert model.residual_variance == pytest.approx(0.01, rel=0.3)
    inside = (test["units"] >= forecast["PooledRegression-lo-90"]) & (
        test["units"] <= forecast["PooledRegression-hi-90"]
    )
    assert 0.8 < inside.mean() <= 1.0


def test_mase_scales_by_the_seasonal_naive_error() -> None:
    history = np.array([1.0, 2, 3, 4, 5, 6, 7, 8])
    assert mase(np.array([10.0]), np.array([12.0]), history, season=1) == pytest.approx(2.0)


def test_inventory_risk_matches_hand_computed_cases() -> None:
    # 12 in stock, 3/day expected (sd 1/day), restock in 4 days: 12 expected over the lead
    # time with sd 2; P(demand > 12) = 0.5; 4 days of cover.
    risk = inventory_risk(12, 4, np.full(10, 3.0), np.full(10, 1.0))
    assert risk.demand_over_lead_time == pytest.approx(12.0)
    assert risk.demand_over_lead_time_sd == pytest.approx(2.0)
    assert risk.stockout_probability == pytest.approx(0.5)
    assert risk.days_of_cover == pytest.approx(4.0)
    assert not risk.overstock
    # 16 in stock: two sd above the mean, P = 1 - Phi(2) = 0.02275.
    assert inventory_risk(16, 4, np.full(10, 3.0), np.full(10, 1.0)).stockout_probability == (
        pytest.approx(0.02275, abs=1e-4)
    )
    # No uncertainty: certain either way.
    assert inventory_risk(5, 2, np.full(3, 3.0), np.zeros(3)).stockout_probability == 1.0
    assert inventory_risk(6, 2, np.full(3, 3.0), np.zeros(3)).stockout_probability == 0.0
    # 400 units at 2/day is 200 days of cover: overstock; nothing expected to sell: overstock.
    assert inventory_risk(400, 7, np.full(7, 2.0), np.full(7, 0.5)).overstock
    idle = inventory_risk(10, 7, np.zeros(7), np.zeros(7))
    assert idle.days_of_cover is None and idle.overstock and idle.stockout_probability == 0.0
    with pytest.raises(ValueError, match="must not be negative"):
        inventory_risk(-1, 3, np.ones(3), np.ones(3))

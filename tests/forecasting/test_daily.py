"""Daily demand from orders: promotion regressors, the pooled regression across products, and
the model choice that puts SARIMAX and the pooled regression beside the per-series models."""

from __future__ import annotations

import warnings
from datetime import date

import numpy as np
import pytest
import statsmodels.api as sm

from forecasting.daily import DailyPanel, PooledDailyRegression, calendar_exog, promotion_discounts
from forecasting.service import SeriesTask, choose_and_forecast, series_tasks

ORIGIN = date(2024, 1, 1)  # a Monday


def test_promotion_discounts_take_the_best_running_promotion_per_day() -> None:
    found = promotion_discounts(
        [
            ("A", date(2024, 1, 2), date(2024, 1, 4), 10),
            ("A", date(2024, 1, 4), date(2024, 1, 5), 30),  # overlaps on the 4th: 30 wins
            ("B", date(2023, 12, 30), date(2024, 1, 1), 20),  # starts before the window
            ("C", date(2024, 2, 1), date(2024, 2, 5), 50),  # after the window: ignored
        ],
        ORIGIN,
        7,
    )
    assert found["A"] == pytest.approx([0, 0.1, 0.1, 0.3, 0.3, 0, 0])
    assert found["B"] == pytest.approx([0.2, 0, 0, 0, 0, 0, 0])
    assert "C" not in found


def test_calendar_exog_has_the_discount_and_weekday_indicators() -> None:
    x = calendar_exog(ORIGIN, 5, 3, np.arange(10) / 10)  # Saturday, Sunday, Monday
    assert x[:, 0] == pytest.approx([0.5, 0.6, 0.7])
    assert x[:, 1:].tolist() == [
        [0, 0, 0, 0, 1, 0],
        [0, 0, 0, 0, 0, 1],
        [0, 0, 0, 0, 0, 0],
    ]


def shop_panel(products: int = 40, days: int = 210, seed: int = 5) -> tuple[DailyPanel, dict]:
    """Products with their own levels, a shared weekend lift, and promotions that multiply
    demand by exp(2 * discount). Returns the panel and the truth."""
    rng = np.random.default_rng(seed)
    weekday = (np.arange(days + 28) + ORIGIN.weekday()) % 7
    weekend = np.where(weekday >= 5, 0.5, 0.0)
    series, starts, discounts, levels = {}, {}, {}, {}
    for i in range(products):
        product_id = f"P{i:03d}"
        start = 0 if i % 4 else int(rng.integers(100, days - 30))  # a quarter start late
        discount = np.zeros(days + 28)
        for _ in range(4):
            first = int(rng.integers(0, days + 20))
            discount[first : first + 7] = rng.choice([0.1, 0.2, 0.3])
        level = rng.normal(1.5, 0.4)
        mu = level + weekend + 2.0 * discount
        units = rng.poisson(np.exp(mu)).astype(float)
        series[product_id] = units[start:days]
        starts[product_id] = start
        discounts[product_id] = discount
        levels[product_id] = (units, start)
    return DailyPanel(ORIGIN, series, starts, discounts, {}), {"full": levels}


def test_pooled_daily_regression_matches_statsmodels_ols_on_the_stacked_rows() -> None:
    panel, _ = shop_panel()
    model = PooledDailyRegression(fourier=1)
    model.forecast(panel, panel.end, 7)
    # The same within regression, stacked and fitted by statsmodels.
    xs, ys = [], []
    for product_id, y in panel.series.items():
        days = np.arange(panel.starts[product_id], panel.end)
        x = model._features(panel, product_id, days)
        target = np.log1p(y)
        xs.append(x - x.mean(axis=0))
        ys.append(target - target.mean())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = sm.OLS(np.concatenate(ys), np.vstack(xs)).fit().params
    assert model.coefficients == pytest.approx(np.asarray(reference), abs=1e-8)
    # Promotions raise demand, weekends (Saturday, Sunday indicators) too, weekdays do not.
    assert model.coefficients[0] > 1.0
    assert min(model.coefficients[5:7]) > 0.3 > max(np.abs(model.coefficients[1:5]))


def test_pooled_daily_regression_forecasts_a_short_series_with_the_shops_effects() -> None:
    panel, truth = shop_panel()
    end = panel.end
    horizon = 28
    short = min(panel.series, key=lambda p: len(panel.series[p]))
    assert len(panel.series[short]) <= 110
    # A promotion planned for the horizon: Wednesday to Friday of its first full week.
    monday = end + (7 - (end + ORIGIN.weekday()) % 7) % 7
    panel.discounts[short][monday + 2 : monday + 5] = 0.3
    forecasts = PooledDailyRegression().forecast(panel, end, horizon, level=(80,))
    assert set(forecasts) == set(panel.series)
    units, _ = truth["full"][short]
    actual = units[end : end + horizon]
    forecast = forecasts[short]
    mean = forecast["PooledDailyRegression"]
    assert np.all(forecast["PooledDailyRegression-lo-80"] <= mean)
    assert np.all(forecast["PooledDailyRegression-hi-80"] >= mean)
    # Promotion days of the horizon (known ahead) are forecast higher than plain weekdays.
    discount = panel.discounts[short][end : end + horizon]
    weekday = (np.arange(end, end + horizon) + ORIGIN.weekday()) % 7
    plain = (discount == 0) & (weekday < 5)
    assert mean[(discount > 0) & (weekday < 5)].mean() > 1.5 * mean[plain].mean()
    # Better than the series' own history average would do over the horizon.
    flat = np.full(horizon, panel.series[short].mean())
    assert np.mean(np.abs(mean - actual)) < np.mean(np.abs(flat - actual)) * 1.1


def test_model_choice_includes_sarimax_and_the_pooled_regression() -> None:
    panel, _ = shop_panel()
    tasks = series_tasks(panel, 14)
    assert all(t.exog is not None and t.exog.shape == (len(t.y) + 14, 7) for t in tasks)
    assert all(set(t.pooled) == {0, 1, 2} for t in tasks if len(t.y) > 60)
    chosen = [choose_and_forecast(t) for t in tasks]
    models = {c.model for c in chosen}
    # On a shop whose demand moves with promotions and weekdays, the regressor-aware models
    # win some series and every forecast has the horizon's length.
    assert models & {"SARIMAX", "PooledDailyRegression"}
    assert all(len(c.mean) == 14 and np.all(c.lower <= c.mean) for c in chosen)


def test_without_regressors_the_choice_keeps_the_per_series_models() -> None:
    panel, _ = shop_panel(products=4)
    product_id = next(iter(panel.series))
    chosen = choose_and_forecast(SeriesTask(product_id, panel.series[product_id], 14))
    assert chosen.model in {"SeasonalNaive", "ETS", "HistoricAverage"}

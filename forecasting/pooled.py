"""A pooled statsmodels regression across series, for short or noisy series.

log(units) = series effect + brand-specific own-price elasticity + brand-specific cross-price
effects of every competitor's price + promotion and feature effects per brand + yearly
seasonality (Fourier terms) + the series' level three periods earlier (known at forecast time
for horizons up to three). Series effects are removed by demeaning within series (the "within"
estimator), so one OLS fit serves hundreds of series without hundreds of dummy columns.

The predictive distribution of units is lognormal with the residual variance s2. Two point
forecasts come out of it: the median exp(mu), and exp(mu - s2), the value that minimises the
expected absolute percentage error of a lognormal (MAPE rewards forecasting low).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats
from statsmodels.tools.sm_exceptions import SingularMatrixWarning

YEAR = 52.18


class PooledLogRegression:
    """Fits on a long frame of many series at once; predicts rows of a later frame."""

    alias = "PooledRegression"

    def __init__(self, lag: int = 3, fourier: int = 2, max_cross_products: int = 20) -> None:
        self.lag = lag
        self.fourier = fourier
        # Up to this many products, each has its own effect of every competitor's price (the
        # Dominick's category has 11); beyond, the mean competitor price has one effect each.
        self.max_cross_products = max_cross_products

    def _design(self, frame: pd.DataFrame, prices: list[str]) -> pd.DataFrame:
        columns: dict[str, np.ndarray] = {}
        products = (
            sorted(frame["product_id"].unique())
            if not hasattr(self, "_products")
            else self._products
        )
        log_price = np.log(frame["price"].to_numpy(float))
        pairwise = len(prices) <= self.max_cross_products
        if not pairwise:
            all_prices = frame[prices].to_numpy(float)
            others = (np.nansum(all_prices, axis=1) - frame["price"].to_numpy(float)) / max(
                len(prices) - 1, 1
            )
            log_competition = np.log(np.maximum(others, 1e-6))
        for product in products:
            own = (frame["product_id"] == product).to_numpy(float)
            columns[f"own_price:{product}"] = log_price * own
            columns[f"promo:{product}"] = frame["on_promotion"].to_numpy(float) * own
            columns[f"featured:{product}"] = frame["featured"].to_numpy(float) * own
            if not pairwise:
                columns[f"competition|{product}"] = log_competition * own
                continue
            for other in prices:
                if other != f"price:{product}":
                    columns[f"{other}|{product}"] = np.log(frame[other].to_numpy(float)) * own
        period = frame["period"].to_numpy(float)
        for k in range(1, self.fourier + 1):
            columns[f"sin{k}"] = np.sin(2 * np.pi * k * period / YEAR)
            columns[f"cos{k}"] = np.cos(2 * np.pi * k * period / YEAR)
        lagged = frame["y_lag"].to_numpy(float)
        columns["has_lag"] = np.isfinite(lagged).astype(float)
        columns["lag_deviation"] = np.where(
            np.isfinite(lagged), lagged - frame["series_mean"].to_numpy(float), 0.0
        )
        return pd.DataFrame(columns, index=frame.index)

    def fit(self, frame: pd.DataFrame) -> PooledLogRegression:
        """`frame`: series_id, product_id, period, units (> 0), price, on_promotion, featured,
        `price:<product>` columns for competitors' prices, and y_lag (log units `lag` periods
        before, NaN when unknown)."""
        self._products = sorted(frame["product_id"].unique())
        self._prices = sorted(c for c in frame.columns if c.startswith("price:"))
        y = np.log(frame["units"].to_numpy(float))
        self._series_mean = pd.Series(y, index=frame.index).groupby(frame["series_id"]).mean()
        frame = frame.copy().assign(series_mean=frame["series_id"].map(self._series_mean))
        design = self._design(frame, self._prices)
        self._x_mean = design.groupby(frame["series_id"]).mean()
        x = design.to_numpy() - self._x_mean.loc[frame["series_id"]].to_numpy()
        target = y - frame["series_mean"].to_numpy()
        with warnings.catch_warnings():
            # A flag that never varies (no feature ads for a brand) leaves a zero column; the
            # pseudo-inverse gives it no weight, which is the right answer.
            warnings.simplefilter("ignore", SingularMatrixWarning)
            self._result = sm.OLS(target, x).fit()
        self.residual_variance = float(self._result.mse_resid)
        return self

    def predict(self, frame: pd.DataFrame, level: tuple[int, ...] = ()) -> dict[str, np.ndarray]:
        """Median, MAPE-optimal point and lognormal intervals for each row of `frame`."""
        known = frame["series_id"].isin(self._series_mean.index).to_numpy()
        series_mean = frame["series_id"].map(self._series_mean).fillna(self._series_mean.mean())
        frame = frame.copy().assign(series_mean=series_mean)
        design = self._design(frame, self._prices)
        x_mean = self._x_mean.reindex(frame["series_id"]).to_numpy()
        x_mean = np.where(np.isnan(x_mean), self._x_mean.mean().to_numpy(), x_mean)
        mu = self._result.predict(design.to_numpy() - x_mean) + series_mean.to_numpy()
        s2 = self.residual_variance
        out = {
            self.alias: np.exp(mu),
            f"{self.alias}-mape-optimal": np.exp(mu - s2),
            "known_series": known,
        }
        for lv in level:
            z = stats.norm.ppf(0.5 + lv / 200)
            out[f"{self.alias}-lo-{lv}"] = np.exp(mu - z * np.sqrt(s2))
            out[f"{self.alias}-hi-{lv}"] = np.exp(mu + z * np.sqrt(s2))
        return out

"""Per-series demand models shaped like statsforecast's: `fit(y, X) -> self`,
`predict(h, X, level) -> dict`, an `alias` naming the output column, `new()` for one clone per
series, and `WithFallback` for series too short or too odd to fit.

`predict` returns `{alias: mean}` plus `{alias}-lo-{level}` / `{alias}-hi-{level}` bounds for
each requested level (percent). Intervals come from the model where statsmodels gives them
(ETS, SARIMAX) and from the spread of in-sample one-step errors otherwise.
"""

from __future__ import annotations

import copy
import warnings
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

Forecast = dict[str, np.ndarray]


class ModelFitError(RuntimeError):
    """A model could not be fitted to a series (too short, constant, did not converge)."""


class ForecastModel:
    """Base of every per-series model."""

    alias = "model"
    min_length = 1

    def fit(self, y: np.ndarray, X: np.ndarray | None = None) -> ForecastModel:
        raise NotImplementedError

    def predict(self, h: int, X: np.ndarray | None = None, level: tuple[int, ...] = ()) -> Forecast:
        raise NotImplementedError

    def new(self) -> ForecastModel:
        """An unfitted copy with the same settings (one per series)."""
        clone = copy.copy(self)
        clone.__dict__ = {k: v for k, v in self.__dict__.items() if not k.startswith("_")}
        return clone

    def _check_length(self, y: np.ndarray) -> np.ndarray:
        y = np.asarray(y, dtype=np.float64)
        if len(y) < self.min_length:
            raise ModelFitError(f"{self.alias} needs {self.min_length} points, got {len(y)}")
        if not np.all(np.isfinite(y)):
            raise ModelFitError(f"{self.alias} got missing or infinite values")
        return y


def _bounds(alias: str, mean: np.ndarray, sigma: np.ndarray, level: tuple[int, ...]) -> Forecast:
    out: Forecast = {alias: mean}
    for lv in level:
        z = stats.norm.ppf(0.5 + lv / 200)
        out[f"{alias}-lo-{lv}"] = np.maximum(mean - z * sigma, 0.0)
        out[f"{alias}-hi-{lv}"] = mean + z * sigma
    return out


class Naive(ForecastModel):
    """The last value, repeated; the error grows like a random walk's."""

    alias = "Naive"

    def fit(self, y: np.ndarray, X: np.ndarray | None = None) -> Naive:
        y = self._check_length(y)
        self._last = y[-1]
        steps = np.diff(y)
        self._sigma = float(np.std(steps)) if len(steps) > 1 else 0.0
        return self

    def predict(self, h: int, X: np.ndarray | None = None, level: tuple[int, ...] = ()) -> Forecast:
        mean = np.full(h, self._last)
        return _bounds(self.alias, mean, self._sigma * np.sqrt(np.arange(1, h + 1)), level)


class SeasonalNaive(ForecastModel):
    """The value one season ago (7 for daily, 52 for weekly data)."""

    alias = "SeasonalNaive"

    def __init__(self, season_length: int) -> None:
        self.season_length = season_length
        self.min_length = season_length

    def fit(self, y: np.ndarray, X: np.ndarray | None = None) -> SeasonalNaive:
        y = self._check_length(y)
        self._season = y[-self.season_length :]
        errors = y[self.season_length :] - y[: -self.season_length]
        self._sigma = float(np.std(errors)) if len(errors) > 1 else 0.0
        return self

    def predict(self, h: int, X: np.ndarray | None = None, level: tuple[int, ...] = ()) -> Forecast:
        mean = np.resize(self._season, h).astype(np.float64)
        return _bounds(self.alias, mean, np.full(h, self._sigma), level)


class HistoricAverage(ForecastModel):
    """The mean of the history."""

    alias = "HistoricAverage"

    def fit(self, y: np.ndarray, X: np.ndarray | None = None) -> HistoricAverage:
        y = self._check_length(y)
        self._mean = float(np.mean(y))
        self._sigma = float(np.std(y))
        return self

    def predict(self, h: int, X: np.ndarray | None = None, level: tuple[int, ...] = ()) -> Forecast:
        return _bounds(self.alias, np.full(h, self._mean), np.full(h, self._sigma), level)


class ETS(ForecastModel):
    """Exponential smoothing (statsmodels ETSModel): additive error and trend (damped), with an
    additive season when the series holds two full seasons."""

    alias = "ETS"

    def __init__(self, season_length: int | None = None, damped_trend: bool = True) -> None:
        self.season_length = season_length
        self.damped_trend = damped_trend
        self.min_length = 4

    def fit(self, y: np.ndarray, X: np.ndarray | None = None) -> ETS:
        from statsmodels.tsa.exponential_smoothing.ets import ETSModel

        y = self._check_length(y)
        seasonal = self.season_length and len(y) >= 2 * self.season_length + 2
        trend = "add" if len(y) >= 10 else None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                # A pandas Series: ETSModel's prediction intervals fail on a bare array.
                model = ETSModel(
                    pd.Series(y),
                    error="add",
                    trend=trend,
                    damped_trend=self.damped_trend and trend is not None,
                    seasonal="add" if seasonal else None,
                    seasonal_periods=self.season_length if seasonal else None,
                )
                self._result = model.fit(disp=False, maxiter=200)
        except (ValueError, np.linalg.LinAlgError) as exc:
            raise ModelFitError(f"ETS did not fit: {exc}") from exc
        return self

    def predict(self, h: int, X: np.ndarray | None = None, level: tuple[int, ...] = ()) -> Forecast:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            frame = self._result.get_prediction(
                start=self._result.nobs, end=self._result.nobs + h - 1
            )
            mean = np.maximum(np.asarray(frame.predicted_mean), 0.0)
            out: Forecast = {self.alias: mean}
            for lv in level:
                interval = np.asarray(frame.pred_int(alpha=1 - lv / 100))
                out[f"{self.alias}-lo-{lv}"] = np.maximum(interval[:, 0], 0.0)
                out[f"{self.alias}-hi-{lv}"] = interval[:, 1]
        return out


class SARIMAX(ForecastModel):
    """statsmodels SARIMAX with exogenous regressors (price, promotion, feature flags, ...)."""

    alias = "SARIMAX"

    def __init__(
        self,
        order: tuple[int, int, int] = (1, 0, 1),
        seasonal_order: tuple[int, int, int, int] = (0, 0, 0, 0),
        log: bool = False,
    ) -> None:
        self.order = order
        self.seasonal_order = seasonal_order
        self.log = log
        self.min_length = 8

    def fit(self, y: np.ndarray, X: np.ndarray | None = None) -> SARIMAX:
        from statsmodels.tsa.statespace.sarimax import SARIMAX as Model

        y = self._check_length(y)
        target = np.log1p(y) if self.log else y
        # A regressor that never varies in the training window (no promotion yet) cannot be
        # estimated beside the constant: it is left out, here and in `predict`.
        exog = None
        self._keep: np.ndarray | None = None
        if X is not None:
            self._keep = np.ptp(np.asarray(X, float), axis=0) > 0
            exog = np.asarray(X, float)[:, self._keep] if self._keep.any() else None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model = Model(
                    target,
                    exog=exog,
                    order=self.order,
                    seasonal_order=self.seasonal_order,
                    trend="c",
                    enforce_stationarity=False,
                    enforce_invertibility=False,
                )
                self._result = model.fit(disp=False, maxiter=100)
        except (ValueError, np.linalg.LinAlgError) as exc:
            raise ModelFitError(f"SARIMAX did not fit: {exc}") from exc
        return self

    def predict(self, h: int, X: np.ndarray | None = None, level: tuple[int, ...] = ()) -> Forecast:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            exog = None
            if self._keep is not None and self._keep.any():
                if X is None:
                    raise ModelFitError("SARIMAX was fitted with regressors: predict needs them")
                exog = np.asarray(X, float)[:, self._keep]
            frame = self._result.get_forecast(steps=h, exog=exog)
            mean = np.asarray(frame.predicted_mean)
            back = np.expm1 if self.log else (lambda v: v)
            out: Forecast = {self.alias: np.maximum(back(mean), 0.0)}
            for lv in level:
                interval = np.asarray(frame.conf_int(alpha=1 - lv / 100))
                out[f"{self.alias}-lo-{lv}"] = np.maximum(back(interval[:, 0]), 0.0)
                out[f"{self.alias}-hi-{lv}"] = np.maximum(back(interval[:, 1]), 0.0)
        return out


class WithFallback(ForecastModel):
    """Fits `model`; if that fails (too short, no convergence), fits `fallback` instead.
    Output columns keep `model`'s alias; `used` says which one answered."""

    def __init__(self, model: ForecastModel, fallback: ForecastModel) -> None:
        self.model = model
        self.fallback = fallback
        self.alias = model.alias
        self.min_length = fallback.min_length

    def new(self) -> WithFallback:
        return WithFallback(self.model.new(), self.fallback.new())

    def fit(self, y: np.ndarray, X: np.ndarray | None = None) -> WithFallback:
        try:
            self._fitted: ForecastModel = self.model.new().fit(y, X)
            self.used = self.model.alias
        except ModelFitError:
            self._fitted = self.fallback.new().fit(y, X)
            self.used = self.fallback.alias
        return self

    def predict(self, h: int, X: np.ndarray | None = None, level: tuple[int, ...] = ()) -> Forecast:
        raw = self._fitted.predict(h, X, level)
        inner = self._fitted.alias
        return {self.alias + key[len(inner) :]: value for key, value in raw.items()}


class LogUnits(ForecastModel):
    """Fits `model` on log demand and forecasts exp of it: the median of a multiplicative
    series, which suits sales with promotion spikes (series must be positive)."""

    def __init__(self, model: ForecastModel) -> None:
        self.model = model
        self.alias = model.alias
        self.min_length = model.min_length

    def new(self) -> LogUnits:
        return LogUnits(self.model.new())

    def fit(self, y: np.ndarray, X: np.ndarray | None = None) -> LogUnits:
        y = self._check_length(y)
        if np.any(y <= 0):
            raise ModelFitError(f"{self.alias} on log demand needs positive values")
        self._fitted = self.model.new().fit(np.log(y), X)
        return self

    def predict(self, h: int, X: np.ndarray | None = None, level: tuple[int, ...] = ()) -> Forecast:
        return {k: np.exp(v) for k, v in self._fitted.predict(h, X, level).items()}


def model_summary(model: ForecastModel) -> dict[str, Any]:
    """What to record with a forecast: alias and settings."""
    settings = {k: v for k, v in vars(model).items() if not k.startswith("_")}
    return {"alias": model.alias, **{k: repr(v) for k, v in settings.items()}}

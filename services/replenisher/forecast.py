"""Daily demand forecasts for intermittent series: SES, Croston, SBA and TSB, chosen per series.

Pure: no I/O. The caller supplies daily demand histories (units per day, oldest first, zeros
included), one per item. The methods run on many series at once (rows of a matrix; days before
an item's first day are NaN and leave its state alone). Each method is fitted on all but the
last held-out days with a few smoothing constants; the method and constants with the lowest
mean absolute error on the held-out days win for that series, and are refitted on all of it.

Outliers: a day's demand above ``OUTLIER_FACTOR`` × the series' median demand on days with
demand (the lower median: with two such days, the smaller) counts as that cap. One wholesale
order of thousands among lines of dozens would otherwise raise the level and the spread for
weeks, and the stock ordered for it would mostly wait for a next such order that seldom comes.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

Matrix = NDArray[np.float64]  # items × days
ALPHAS = (0.05, 0.1)  # larger ones jump after each demand day of an intermittent series
MIN_HISTORY_DAYS = 14
OUTLIER_FACTOR = 2.0


@dataclass(frozen=True)
class Forecast:
    method: str
    daily_demand: float  # expected units per day
    demand_sd: float  # spread of daily demand around the forecast: 1.25 × mean absolute
    # one-step error, outliers capped (σ for normal errors)
    holdout_mae: float  # mean absolute error on the held-out days
    history_days: int
    demand_size: float = 1.0  # mean units on a day with demand (outliers capped): one order
    # line's size for most items, a day's lines for busy ones; 0 or 1 when unknown


def cap_outliers(y: NDArray[np.float64]) -> Matrix:
    """Each day's demand capped at ``OUTLIER_FACTOR`` × the lower median of the series' days
    with demand (NaN days stay NaN)."""
    y = _rows(y)
    positive = np.nan_to_num(y) > 0
    counts = positive.sum(axis=1)
    ranked = np.sort(np.where(positive, y, np.inf), axis=1)
    lower_median = ranked[np.arange(len(y)), np.maximum(counts - 1, 0) // 2]
    cap = np.where(counts > 0, OUTLIER_FACTOR * lower_median, np.inf)
    return np.minimum(y, cap[:, None])


def _rows(y: NDArray[np.float64]) -> Matrix:
    return np.atleast_2d(np.asarray(y, dtype=np.float64))


def ses(y: NDArray[np.float64], alpha: float) -> Matrix:
    """One-step-ahead forecasts by simple exponential smoothing: column t is made before day t,
    the last column is the forecast for the day after the history."""
    y = _rows(y)
    n, days = y.shape
    out = np.empty((n, days + 1))
    level = _first_observation(y)
    out[:, 0] = level
    for t in range(days):
        seen = ~np.isnan(y[:, t])
        level = np.where(seen, alpha * np.nan_to_num(y[:, t]) + (1 - alpha) * level, level)
        out[:, t + 1] = level
    return out


def croston(y: NDArray[np.float64], alpha: float, debias: float = 1.0) -> Matrix:
    """Croston's method: sizes and intervals smoothed separately; ``debias`` (1 − α/2) is SBA."""
    y = _rows(y)
    n, days = y.shape
    out = np.empty((n, days + 1))
    size, interval = _first_demand(y)
    since = np.ones(n)
    out[:, 0] = debias * size / interval
    for t in range(days):
        value = y[:, t]
        demand = np.nan_to_num(value) > 0
        size = np.where(demand, alpha * np.nan_to_num(value) + (1 - alpha) * size, size)
        interval = np.where(demand, alpha * since + (1 - alpha) * interval, interval)
        since = np.where(demand, 1.0, np.where(np.isnan(value), since, since + 1))
        out[:, t + 1] = debias * size / interval
    return out


def tsb(y: NDArray[np.float64], alpha: float, beta: float) -> Matrix:
    """Teunter-Syntetos-Babai: the demand probability is updated every day, so the forecast
    decays when demand stops (Croston's does not)."""
    y = _rows(y)
    n, days = y.shape
    out = np.empty((n, days + 1))
    observed = ~np.isnan(y)
    positive = np.nan_to_num(y) > 0
    counts = np.maximum(observed.sum(axis=1), 1)
    probability = positive.sum(axis=1) / counts
    size = np.where(
        positive.any(axis=1),
        np.nan_to_num(y).sum(axis=1) / np.maximum(positive.sum(axis=1), 1),
        0.0,
    )
    out[:, 0] = probability * size
    for t in range(days):
        value = np.nan_to_num(y[:, t])
        seen = observed[:, t]
        probability = np.where(seen, beta * (value > 0) + (1 - beta) * probability, probability)
        size = np.where(value > 0, alpha * value + (1 - alpha) * size, size)
        out[:, t + 1] = probability * size
    return out


def _first_observation(y: Matrix) -> NDArray[np.float64]:
    seen = ~np.isnan(y)
    first = np.argmax(seen, axis=1)
    return np.where(seen.any(axis=1), np.nan_to_num(y[np.arange(len(y)), first]), 0.0)


def _first_demand(y: Matrix) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The size of each series' first demand and the days up to it (Croston's start)."""
    positive = np.nan_to_num(y) > 0
    first = np.argmax(positive, axis=1)
    start = np.argmax(~np.isnan(y), axis=1)
    any_demand = positive.any(axis=1)
    size = np.where(any_demand, np.nan_to_num(y[np.arange(len(y)), first]), 0.0)
    interval = np.where(any_demand, first - start + 1.0, 1.0)
    return size, interval


def candidates() -> dict[str, Callable[[NDArray[np.float64]], Matrix]]:
    methods: dict[str, Callable[[NDArray[np.float64]], Matrix]] = {}
    for a in ALPHAS:
        methods[f"ses(alpha={a})"] = functools.partial(ses, alpha=a)
        methods[f"croston(alpha={a})"] = functools.partial(croston, alpha=a)
        methods[f"sba(alpha={a})"] = functools.partial(croston, alpha=a, debias=1 - a / 2)
        methods[f"tsb(alpha={a},beta={a})"] = functools.partial(tsb, alpha=a, beta=a)
    return methods


def forecast_many(histories: Sequence[Sequence[float]]) -> list[Forecast | None]:
    """The best forecast of each series (None where too short or without demand)."""
    if not histories:
        return []
    days = max(len(h) for h in histories)
    y = np.full((len(histories), days), np.nan)
    for i, h in enumerate(histories):
        if len(h):
            y[i, days - len(h) :] = h
    if days < MIN_HISTORY_DAYS:
        return [None] * len(histories)
    y = cap_outliers(y)
    # Column t of a fit is the forecast made before day t from the days before it, so the
    # forecast a series would have had at the start of its held-out days is read, not refitted.
    lengths = np.array([len(h) for h in histories])
    holdout = np.minimum(np.maximum(7, lengths // 5), np.maximum(lengths - 1, 1))
    cut = days - holdout
    rows = np.arange(len(histories))
    test = np.arange(days)[None, :] >= cut[:, None]
    names = list(candidates())
    fits = {name: candidates()[name](y) for name in names}
    with np.errstate(all="ignore"):
        errors = np.stack(
            [
                np.nanmean(
                    np.where(test, np.abs(y - fits[name][rows, cut][:, None]), np.nan), axis=1
                )
                for name in names
            ]
        )
    errors = np.where(np.isnan(errors), np.inf, errors)
    best = np.argmin(errors, axis=0)
    results: list[Forecast | None] = []
    for i, h in enumerate(histories):
        if len(h) < MIN_HISTORY_DAYS or not any(h):
            results.append(None)
            continue
        name = names[best[i]]
        fitted = fits[name][i]
        residuals = y[i] - fitted[:-1]
        residuals = residuals[~np.isnan(residuals)][1:]
        mae = float(errors[best[i], i])
        demand_days = y[i][np.nan_to_num(y[i]) > 0]
        results.append(
            Forecast(
                method=name,
                daily_demand=float(max(0.0, fitted[-1])),
                demand_sd=float(1.25 * np.mean(np.abs(residuals))) if len(residuals) else 0.0,
                holdout_mae=mae if np.isfinite(mae) else 0.0,
                history_days=len(h),
                demand_size=float(np.mean(demand_days)),
            )
        )
    return results


def forecast(history: Sequence[float]) -> Forecast | None:
    """The best forecast for one series, or None when the history is too short to judge."""
    return forecast_many([history])[0]

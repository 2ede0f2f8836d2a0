"""Daily demand forecasts for intermittent series: SES, Croston, SBA and TSB, chosen per series.

Pure: no I/O. The caller supplies the daily demand history of one item (units per day, oldest
first, zeros included). Each method is fitted on all but the last held-out days with a few
smoothing constants; the method and constants with the lowest mean absolute error on the
held-out days win and are refitted on the whole series.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

Series = NDArray[np.float64]
ALPHAS = (0.05, 0.1, 0.2, 0.3)
MIN_HISTORY_DAYS = 14


@dataclass(frozen=True)
class Forecast:
    method: str
    daily_demand: float  # expected units per day
    demand_sd: float  # spread of daily demand around the forecast (one-step errors)
    holdout_mae: float  # mean absolute error on the held-out days
    history_days: int


def ses(y: Series, alpha: float) -> Series:
    """One-step-ahead forecasts by simple exponential smoothing (index t: made before day t);
    the last element is the forecast for tomorrow."""
    out = np.empty(len(y) + 1)
    level = y[0]
    out[0] = level
    for t, value in enumerate(y):
        level = alpha * value + (1 - alpha) * level
        out[t + 1] = level
    return out


def croston(y: Series, alpha: float, debias: float = 1.0) -> Series:
    """Croston's method: sizes and intervals smoothed separately; ``debias`` (1 − α/2) is SBA."""
    out = np.empty(len(y) + 1)
    nonzero = np.flatnonzero(y)
    size = y[nonzero[0]] if len(nonzero) else 0.0
    interval = float(nonzero[0] + 1) if len(nonzero) else 1.0
    since = 1
    out[0] = debias * size / interval
    for t, value in enumerate(y):
        if value > 0:
            size = alpha * value + (1 - alpha) * size
            interval = alpha * since + (1 - alpha) * interval
            since = 1
        else:
            since += 1
        out[t + 1] = debias * size / interval
    return out


def tsb(y: Series, alpha: float, beta: float) -> Series:
    """Teunter-Syntetos-Babai: the demand probability is updated every day, so the forecast
    decays when demand stops (Croston's does not)."""
    out = np.empty(len(y) + 1)
    nonzero = np.flatnonzero(y)
    size = y[nonzero].mean() if len(nonzero) else 0.0
    probability = len(nonzero) / len(y) if len(y) else 0.0
    out[0] = probability * size
    for t, value in enumerate(y):
        occurred = 1.0 if value > 0 else 0.0
        probability = beta * occurred + (1 - beta) * probability
        if value > 0:
            size = alpha * value + (1 - alpha) * size
        out[t + 1] = probability * size
    return out


def candidates() -> dict[str, Callable[[Series], Series]]:
    methods: dict[str, Callable[[Series], Series]] = {}
    for a in ALPHAS:
        methods[f"ses(alpha={a})"] = functools.partial(ses, alpha=a)
        methods[f"croston(alpha={a})"] = functools.partial(croston, alpha=a)
        methods[f"sba(alpha={a})"] = functools.partial(croston, alpha=a, debias=1 - a / 2)
        methods[f"tsb(alpha={a},beta={a})"] = functools.partial(tsb, alpha=a, beta=a)
    return methods


def forecast(history: Sequence[float], holdout_days: int | None = None) -> Forecast | None:
    """The best forecast for this series, or None when the history is too short to judge."""
    y = np.asarray(history, dtype=np.float64)
    if len(y) < MIN_HISTORY_DAYS or not y.any():
        return None
    holdout = holdout_days or max(7, len(y) // 5)
    train, test = y[:-holdout], y[-holdout:]
    if not train.any():
        train, test = y, y  # demand only recently: judge in-sample
    best_name, best_error = "", math.inf
    methods = candidates()
    for name, method in methods.items():
        error = float(np.abs(test - method(train)[-1]).mean())
        if error < best_error - 1e-12:
            best_name, best_error = name, error
    fitted = methods[best_name](y)
    residuals = y - fitted[:-1]
    return Forecast(
        method=best_name,
        daily_demand=float(max(0.0, fitted[-1])),
        demand_sd=float(np.sqrt(np.mean(residuals[1:] ** 2))) if len(y) > 1 else 0.0,
        holdout_mae=best_error,
        history_days=len(y),
    )

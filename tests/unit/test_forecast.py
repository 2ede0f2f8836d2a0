"""Each forecast method recovers the parameters of series made to know them."""

from __future__ import annotations

import numpy as np
import pytest

from services.replenisher.forecast import cap_outliers, croston, forecast, forecast_many, ses, tsb


def intermittent(days: int, probability: float, mean_size: float, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    occurs = rng.random(days) < probability
    sizes = rng.poisson(mean_size - 1, days) + 1
    return np.where(occurs, sizes, 0).astype(np.float64)


def test_ses_recovers_the_mean_of_steady_demand() -> None:
    y = np.random.default_rng(2).poisson(12, 400).astype(np.float64)
    assert ses(y, 0.05)[0, -1] == pytest.approx(12, rel=0.1)


def test_croston_recovers_size_over_interval_and_sba_removes_its_bias() -> None:
    y = intermittent(3000, 0.25, 6.0)
    true_rate = 0.25 * 6.0
    assert croston(y, 0.05)[0, -1] == pytest.approx(true_rate, rel=0.2)
    assert croston(y, 0.05, 1 - 0.05 / 2)[0, -1] == pytest.approx(true_rate, rel=0.2)


def test_tsb_recovers_probability_times_size_and_decays_when_demand_stops() -> None:
    y = intermittent(3000, 0.3, 4.0, seed=3)
    assert tsb(y, 0.05, 0.05)[0, -1] == pytest.approx(0.3 * 4.0, rel=0.2)
    stopped = np.concatenate([y, np.zeros(120)])
    assert tsb(stopped, 0.05, 0.05)[0, -1] < 0.05
    assert croston(stopped, 0.05)[0, -1] == pytest.approx(croston(y, 0.05)[0, -1])


def test_the_chosen_forecast_is_close_to_the_true_rate_with_a_spread() -> None:
    y = intermittent(365, 0.2, 5.0, seed=4)
    result = forecast(list(y))
    assert result is not None
    assert result.daily_demand == pytest.approx(1.0, rel=0.35)
    assert result.demand_sd > 0
    assert result.history_days == 365


def test_a_series_too_short_or_empty_has_no_forecast() -> None:
    assert forecast([1.0] * 5) is None
    assert forecast([0.0] * 60) is None


def test_many_series_at_once_give_what_each_gives_alone() -> None:
    histories = [list(intermittent(n, 0.2 + n / 1000, 4.0, seed=n)) for n in (30, 90, 200)]
    together = forecast_many(histories)
    alone = [forecast(h) for h in histories]
    for a, b in zip(together, alone, strict=True):
        assert a is not None
        assert b is not None
        assert a.method == b.method
        assert (a.daily_demand, a.demand_sd, a.holdout_mae) == pytest.approx(
            (b.daily_demand, b.demand_sd, b.holdout_mae)
        )


def test_a_wholesale_spike_is_capped_at_twice_the_median_demand_day() -> None:
    y = np.array([[np.nan, 4, 0, 6, 0, 5, 3000, 0, 4], [0, 36, 0, 0, 576, 0, 0, 0, 0]])
    capped = cap_outliers(y)
    assert np.isnan(capped[0, 0])
    assert list(capped[0, 1:]) == [4, 0, 6, 0, 5, 10, 0, 4]  # lower median of 4,4,5,6,3000: 5
    assert list(capped[1]) == [0, 36, 0, 0, 72, 0, 0, 0, 0]  # of two demand days, the smaller
    assert cap_outliers(np.zeros((1, 3))).tolist() == [[0, 0, 0]]


def test_one_spike_moves_neither_the_level_nor_the_spread_nor_the_demand_size_much() -> None:
    y = intermittent(120, 0.5, 6.0, seed=5)
    spiked = y.copy()
    spiked[-10] = 2000
    calm, wild = forecast(list(y)), forecast(list(spiked))
    assert calm is not None
    assert wild is not None
    assert wild.daily_demand == pytest.approx(calm.daily_demand, rel=0.3)
    assert wild.demand_sd == pytest.approx(calm.demand_sd, rel=0.3)
    assert wild.demand_size == pytest.approx(calm.demand_size, rel=0.1)
    assert calm.demand_size == pytest.approx(float(np.mean(y[y > 0])), rel=0.05)

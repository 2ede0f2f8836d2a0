"""The ``lines`` policy's model: lead-time demand, fill by reorder point, the allocation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from services.replenisher.lines import (
    BLOCK_CELLS,
    PRICES,
    LineDemand,
    LinePlanner,
    LineSettings,
    PriceTable,
    allocate,
    best_point,
    best_points,
    choices,
    compound_poisson,
    curve,
    estimate,
    figures_at,
    figures_chosen,
    order_quantity_for,
    order_scale,
    regular_size,
)

# review_days 0: order-up-to is the reorder point plus one (a base stock level r + 1)
BASE_STOCK = LineSettings(lead_time_days=4.0, review_days=0.0, check_days=0.0)


def poisson_cdf(k: int, mean: float) -> float:
    return sum(math.exp(-mean) * mean**i / math.factorial(i) for i in range(k + 1))


def test_lead_time_demand_of_unit_lines_is_poisson() -> None:
    pmf = compound_poisson(3.0, [1], [1.0], 40)
    expected = [math.exp(-3.0) * 3.0**k / math.factorial(k) for k in range(40)]
    assert pmf == pytest.approx(expected, abs=1e-9)


def test_lead_time_demand_of_mixed_sizes_has_the_compound_moments() -> None:
    rate, sizes, weights = 2.5, [1, 3, 12], [0.5, 0.3, 0.2]
    pmf = compound_poisson(rate, sizes, weights, 400)
    units = np.arange(400)
    mean = rate * sum(s * w for s, w in zip(sizes, weights, strict=True))
    variance = rate * sum(s * s * w for s, w in zip(sizes, weights, strict=True))
    assert pmf.sum() == pytest.approx(1.0, abs=1e-9)
    assert float(units @ pmf) == pytest.approx(mean, rel=1e-6)
    assert float(((units - mean) ** 2) @ pmf) == pytest.approx(variance, rel=1e-6)


def test_leaving_sizes_out_thins_the_arrivals() -> None:
    """Weights summing to less than one: only the kept sizes arrive, at the thinned rate."""
    pmf = compound_poisson(4.0, [1, 50], [0.5, 0.0], 60)
    assert pmf[:20] == pytest.approx(compound_poisson(2.0, [1], [1.0], 60)[:20], abs=1e-9)


@pytest.mark.parametrize("rate", [0.2, 1.0, 3.0])
def test_fill_of_unit_lines_at_a_base_stock_is_the_poisson_chance(rate: float) -> None:
    """Base stock S = r + 1, lines of one unit arriving at ``rate`` a day, lead time 4 days: a
    line is served when fewer than S units were asked in the lead time before it."""
    c = curve(LineDemand(rate, (1,), (1.0,)), BASE_STOCK)
    assert c.order_qty == 1
    for r in range(0, len(c.fill) - 1):
        assert c.fill[r + 1] == pytest.approx(poisson_cdf(r, rate * 4.0), abs=1e-7)
    assert c.fill[-1] > 0.999  # the grid reaches past where lines go unserved
    assert c.fill[0] == 0.0  # r = −1: no stock kept


def test_fill_of_lines_of_two_needs_two_units_left() -> None:
    c = curve(LineDemand(1.0, (2,), (1.0,)), BASE_STOCK)
    # stock S = r + 1 serves a line of 2 when D (even) ≤ S − 2, i.e. N ≤ (S − 2) / 2 lines
    for r in range(1, len(c.fill) - 1):
        s = r + 1
        assert c.fill[r + 1] == pytest.approx(poisson_cdf((s - 2) // 2, 4.0), abs=1e-7)


def test_units_held_grow_by_one_per_unit_once_stockouts_are_rare() -> None:
    c = curve(LineDemand(1.0, (1,), (1.0,)), BASE_STOCK)
    assert np.all(np.diff(c.held[1:]) >= -1e-12)
    assert c.held[-1] - c.held[-2] == pytest.approx(1.0, abs=1e-3)
    # E[(S − D)⁺] at S = 1 is P(D = 0)
    assert c.held[1] == pytest.approx(math.exp(-4.0), abs=1e-9)


SMALL = LineDemand(1.0, (1,), (1.0,))  # a line a day, one unit each
LARGE = LineDemand(1.0, (10,), (1.0,))  # a line a day, ten units each
RARE = LineDemand(0.05, (1,), (1.0,))  # a line every twenty days, one unit


def test_the_next_unit_goes_where_it_serves_the_most_lines() -> None:
    """Three items, base stock, lead time 4 days. Hand-checked marginal lines per day per unit
    held of the first unit (r = 0 against no stock): the busy item A (a one-unit line a day)
    sells it at once, so it serves rate × P(D=0) / E[(1−D)⁺] = 1 line a day per unit held; the
    rare item C (a line every 20 days) holds it most of the time: 0.05; the ten-unit item B's
    first unit serves nothing. So stock goes to A first, C next, B last."""
    demands = {("A", "L"): SMALL, ("B", "L"): LARGE, ("C", "L"): RARE}
    curves = {k: curve(d, BASE_STOCK) for k, d in demands.items()}
    marginal = {k: c.rate * c.fill[1] / c.held[1] for k, c in curves.items()}
    assert marginal[("A", "L")] == pytest.approx(1.0)
    assert marginal[("C", "L")] == pytest.approx(0.05)
    assert marginal[("B", "L")] == 0.0
    lean = allocate(demands, LineSettings(**{**BASE_STOCK.__dict__, "budget_units": 1.0}))
    assert lean.figures[("A", "L")].reorder_point >= 0
    assert lean.figures[("B", "L")].reorder_point == -1  # ten units to serve one line
    assert lean.figures[("C", "L")].reorder_point == -1
    rich = allocate(demands, LineSettings(**{**BASE_STOCK.__dict__, "budget_units": 200.0}))
    assert rich.figures[("B", "L")].reorder_point > 10
    assert rich.expected_fill > lean.expected_fill


@pytest.mark.parametrize("budget", [0.0, 3.0, 25.0, 80.0, 500.0])
def test_a_budget_is_never_exceeded(budget: float) -> None:
    demands = {
        (f"S{i}", "L"): LineDemand(
            0.1 + i / 7, (1, 2, 6)[: 1 + i % 3], (1.0, 0.0, 0.0)[: 1 + i % 3]
        )
        for i in range(12)
    }
    demands = {
        k: LineDemand(d.rate, d.sizes, tuple(1 / len(d.sizes) for _ in d.sizes))
        for k, d in demands.items()
    }
    allocation = allocate(demands, LineSettings(budget_units=budget))
    assert allocation.expected_units <= budget + 1e-9
    assert sum(f.expected_units for f in allocation.figures.values()) <= budget + 1e-9


def test_a_target_fill_is_met_with_the_least_stock_the_prices_allow() -> None:
    demands = {("A", "L"): SMALL, ("B", "L"): LARGE, ("C", "L"): RARE}
    for target in (0.5, 0.8, 0.95):
        allocation = allocate(demands, LineSettings(target_fill=target))
        assert allocation.expected_fill >= target
    table = PriceTable()
    for d in demands.values():
        table.add(curve(d, LineSettings()))
    fills = table.served / table.lines
    assert np.all(np.diff(fills) <= 1e-12)  # dearer stock, less fill


def test_a_new_items_rate_starts_from_the_pool_not_its_first_line() -> None:
    settings = LineSettings()
    # three lines on its first day: the first is why it is known, not evidence of a rate
    alone = estimate([100, 100, 100], [2, 2, 2], 100, 100, settings)
    pooled = estimate([100, 100, 100], [2, 2, 2], 100, 100, settings, prior_rate=0.5)
    assert alone.rate == pytest.approx(2 / (1 + settings.prior_days * 2 ** (-1 / 28)))
    assert pooled.rate > alone.rate
    # with weeks of its own history the prior hardly matters
    days = list(range(100, 160))
    long = estimate(days, [1] * 60, 159, 100, settings, prior_rate=1.5)
    assert long.rate == pytest.approx(1.0, rel=0.05)


def test_a_new_item_borrows_sizes_from_the_same_sku_elsewhere() -> None:
    planner = LinePlanner(LineSettings())
    for day in range(700_000, 700_060):
        planner.add_line(("MUG", "UK"), day, 24)
    planner.add_line(("MUG", "EU"), 700_059, 1)
    demand = planner.demand(("MUG", "EU"), 700_059)
    assert 24 in demand.sizes
    assert 1 in demand.sizes


def test_a_new_item_is_stocked_from_its_first_line_where_items_sell_daily() -> None:
    planner = LinePlanner(LineSettings(target_fill=0.9))
    for n in range(30):
        for day in range(700_000, 700_040):
            planner.add_line((f"OLD{n}", "UK"), day, 2)
    planner.plan(700_039)
    planner.add_line(("NEW", "UK"), 700_040, 2)
    figures = planner.figures(("NEW", "UK"), 700_040)
    assert figures is not None
    assert figures.reorder_point >= 2  # a request before it runs out, not after two weeks
    assert figures.lines_per_day == pytest.approx(1.0, rel=0.5)


@pytest.mark.parametrize("cv", [0.3, 0.8])
def test_an_uncertain_rate_keeps_the_mean_and_adds_its_variance(cv: float) -> None:
    """A gamma-distributed rate (negative binomial arrivals): the mean of the compound
    demand is unchanged, its variance grows by (cv × mean)²."""
    rate, sizes, weights = 2.5, [1, 3, 12], [0.5, 0.3, 0.2]
    pmf = compound_poisson(rate, sizes, weights, 2000, cv)
    units = np.arange(2000)
    mean = rate * sum(s * w for s, w in zip(sizes, weights, strict=True))
    variance = rate * sum(s * s * w for s, w in zip(sizes, weights, strict=True))
    assert pmf.sum() == pytest.approx(1.0, abs=1e-9)
    assert float(units @ pmf) == pytest.approx(mean, rel=1e-6)
    assert float(((units - mean) ** 2) @ pmf) == pytest.approx(
        variance + (cv * mean) ** 2, rel=1e-6
    )


def test_unit_lines_at_an_uncertain_rate_are_negative_binomial() -> None:
    rate, cv = 3.0, 0.5
    k = 1 / cv**2
    p = k / (k + rate)
    pmf = compound_poisson(rate, [1], [1.0], 80, cv)
    expected = [
        math.exp(math.lgamma(k + n) - math.lgamma(k) - math.lgamma(n + 1)) * p**k * (1 - p) ** n
        for n in range(80)
    ]
    assert pmf == pytest.approx(expected, abs=1e-9)


def test_a_rate_read_from_few_lines_is_less_certain_than_one_read_from_many() -> None:
    settings = LineSettings(rate_cv=0.5)
    few = estimate([1.0, 9.0, 18.0], [2, 2, 2], 28.0, 1.0, settings)
    many = estimate([1.0 + d / 4 for d in range(108)], [2] * 108, 28.0, 1.0, settings)
    assert few.cv > many.cv > 0.5
    assert few.cv > 0.9  # two lines counted: the estimate's own error dominates
    assert many.cv < 0.6


def test_what_a_pass_keeps_of_a_curve_gives_the_same_figures_at_every_price() -> None:
    rng = np.random.default_rng(3)
    for _ in range(30):
        sizes = tuple(sorted({int(x) for x in rng.choice([1, 2, 3, 6, 12, 24, 100], 3)}))
        weights = rng.random(len(sizes))
        demand = LineDemand(
            float(rng.uniform(0.02, 4.0)), sizes, tuple(weights / weights.sum()), cv=0.6
        )
        c = curve(demand, LineSettings())
        ch = choices(c, demand)
        for price in PRICES:
            assert figures_chosen(ch, float(price)) == figures_at(
                c, best_point(c, float(price)), demand
            )
        assert figures_chosen(ch, float(PRICES[-1]) * 1e6) is None  # off the grid
        full, kept = PriceTable(), PriceTable()
        full.add(c)
        kept.add(ch)
        assert kept.served.tolist() == full.served.tolist()
        assert kept.units.tolist() == full.units.tolist()


def test_the_best_points_of_a_long_grid_are_weighed_in_blocks_and_come_out_the_same() -> None:
    # a line of thousands of units: a grid of tens of thousands, so the prices go in blocks
    c = curve(LineDemand(0.5, (1, 12, 4000), (0.6, 0.3, 0.1), cv=0.5), LineSettings())
    assert len(c.held) * len(PRICES) > 4 * BLOCK_CELLS
    whole = np.argmax(c.rate * c.fill[None, :] - PRICES[:, None] * c.held[None, :], axis=1)
    assert best_points(c).tolist() == whole.tolist()
    assert [best_point(c, p) for p in PRICES] == whole.tolist()


def test_items_all_alike_order_the_review_periods_demand() -> None:
    settings = LineSettings(review_days=7.0)
    demand = LineDemand(rate=2.0, sizes=(3,), weights=(1.0,))
    scale = order_scale(np.full(5, 2.0), np.full(5, 6.0), settings.review_days)
    assert scale == pytest.approx(7.0 * math.sqrt(6.0))
    assert order_quantity_for(demand, settings, scale) == order_quantity_for(demand, settings, None)
    assert order_quantity_for(demand, settings, None) == 42


def test_the_scale_keeps_the_requests_and_holds_less_cycle_stock() -> None:
    # lines a day and units a day of a mixed catalogue: busy, middling, slow, once a month
    rates = np.array([5.0, 1.0, 0.3, 0.2, 0.03])
    daily = np.array([100.0, 6.0, 0.6, 2.0, 0.1])
    scale = order_scale(rates, daily, 7.0)
    assert scale is not None
    # about min(lines a day, units a day / Q) requests a day, as ordering weekly would make
    weekly = np.minimum(rates, 1 / 7).sum()
    assert np.minimum(rates, np.sqrt(daily) / scale).sum() == pytest.approx(weekly, rel=1e-9)
    q = scale * np.sqrt(daily)
    assert q[0] < 7 * daily[0]  # the busiest item is ordered more often than weekly
    assert q[3] > 7 * daily[3]  # a slow one less often
    assert q.sum() < (7 * daily).sum()  # and the cycle stock is smaller


def test_no_scale_without_demand_or_without_a_review_period() -> None:
    assert order_scale(np.zeros(3), np.zeros(3), 7.0) is None
    assert order_scale(np.ones(3), np.ones(3), 0.0) is None


def test_a_pass_sets_the_scale_that_items_new_since_are_planned_at() -> None:
    settings = LineSettings()
    planner = LinePlanner(settings)
    for day in range(1, 60):
        planner.add_line(("busy", "UK"), day, 10)
        planner.add_line(("busy", "UK"), day, 12)
        if day % 5 == 0:
            planner.add_line(("slow", "UK"), day, 2)
    planner.plan(59)
    expected = order_scale(
        np.array([planner.demand(i, 59).rate for i in sorted(planner.histories)]),
        np.array(
            [
                planner.demand(i, 59).rate * regular_size(planner.demand(i, 59))
                for i in sorted(planner.histories)
            ]
        ),
        settings.review_days,
    )
    assert planner.scale == pytest.approx(expected)
    planner.add_line(("new", "UK"), 60, 4)
    found = planner.figures(("new", "UK"), 60)
    assert found is not None
    assert found.reorder_point >= 0
    demand = planner.demand(("new", "UK"), 60)
    assert found.order_up_to - found.reorder_point == order_quantity_for(
        demand, settings, planner.scale
    )

"""The ``lines`` policy: stock placed where it serves the most order lines per unit held.

Pure: no I/O. What is measured is the share of order lines that available stock covers when
they are placed, against the units held. So the model is of lines, not of daily units:

- **Demand as lines.** Each item's order lines arrive at a rate (lines per day, smoothed
  exponentially over its history in event time) and each line asks a size drawn from the sizes
  the item's lines asked before (weighted by recency). A new item's few days are pooled with
  what is known: the same sku's lines at the other locations and the typical rate of the
  location's items.
- **Lead-time demand as a distribution.** Demand over the protection interval is compound
  (arrivals × sizes), computed exactly on a grid by FFT, not assumed normal. The arrivals are
  Poisson with an uncertain rate (negative binomial): order lines come in bursts, and an
  item's weekly count of lines varies about twice as much as Poisson's (``rate_cv``, 0.5,
  read from the first four months of the shipped history), and a rate estimated from few
  lines is uncertain by itself (one over the lines counted, in the squared coefficient of
  variation).
- **Fill from the distribution.** With reorder point ``r`` and order-up-to ``r + Q``, the
  inventory position just after a decision lies in ``(r, r + Q]``; stock on hand when a line of
  size ``q`` arrives is that position less the lead time's demand, so the chance the line is
  served is ``P(position − D ≥ q)``, averaged over sizes and positions. Units held are
  ``E[(position − D)⁺]``.
- **Order quantities by the square root of demand.** ``Q`` is proportional to the square root
  of an item's units a day, scaled so that all items together raise as many requests as
  ordering each one a review period's demand would: for the same number of requests, that is
  the least cycle stock (the economic order quantity with one cost per request).
- **Stock across items by marginal lines per unit.** Each item's reorder point maximises
  ``lines served − θ × units held``; one price ``θ`` for every item is set so that the expected
  line fill over all items meets a target (or the expected units meet a budget). A unit goes
  where it serves the most lines: an item sold in rare huge lines gets little stock, an item
  sold in many small lines gets more.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]

MAX_GRID = 1 << 15  # units: sizes beyond it are never planned for (they would need the stock)
PRICES = np.geomspace(1e-5, 2.0, 96)  # θ, lines served per day per unit held, low to high
BLOCK_CELLS = 1 << 17  # prices × grid units weighed at once when choosing points (1 MB)
QUANTILES = (0.5, 0.9, 0.99)
QUANTILE_NAMES = tuple(f"p{round(p * 100)}" for p in QUANTILES)


DEFAULT_TARGET_FILL = 0.92
"""The default expected line fill. The plan expects it; realized fill with backorders (the
ledger's world) runs below it on real history, whose demand moves: chosen on December to March
of the shipped history as the smallest target, in steps of 0.01, whose backordered line fill from
a month after the first day on (as make demo reads it) reaches 0.85 (0.91: 0.849, 0.92: 0.860)."""


@dataclass(frozen=True)
class LineSettings:
    """The settings the ``lines`` policy decides by (the same for every item of a run)."""

    lead_time_days: float = 7.0
    review_days: float = 7.0  # order-up-to covers this many days of demand beyond the point
    rate_cv: float = 0.5  # how much an item's rate of lines moves from week to week
    check_days: float = 1.0  # how often the position is looked at (the ledger: continuously)
    rate_half_life_days: float = 28.0  # line arrivals: recent weeks count more
    size_half_life_days: float = 120.0  # line sizes: a longer memory
    prior_days: float = 7.0  # a new item's rate: its own days plus this many at the prior rate
    prior_lines: float = 3.0  # a new item's sizes: own lines plus this many lines' worth pooled
    target_fill: float = DEFAULT_TARGET_FILL  # expected line fill over all items (or a budget)
    budget_units: float | None = None  # expected units held over all items, instead of a target


@dataclass(frozen=True)
class LineDemand:
    """An item's demand as order lines: arrivals per day and the sizes lines ask."""

    rate: float  # expected order lines per day
    sizes: tuple[int, ...] = ()  # distinct line sizes, ascending
    weights: tuple[float, ...] = ()  # their probabilities (sum to 1)
    history_days: float = 0.0
    cv: float = 0.0  # the rate's coefficient of variation: 0 for Poisson arrivals

    @property
    def mean_size(self) -> float:
        return float(np.dot(self.sizes, self.weights)) if self.sizes else 0.0

    @property
    def daily_units(self) -> float:
        return self.rate * self.mean_size


@dataclass(frozen=True)
class ItemCurve:
    """One item's expected fill and units held at every reorder point ``r = -1 … len − 2``
    (``-1``: no stock is kept; nothing is requested before the position goes negative)."""

    rate: float
    order_qty: int
    fill: Array  # expected share of the item's lines served, by reorder point
    held: Array  # expected units on hand, by reorder point
    ltd: Array  # pmf of lead-time demand (units 0 … len − 1)


@dataclass(frozen=True)
class LineFigures:
    """The figures one item is decided by."""

    reorder_point: int
    order_up_to: int
    expected_fill: float
    expected_units: float
    lines_per_day: float
    mean_line_size: float
    daily_demand: float
    ltd_quantiles: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Allocation:
    price: float  # θ: the lines per day a unit held must serve at the margin
    figures: dict[tuple[str, str], LineFigures]
    expected_fill: float
    expected_units: float


# --- demand estimates -----------------------------------------------------------------------


def decayed(ages: Array, half_life: float) -> Array:
    return np.exp2(-np.asarray(ages, dtype=np.float64) / half_life)


def estimate(
    line_days: Sequence[float],
    line_sizes: Sequence[int],
    today: float,
    first_day: float,
    settings: LineSettings,
    prior_rate: float = 0.0,
    prior_sizes: Sequence[int] = (),
) -> LineDemand:
    """An item's line demand as of ``today`` (days as numbers, e.g. ordinals; ``today`` is the
    last day seen, included) from its lines (the day each arrived and its size), pooled with a
    prior rate and prior sizes where its own history is short."""
    days_seen = max(today - first_day + 1.0, 1.0)
    ages = today - np.asarray(line_days, dtype=np.float64)
    # Arrivals: an exponentially weighted count over the item's days, plus prior pseudo-days.
    # The item's first line is not counted: it is why the item is known at all, and counting
    # it would make every item look busy on its first day.
    w_lines = float(decayed(ages, settings.rate_half_life_days).sum()) if len(ages) else 0.0
    if len(ages):
        w_lines -= float(decayed(np.array([today - first_day]), settings.rate_half_life_days)[0])
    exposure = _decayed_exposure(days_seen, settings.rate_half_life_days)
    prior_weight = settings.prior_days * 2.0 ** (-days_seen / settings.rate_half_life_days)
    counted = max(w_lines, 0.0) + prior_weight * prior_rate
    rate = counted / (exposure + prior_weight)
    # How uncertain the rate is: its own week-to-week movement, and the estimate's error,
    # which shrinks with the lines counted (a gamma-distributed rate with that many events).
    cv = math.sqrt(settings.rate_cv**2 + 1.0 / max(counted, 1.0))
    # Sizes: weighted by recency; a new item's few lines pooled with the prior sizes.
    weights: dict[int, float] = {}
    if len(ages):
        for size, w in zip(line_sizes, decayed(ages, settings.size_half_life_days), strict=True):
            weights[int(size)] = weights.get(int(size), 0.0) + float(w)
    own = sum(weights.values())
    if prior_sizes and own < settings.prior_lines:
        share = (settings.prior_lines - own) / len(prior_sizes)
        for size in prior_sizes:
            weights[int(size)] = weights.get(int(size), 0.0) + share
    total = sum(weights.values())
    sizes = tuple(sorted(s for s in weights if s > 0))
    return LineDemand(
        rate=float(rate),
        sizes=sizes,
        weights=tuple(weights[s] / total for s in sizes) if total else (),
        history_days=days_seen,
        cv=cv,
    )


def _decayed_exposure(days: float, half_life: float) -> float:
    """Σ over the item's days (ages 0 … days−1) of 2^(−age / half_life)."""
    ratio = 2.0 ** (-1.0 / half_life)
    return float((1 - ratio**days) / (1 - ratio))


# --- lead-time demand and the fill curve ----------------------------------------------------


def compound_poisson(
    rate: float, sizes: Sequence[int], weights: Sequence[float], n: int, cv: float = 0.0
) -> Array:
    """The pmf of Σ sizes over the arrivals of ``rate`` lines on average, on units 0 … n − 1
    (mass beyond n − 1, if any, is left out). The arrivals are Poisson, or, with ``cv`` > 0,
    Poisson with a gamma-distributed rate of that coefficient of variation (negative binomial:
    variance ``rate + (cv × rate)²``). Computed by FFT on a grid long enough not to wrap."""
    pmf_size = np.zeros(n)
    for s, w in zip(sizes, weights, strict=True):
        if 0 < s < n:
            pmf_size[s] += w
    if rate <= 0 or not pmf_size.any():
        out = np.zeros(n)
        out[0] = 1.0
        return out
    mean = rate * float(np.dot(np.arange(n), pmf_size))
    second = rate * float(np.dot(np.arange(n) ** 2, pmf_size)) + (cv * mean) ** 2
    span = int(mean + 12 * math.sqrt(second) + 2 * max(s for s in sizes if s < n) + 16)
    m = 1 << max(6, (max(span, n) - 1).bit_length())
    padded = np.zeros(m)
    padded[:n] = pmf_size
    # sizes left out (weights summing to less than 1) thin the arrivals: exp(λ(φ(t) − Σp)),
    # or for a gamma rate of shape k, (1 + (λ / k)(Σp − φ(t)))^(−k)
    if cv > 0:
        shape = 1.0 / (cv * cv)
        spectrum = np.exp(
            -shape * np.log(1 + (rate / shape) * (pmf_size.sum() - np.fft.rfft(padded)))
        )
    else:
        spectrum = np.exp(rate * (np.fft.rfft(padded) - pmf_size.sum()))
    pmf = np.fft.irfft(spectrum, m)[:n]
    pmf = np.clip(pmf, 0.0, None)
    total = pmf.sum()  # the grid's share: 1 but for the far tail
    return np.asarray(pmf / total if total > 0 else pmf)


def grid_length(demand: LineDemand, horizon: float, order_qty: int) -> int:
    """How many units the curves cover: well past lead-time demand plus a cycle and a line."""
    mean = demand.rate * horizon * demand.mean_size
    second = demand.rate * horizon * float(np.dot(np.square(demand.sizes), demand.weights))
    largest = demand.sizes[-1] if demand.sizes else 1
    second += (demand.cv * mean) ** 2
    need = mean + 6 * math.sqrt(second) + largest + order_qty + 2
    return int(max(min(MAX_GRID, need), order_qty + 8))


def median_size(demand: LineDemand) -> int:
    if not demand.sizes:
        return 0
    cumulative = np.cumsum(demand.weights)
    return demand.sizes[min(int(np.searchsorted(cumulative, 0.5 - 1e-12)), len(demand.sizes) - 1)]


def regular_size(demand: LineDemand) -> float:
    """The mean line size with each size capped at twice the median: one wholesale line of
    thousands among lines of dozens must not set how much is ordered at a time."""
    if not demand.sizes:
        return 0.0
    return float(np.dot(np.minimum(demand.sizes, 2 * median_size(demand)), demand.weights))


def regular_daily_units(demand: LineDemand) -> float:
    """Units a day of regular lines (:func:`regular_size`): what order quantities follow."""
    return demand.rate * regular_size(demand)


def order_quantity_for(demand: LineDemand, settings: LineSettings, scale: float | None) -> int:
    """Order-up-to minus reorder point, at least one: ``scale × √(units a day)`` of regular
    lines (:func:`regular_daily_units`), the scale from :func:`order_scale`; without one
    (before a pass has set it), the review period's expected units."""
    daily = regular_daily_units(demand)
    units = settings.review_days * daily if scale is None else scale * math.sqrt(daily)
    return int(min(MAX_GRID // 4, max(1, round(units))))


def order_scale(rates: Array, daily_units: Array, review_days: float) -> float | None:
    """The scale of order quantities (:func:`order_quantity_for`) that spreads the requests of
    ordering every item once a review period over the items by the square root of their demand.

    For a fixed number of requests, the cycle stock ``Σ Q / 2`` is least when each item's ``Q``
    is proportional to the square root of its units a day (the economic order quantity with
    one cost of a request for every item): a busy item is ordered more often than once a
    period, a slow one less often. An item requests about ``min(lines a day, units a day / Q)``
    times a day (once per line at most), so the scale ``c`` solves
    ``Σ min(λ, √d / c) = Σ min(λ, 1 / review_days)``: as many requests as the review period's
    quantities. Items all alike get the review period's quantities back. None without demand
    or without a review period (every item then orders up to one above its point)."""
    lam = np.asarray(rates, dtype=np.float64)
    root = np.sqrt(np.asarray(daily_units, dtype=np.float64))
    busy = (lam > 0) & (root > 0)
    lam, root = lam[busy], root[busy]
    if not len(lam) or review_days <= 0:
        return None
    want = float(np.minimum(lam, 1.0 / review_days).sum())
    lo, hi = 1e-6, 1e9  # requests fall as the scale rises: bisect on a log scale
    for _ in range(80):
        mid = math.sqrt(lo * hi)
        if float(np.minimum(lam, root / mid).sum()) > want:
            lo = mid
        else:
            hi = mid
    return math.sqrt(lo * hi)


def curve(demand: LineDemand, settings: LineSettings, scale: float | None = None) -> ItemCurve:
    """Expected fill and units held at every reorder point, for an (r, r + Q) policy, ``Q``
    by :func:`order_quantity_for` at ``scale``."""
    q = order_quantity_for(demand, settings, scale)
    horizon = settings.lead_time_days + settings.check_days / 2
    n = grid_length(demand, horizon, q)
    ltd = compound_poisson(demand.rate * horizon, demand.sizes, demand.weights, n, demand.cv)
    cdf = np.cumsum(ltd)
    # G(x) = Σ_q P(size = q) P(D ≤ x − q): the chance that stock x before the lead time's
    # demand still covers a line after it
    served = np.zeros(n)
    for size, w in zip(demand.sizes, demand.weights, strict=True):
        if 0 < size < n:
            served[size:] += w * cdf[: n - size]
    # E[(x − D)⁺] = Σ_{y < x} P(D ≤ y)
    on_hand = np.concatenate(([0.0], np.cumsum(cdf)[:-1]))
    # Position after a decision is uniform on r+1 … r+Q: average G and E[(x−D)⁺] over it.
    fill = _window_mean(served, q)
    held = _window_mean(on_hand, q)
    return ItemCurve(demand.rate, q, fill, held, ltd)


def _window_mean(values: Array, q: int) -> Array:
    """out[r + 1] = mean(values[r + 1 … r + q]) for r = −1 … len − q − 1 (so out has
    len(values) − q + 1 entries, r = −1 first), but 0 for r = −1: no stock is kept."""
    padded = np.concatenate((values, np.full(q, values[-1])))
    sums = np.concatenate(([0.0], np.cumsum(padded)))
    starts = np.arange(0, len(values) - q + 1)
    out = (sums[starts + q] - sums[starts]) / q
    out[0] = 0.0  # r = −1: nothing is requested before the position goes negative
    return np.asarray(out)


def best_point(c: ItemCurve, price: float) -> int:
    """The reorder point (index r + 1) that maximises lines served − price × units held."""
    return int(np.argmax(c.rate * c.fill - price * c.held))


def quantiles(ltd: Array) -> dict[str, int]:
    cdf = np.cumsum(ltd)
    at = np.searchsorted(cdf, np.array(QUANTILES) - 1e-12)
    return dict(zip(QUANTILE_NAMES, (int(x) for x in at), strict=True))


def figures_at(c: ItemCurve, index: int, demand: LineDemand) -> LineFigures:
    """The figures at reorder point ``index − 1``. An item not worth stocking (r = −1) orders
    up to 0: what its backorders need, and nothing to hold."""
    return _figures(
        index,
        c.order_qty,
        float(c.fill[index]),
        float(c.held[index]),
        (demand.rate, demand.mean_size, demand.daily_units),
        quantiles(c.ltd),
    )


def _figures(
    index: int,
    order_qty: int,
    fill: float,
    held: float,
    demand: tuple[float, float, float],
    ltd_quantiles: dict[str, int],
) -> LineFigures:
    """``demand``: lines per day, mean line size and units a day."""
    r = index - 1
    return LineFigures(
        reorder_point=r,
        order_up_to=r + order_qty if r >= 0 else 0,
        expected_fill=fill,
        expected_units=held,
        lines_per_day=demand[0],
        mean_line_size=demand[1],
        daily_demand=demand[2],
        ltd_quantiles=ltd_quantiles,
    )


def best_points(c: ItemCurve) -> NDArray[np.int64]:
    """The best reorder point (index r + 1, as :func:`best_point`) at every price on
    :data:`PRICES`."""
    # A few prices at a time: all 96 against a grid of 32,768 units took about 50 MB at once
    # (the objective and its temporaries), the planning pass's peak; the same arithmetic by
    # blocks keeps each under BLOCK_CELLS and picks the same points.
    served = c.rate * c.fill
    rows = max(1, BLOCK_CELLS // max(1, len(c.held)))
    best = np.empty(len(PRICES), dtype=np.int64)
    for at in range(0, len(PRICES), rows):
        objective = served[None, :] - PRICES[at : at + rows, None] * c.held[None, :]
        best[at : at + rows] = np.argmax(objective, axis=1)
    return best


# --- the allocation across items ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Choices:
    """What a planning pass keeps of an item's curve between setting the price and storing
    the figures. The best reorder point falls as the price rises, in runs of prices: per run
    (a row of ``runs``), its first price (an index into :data:`PRICES`), the reorder point
    (index r + 1) and the expected fill and units there; with the quantiles of lead-time demand
    and the item's demand, which the figures report. About 1 KB an item, where the curve is
    three arrays as long as the item's grid (often thousands of units)."""

    order_qty: int
    runs: Array  # columns: first price index, index r + 1, fill, units
    ltd_quantiles: tuple[int, ...]  # in the order of QUANTILE_NAMES
    demand: tuple[float, float, float]  # lines per day, mean line size, units a day

    @property
    def rate(self) -> float:
        return self.demand[0]

    def at_prices(self) -> tuple[Array, Array]:
        """Expected fill and units at every price on :data:`PRICES`."""
        counts = np.diff(np.append(self.runs[:, 0], len(PRICES))).astype(np.int64)
        return np.repeat(self.runs[:, 2], counts), np.repeat(self.runs[:, 3], counts)


def choices(c: ItemCurve, demand: LineDemand) -> Choices:
    """The curve's best point at every price on :data:`PRICES`."""
    best = best_points(c)
    starts = np.flatnonzero(np.diff(best, prepend=-1))
    chosen = best[starts]
    runs = np.column_stack((starts, chosen, c.fill[chosen], c.held[chosen])).astype(np.float64)
    return Choices(
        c.order_qty,
        runs,
        tuple(quantiles(c.ltd).values()),
        (demand.rate, demand.mean_size, demand.daily_units),
    )


def figures_chosen(ch: Choices, price: float) -> LineFigures | None:
    """:func:`figures_at` the price, from what was kept of the curve; None when the price is
    not on :data:`PRICES` (the curve is needed then)."""
    at = np.flatnonzero(np.equal(PRICES, price))
    if len(at) == 0:
        return None
    run = ch.runs[int(np.searchsorted(ch.runs[:, 0], at[0], side="right")) - 1]
    return _figures(
        int(run[1]),
        ch.order_qty,
        float(run[2]),
        float(run[3]),
        ch.demand,
        dict(zip(QUANTILE_NAMES, ch.ltd_quantiles, strict=True)),
    )


@dataclass
class PriceTable:
    """Per price θ on :data:`PRICES`: the expected lines served per day and units held over all
    items added so far. Items are added a chunk at a time, so any number of items fit."""

    lines: Array = field(default_factory=lambda: np.zeros(len(PRICES)))
    served: Array = field(default_factory=lambda: np.zeros(len(PRICES)))
    units: Array = field(default_factory=lambda: np.zeros(len(PRICES)))

    def add(self, c: ItemCurve | Choices) -> None:
        if isinstance(c, Choices):
            fill, held = c.at_prices()
        else:
            best = best_points(c)
            fill, held = c.fill[best], c.held[best]
        self.lines += c.rate
        self.served += c.rate * fill
        self.units += held

    def price(self, settings: LineSettings) -> float:
        """With a budget, the lowest price (most stock) whose expected units stay within it;
        else the highest price (least stock) whose expected fill meets the target."""
        if settings.budget_units is not None:
            within = np.nonzero(self.units <= settings.budget_units + 1e-9)[0]
            return float(PRICES[within[0]] if len(within) else PRICES[-1] * 1e6)
        with np.errstate(invalid="ignore", divide="ignore"):
            fill = np.where(self.lines > 0, self.served / self.lines, 1.0)
        meets = np.nonzero(fill >= settings.target_fill - 1e-12)[0]
        return float(PRICES[meets[-1]] if len(meets) else PRICES[0])


def allocate(
    demands: dict[tuple[str, str], LineDemand], settings: LineSettings, scale: float | None = None
) -> Allocation:
    """Reorder points for every item, under one price of stock in lines served per unit, with
    order quantities at ``scale``."""
    curves = {k: curve(d, settings, scale) for k, d in demands.items() if d.rate > 0 and d.sizes}
    table = PriceTable()
    for c in curves.values():
        table.add(c)
    price = table.price(settings)
    return figures_for_price(curves, demands, price)


def scale_of(demands: Iterable[LineDemand], settings: LineSettings) -> float | None:
    """:func:`order_scale` over the demands given."""
    pairs = [(d.rate, regular_daily_units(d)) for d in demands]
    rates, daily = np.array(pairs, dtype=np.float64).reshape(-1, 2).T
    return order_scale(rates, daily, settings.review_days)


def figures_for_price(
    curves: dict[tuple[str, str], ItemCurve],
    demands: dict[tuple[str, str], LineDemand],
    price: float,
) -> Allocation:
    figures = {}
    lines = served = units = 0.0
    for key, c in curves.items():
        index = best_point(c, price)
        figures[key] = figures_at(c, index, demands[key])
        lines += c.rate
        served += c.rate * float(c.fill[index])
        units += float(c.held[index])
    return Allocation(price, figures, served / lines if lines else 1.0, units)


def pooled_rate(rates: Iterable[float]) -> float:
    """The prior rate of a new item: the median early rate of the items given."""
    values = sorted(r for r in rates if r > 0)
    return values[len(values) // 2] if values else 0.0


# --- the planner: line histories in, reorder points out -------------------------------------

Item = tuple[str, str]  # (sku, location)
EARLY_DAYS = 28  # a new item's early rate, for the prior of the next new items
MIN_POOL = 20  # items at least EARLY_DAYS old before their early rates are the prior


@dataclass
class LineHistory:
    """One item's order lines: the day (ordinal) each arrived and its size."""

    first_day: int
    days: list[int] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)

    def add(self, day: int, qty: int) -> None:
        self.days.append(day)
        self.sizes.append(qty)


class LinePlanner:
    """Line histories of every item, and the reorder points they give under one price.

    ``plan`` re-estimates every item and sets the price and the scale of order quantities anew
    (a full pass); between passes ``figures`` gives any item its figures at the current price
    and scale, a new item from its first line, pooled with the same sku's lines elsewhere and
    the location's early rates.
    """

    def __init__(self, settings: LineSettings) -> None:
        self.settings = settings
        self.histories: dict[Item, LineHistory] = {}
        self.locations: dict[str, list[str]] = {}  # sku → its locations, as first seen
        self.price: float | None = None
        self.scale: float | None = None  # of order quantities, set with the price
        self.current: dict[Item, LineFigures] = {}
        self.priors: dict[str, float] = {}
        self.planned_on: int | None = None

    def add_line(self, item: Item, day: int, qty: int) -> None:
        history = self.histories.get(item)
        if history is None:
            history = self.histories[item] = LineHistory(day)
            self.locations.setdefault(item[0], []).append(item[1])
        history.add(day, qty)

    def demand(self, item: Item, today: int) -> LineDemand:
        h = self.histories[item]
        other_sizes: list[int] = []
        if len(h.sizes) < self.settings.prior_lines:
            for location in self.locations.get(item[0], ()):
                if location != item[1]:
                    other_sizes.extend(self.histories[(item[0], location)].sizes[-20:])
        return estimate(
            h.days,
            h.sizes,
            today,
            h.first_day,
            self.settings,
            prior_rate=self.priors.get(item[1], 0.0),
            prior_sizes=other_sizes,
        )

    def plan(self, today: int) -> Allocation:
        """Every item re-estimated as of ``today``; the price set to meet the target."""
        self.priors = self._priors(today)
        demands = {item: self.demand(item, today) for item in sorted(self.histories)}
        scale = scale_of(demands.values(), self.settings)
        allocation = allocate(demands, self.settings, scale)
        self.price = allocation.price
        self.scale = scale
        self.current = dict(allocation.figures)
        self.planned_on = today
        return allocation

    def figures(self, item: Item, today: int) -> LineFigures | None:
        """The item's figures: from the last plan, or, for an item new since, estimated now
        at the current price (planned first if nothing was)."""
        found = self.current.get(item)
        if found is not None:
            return found
        if item not in self.histories:
            return None
        if self.price is None:
            self.plan(today)
            return self.current.get(item)
        demand = self.demand(item, today)
        if demand.rate <= 0 or not demand.sizes:
            return None
        c = curve(demand, self.settings, self.scale)
        found = figures_at(c, best_point(c, self.price), demand)
        self.current[item] = found
        return found

    def _priors(self, today: int) -> dict[str, float]:
        return location_priors(
            (
                (
                    location,
                    h.first_day,
                    sum(1 for d in h.days if d - h.first_day < EARLY_DAYS),
                    len(h.days),
                )
                for (_, location), h in self.histories.items()
            ),
            today,
        )


def location_priors(items: Iterable[tuple[str, int, int, int]], today: int) -> dict[str, float]:
    """Per location, the median rate of its items over their first weeks (items at least that
    old; while there are fewer than ``MIN_POOL``, every item over its days so far): what a new
    item there can be expected to sell before it has a history. First lines are not counted.

    ``items``: (location, first day, lines in its first ``EARLY_DAYS`` days, lines in all)."""
    early: dict[str, list[float]] = {}
    young: dict[str, list[float]] = {}
    for location, first, early_lines, lines in items:
        age = today - first + 1
        if age >= EARLY_DAYS:
            early.setdefault(location, []).append((early_lines - 1) / EARLY_DAYS)
        elif age >= 7:
            young.setdefault(location, []).append((lines - 1) / age)
    return {
        location: pooled_rate(
            early[location]
            if len(early.get(location, [])) >= MIN_POOL
            else young.get(location, []) + early.get(location, [])
        )
        for location in sorted(early.keys() | young.keys())
    }

"""Replenishment policies compared on an order history, in a closed loop, in event time.

Pure: no I/O. The caller supplies the history's input events in time order (as the replay
produces them) and the policy to try; the same rules the services run do the work (the ledger's
``apply_event``, the replenisher's ``decide`` and forecasts). Lost sales: an order line that
available stock cannot fully serve when it is placed is not taken (counted unfilled, and still
counted as demand). With ``backorders``, every line is taken, as the ledger takes it (the world
of ``make demo`` and ``--through-stack``): a line is counted filled when the stock available just
before it covered it, and one that was not drives available below zero until a receipt makes it
good. A request is confirmed at once and received ``lead_time_days`` later.

Set-up, the same for every policy: each item starts with ``opening_days`` of its demand (the
mean over its first ``baseline_days`` of the lines not cancelled, known in advance as a buyer
would estimate it), received one hour before its first order; the ``static`` and ``min_max``
baselines take their levels from that mean (reorder point: lead-time demand; order-up-to: lead
time plus review period), and so does ``normal`` until an item has two weeks of history to
forecast from. Requests are purchases, or transfers from another location of the sku with a
surplus, chosen as the replenisher chooses them.
"""

from __future__ import annotations

import math
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from services.ledger.domain.rules import apply_event
from services.ledger.domain.state import LedgerState
from services.replenisher.forecast import Forecast, forecast_many
from services.replenisher.lines import DEFAULT_TARGET_FILL, LinePlanner, LineSettings
from services.replenisher.policy import (
    Decision,
    Figures,
    Policy,
    Source,
    decide,
    figures_for,
    line_figures,
)
from shared.events.codec import INPUT_EVENTS

Item = tuple[str, str]  # (sku, location)
NAMESPACE = uuid.UUID("6b1f2e0a-7c55-4a8e-9d41-2b7f0c3e5a19")


@dataclass(frozen=True)
class SimConfig:
    policy: str = "lines"
    lead_time_days: int = 7
    review_days: int = 7
    service_level: float = 0.98  # normal
    baseline_days: int = 28
    opening_days: int = 14
    scale: float = 1.0  # static and min_max: their levels' days of cover, scaled
    target_fill: float = DEFAULT_TARGET_FILL  # lines: the expected line fill, all items
    budget_units: float | None = None  # lines: expected units held, instead of a target
    refresh_days: int = 7  # normal and lines: forecasts and the price, every so many days
    report_from: date | None = None  # figures from this day on are reported apart as well
    backorders: bool = False  # every line is taken (as the ledger does), not lost when short

    @property
    def setting(self) -> float:
        """The one knob of the policy that a frontier sweeps."""
        if self.policy == "lines":
            return self.budget_units if self.budget_units is not None else self.target_fill
        if self.policy == "normal":
            return self.service_level
        return self.scale

    def line_settings(self) -> LineSettings:
        return LineSettings(
            lead_time_days=self.lead_time_days,
            review_days=self.review_days,
            target_fill=self.target_fill,
            budget_units=self.budget_units,
        )


@dataclass
class SimResult:
    policy: str
    setting: float = 0.0
    days: int = 0
    items: int = 0
    order_lines: int = 0
    lines_filled: int = 0
    units_demanded: int = 0
    units_filled: int = 0
    requests: int = 0  # transfers included
    transfers: int = 0
    units_requested: int = 0  # purchased: transfers move units, they buy none
    stockout_item_days: int = 0
    held_unit_days: int = 0
    daily: list[dict[str, Any]] = field(default_factory=list)

    @property
    def fill_rate(self) -> float:
        return self.lines_filled / self.order_lines if self.order_lines else 0.0

    @property
    def average_units_held(self) -> float:
        return self.held_unit_days / self.days if self.days else 0.0

    def period(self, start: date | None = None, end: date | None = None) -> dict[str, Any]:
        """Line fill, average units held, requests and stockout item-days over the days from
        ``start`` to ``end`` (both included; open ends: the whole run)."""
        days = [
            d
            for d in self.daily
            if (start is None or d["day"] >= start.isoformat())
            and (end is None or d["day"] <= end.isoformat())
        ]
        if not days:
            return {"days": 0, "order_lines": 0, "line_fill_rate": 0.0, "average_units_held": 0.0}
        first = self.daily.index(days[0])
        before = self.daily[first - 1] if first else {"lines": 0, "filled": 0, "requests": 0}
        lines = days[-1]["lines"] - before["lines"]
        filled = days[-1]["filled"] - before["filled"]
        return {
            "from": days[0]["day"],
            "to": days[-1]["day"],
            "days": len(days),
            "order_lines": lines,
            "lines_filled": filled,
            "line_fill_rate": round(filled / lines, 4) if lines else 0.0,
            "average_units_held": round(sum(d["units_held"] for d in days) / len(days), 1),
            "requests": days[-1]["requests"] - before["requests"],
            "stockout_item_days": sum(d["stockouts"] for d in days),
        }

    def summary(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k != "daily"}
        out["line_fill_rate"] = round(self.fill_rate, 4)
        out["average_units_held"] = round(self.average_units_held, 1)
        return out


def _day(event: dict[str, Any]) -> date:
    return date.fromisoformat(event["occurred_at"][:10])


def _envelope(kind: str, identity: str, at: datetime, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid5(NAMESPACE, f"{kind}/{identity}")),
        "type": kind,
        "schema_version": 1,
        "occurred_at": at.isoformat().replace("+00:00", "Z"),
        "data": data,
    }


def baseline_demand(events: Iterable[dict[str, Any]], baseline_days: int) -> dict[Item, float]:
    """Each item's mean daily demand over its first ``baseline_days`` (the set-up estimate), of
    the lines the history does not cancel: a buyer's estimate nets out orders taken back (one
    line of 74,215 units, cancelled 16 minutes later, would otherwise set 37,108 units of
    opening stock that no policy can sell)."""
    events = list(events)
    cancelled: set[tuple[str, str]] = set()
    whole: set[str] = set()
    for e in events:
        if e["type"] == "order.cancelled":
            data = e["data"]
            if data.get("lines") is None:
                whole.add(data["order_id"])
            else:
                cancelled.update((data["order_id"], line["line_id"]) for line in data["lines"])
    first: dict[Item, date] = {}
    units: dict[Item, int] = defaultdict(int)
    for e in events:
        if e["type"] != "order.placed":
            continue
        day = _day(e)
        order = e["data"]["order_id"]
        for line in e["data"]["lines"]:
            item = (line["sku"], e["data"]["location"])
            start = first.setdefault(item, day)
            taken_back = order in whole or (order, line["line_id"]) in cancelled
            if (day - start).days < baseline_days and not taken_back:
                units[item] += line["qty"]
    return {item: units[item] / baseline_days for item in first}


def baseline_policy(config: SimConfig, daily: float) -> Policy:
    """The ``static`` or ``min_max`` policy of an item whose set-up estimate is ``daily`` units
    a day: reorder point the lead time's demand, order-up-to that plus the review period's,
    both scaled by ``config.scale`` (the knob a frontier sweeps)."""
    lead, review, k = config.lead_time_days, config.review_days, config.scale
    low, high = math.ceil(k * daily * lead), max(math.ceil(k * daily * (lead + review)), 1)
    if config.policy == "static":
        return Policy(
            policy="static",
            reorder_level=low,
            order_qty=max(high - low, 1),
            lead_time_days=lead,
            review_days=review,
        )
    return Policy(
        policy="min_max", min_qty=low, max_qty=high, lead_time_days=lead, review_days=review
    )


class ClosedLoop:
    def __init__(self, config: SimConfig, baseline: dict[Item, float]) -> None:
        self.config = config
        self.baseline = baseline
        self.state = LedgerState()
        self.result = SimResult(config.policy, config.setting)
        self.demand: dict[Item, dict[date, int]] = defaultdict(dict)
        self.first_day: dict[Item, date] = {}
        self.locations: dict[str, list[str]] = defaultdict(list)  # sku → its locations
        self.opened: set[Item] = set()
        self.unfilled: set[tuple[str, str]] = set()
        self.arrivals: dict[date, list[tuple[Item, str, int]]] = defaultdict(list)
        self.forecasts: dict[Item, Forecast] = {}
        self.requests_made: dict[Item, int] = defaultdict(int)
        self.baselines: dict[Item, Policy] = {}
        self.planner = LinePlanner(config.line_settings())
        self.policy = Policy(
            policy="lines" if config.policy == "lines" else "normal",
            lead_time_days=config.lead_time_days,
            review_days=config.review_days,
            service_level=config.service_level,
        )

    def state_apply(self, event: dict[str, Any]) -> None:
        apply_event(self.state, INPUT_EVENTS.validate_python(event))

    def available(self, item: Item) -> int:
        b = self.state.balance(item)
        return b.on_hand - b.committed - b.damaged - b.quality_control

    def policy_for(self, item: Item, day: date) -> tuple[Policy, Figures | None]:
        kind = self.config.policy
        if kind == "lines":
            lines = self.planner.figures(item, day.toordinal())
            return self.policy, None if lines is None else line_figures(lines)
        if kind == "normal" and item in self.forecasts:
            return self.policy, figures_for(self.policy, self.forecasts[item])
        # static, min_max, and normal until an item has two weeks of history to forecast from
        p = self.baselines.get(item)
        if p is None:
            as_baseline = (
                self.config if kind != "normal" else replace(self.config, policy="min_max")
            )
            p = self.baselines[item] = baseline_policy(as_baseline, self.baseline.get(item, 0.0))
        return p, figures_for(p, None)

    def run(self, events: Iterable[dict[str, Any]]) -> SimResult:
        day: date | None = None
        for event in events:
            today = _day(event)
            if day is None:
                day = today
            while day < today:
                self.close_day(day)
                day += timedelta(days=1)
            self.handle(event, today)
        if day is not None:
            self.close_day(day)
        self.result.items = len(self.first_day)
        return self.result

    def handle(self, event: dict[str, Any], today: date) -> None:
        kind, data = event["type"], event["data"]
        if kind == "scan.received" and "reference" not in data:
            return  # the history's own opening stock: the simulation sets its own
        if kind == "order.placed":
            self.place(event, today)
            return
        if kind == "scan.shipped" and (data["order_id"], data.get("line_id")) in self.unfilled:
            return
        self.state_apply(event)

    def place(self, event: dict[str, Any], today: date) -> None:
        data = event["data"]
        taken = []
        for line in data["lines"]:
            item = (line["sku"], data["location"])
            self.open_item(item, event)
            self.demand[item][today] = self.demand[item].get(today, 0) + line["qty"]
            self.planner.add_line(item, today.toordinal(), line["qty"])
            self.result.order_lines += 1
            self.result.units_demanded += line["qty"]
            covered = self.available(item) >= line["qty"]
            if covered:
                self.result.lines_filled += 1
                self.result.units_filled += line["qty"]
            if covered or self.config.backorders:
                taken.append(line)
                # commit now, so the order's next lines see what this one took
                self.state.balance(item).committed += line["qty"]
            else:
                self.unfilled.add((data["order_id"], line["line_id"]))
        for line in taken:
            self.state.balance((line["sku"], data["location"])).committed -= line["qty"]
        if taken:
            self.state_apply({**event, "data": {**data, "lines": taken}})

    def open_item(self, item: Item, event: dict[str, Any]) -> None:
        if item in self.opened:
            return
        self.opened.add(item)
        self.first_day[item] = _day(event)
        self.locations[item[0]].append(item[1])
        opening = math.ceil(self.baseline.get(item, 0.0) * self.config.opening_days)
        if opening > 0:
            at = datetime.fromisoformat(event["occurred_at"].replace("Z", "+00:00"))
            self.state_apply(
                _envelope(
                    "scan.received",
                    f"open/{item}",
                    at - timedelta(hours=1),
                    {"sku": item[0], "location": item[1], "qty": opening},
                )
            )

    def close_day(self, day: date) -> None:
        at = datetime.combine(day, datetime.min.time()).replace(tzinfo=UTC)
        for item, request_id, qty in self.arrivals.pop(day, []):
            self.state_apply(
                _envelope(
                    "scan.received",
                    request_id,
                    at + timedelta(hours=6),
                    {"sku": item[0], "location": item[1], "qty": qty, "reference": request_id},
                )
            )
        due = day.toordinal() % self.config.refresh_days == 0
        if self.config.policy == "normal" and due:
            self.refresh_forecasts(day)
        if self.config.policy == "lines" and (due or self.planner.price is None):
            self.planner.plan(day.toordinal())
        for item in self.first_day:
            policy, figures = self.policy_for(item, day)
            if figures is None:
                continue
            b = self.state.balance(item)
            position = self.available(item) + b.incoming
            decision = decide(policy, figures, position)
            if decision is not None and len(self.locations[item[0]]) > 1:
                decision = decide(policy, figures, position, self.sources(item, day))
            if decision is not None:
                self.request(item, decision, day, at)
        self.tally(day)

    def sources(self, item: Item, day: date) -> list[Source]:
        """The sku's other locations, as the replenisher offers them for a transfer."""
        out = []
        for location in self.locations[item[0]]:
            if location != item[1]:
                other = (item[0], location)
                out.append(Source(location, self.available(other), self.policy_for(other, day)[1]))
        return out

    def request(self, item: Item, decision: Decision, day: date, at: datetime) -> None:
        """A purchase is confirmed at once; a transfer leaves its source at once. Either is
        received ``lead_time_days`` later."""
        qty = decision.qty
        self.requests_made[item] += 1
        request_id = f"SIM-{item[1]}|{item[0]}|{self.requests_made[item]}"
        if decision.from_location is not None:
            self.result.transfers += 1
            self.state_apply(
                _envelope(
                    "scan.transferred",
                    request_id,
                    at + timedelta(hours=23),
                    {
                        "sku": item[0],
                        "from_location": decision.from_location,
                        "to_location": item[1],
                        "qty": qty,
                        "transfer_id": request_id,
                    },
                )
            )
        else:
            self.result.units_requested += qty
            self.state_apply(
                _envelope(
                    "replenishment.confirmed",
                    request_id,
                    at + timedelta(hours=23),
                    {"request_id": request_id, "sku": item[0], "location": item[1], "qty": qty},
                )
            )
        self.arrivals[day + timedelta(days=self.config.lead_time_days)].append(
            (item, request_id, qty)
        )
        self.result.requests += 1

    def refresh_forecasts(self, day: date) -> None:
        items = sorted(self.demand)
        histories = []
        for item in items:
            start = self.first_day[item]
            series = self.demand[item]
            histories.append(
                [
                    float(series.get(start + timedelta(days=i), 0))
                    for i in range((day - start).days + 1)
                ]
            )
        for item, result in zip(items, forecast_many(histories), strict=True):
            if result is not None:
                self.forecasts[item] = result

    def tally(self, day: date) -> None:
        held = out = 0
        for item in self.first_day:
            b = self.state.balance(item)
            held += max(0, b.on_hand)
            out += self.available(item) <= 0
        self.result.days += 1
        self.result.held_unit_days += held
        self.result.stockout_item_days += out
        self.result.daily.append(
            {
                "day": day.isoformat(),
                "units_held": held,
                "stockouts": out,
                "lines": self.result.order_lines,
                "filled": self.result.lines_filled,
                "requests": self.result.requests,
            }
        )


def simulate(events: list[dict[str, Any]], config: SimConfig) -> SimResult:
    """Run one policy over the events (a list: it is read twice, for the set-up and the run)."""
    return ClosedLoop(config, baseline_demand(events, config.baseline_days)).run(events)


def in_range(
    events: Iterable[dict[str, Any]], start: date | None, end: date | None
) -> Iterator[dict[str, Any]]:
    for e in events:
        day = _day(e)
        if (start is None or day >= start) and (end is None or day <= end):
            yield e

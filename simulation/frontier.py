"""Frontiers: each policy at several settings, line fill against units held.

A policy is judged by the curve it traces, not by one point: the units it needs to reach a line
fill rate, read off the curve by linear interpolation between the settings tried. The settings
swept are each policy's one knob: the target line fill for ``lines``, the service level for
``normal``, and a scaling of the days of cover of ``static`` and ``min_max`` levels.

With a split day, every run is read twice, over the days before it (where settings may be
chosen) and the days from it on (reported apart, as the out-of-sample check).
"""

from __future__ import annotations

import itertools
import multiprocessing
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from .closed_loop import SimConfig, SimResult, simulate

SETTINGS: dict[str, tuple[float, ...]] = {
    # up to 0.995: the curve must reach the highest fill a baseline reaches (static and min_max
    # at cover x4) for "fewer units at every fill" to be read over the whole range
    "lines": (0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 0.98, 0.99, 0.995),
    "normal": (0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999),
    "static": (0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0),
    "min_max": (0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0),
}
FILL_RATES = (0.75, 0.80, 0.85, 0.90)
PERIODS = ("all", "early", "late")


def configure(base: SimConfig, policy: str, setting: float) -> SimConfig:
    """``base`` with the policy and its knob set."""
    if policy == "lines":
        return replace(base, policy=policy, target_fill=setting, budget_units=None)
    if policy == "normal":
        return replace(base, policy=policy, service_level=setting)
    return replace(base, policy=policy, scale=setting)


_EVENTS: list[dict[str, Any]] = []
Figures = Callable[[SimConfig, SimResult], dict[str, Any]]
"""What is kept of one run: a module-level function, so that a worker process can call it."""


def periods(result: SimResult, split: date | None) -> dict[str, Any]:
    """A run's figures before ``split`` and from it on (nothing without a split)."""
    if split is None:
        return {}
    return {"early": result.period(None, split - timedelta(days=1)), "late": result.period(split)}


def frontier_point(config: SimConfig, result: SimResult) -> dict[str, Any]:
    """A point of a frontier: the policy, its setting, its figures overall and by period."""
    point: dict[str, Any] = {"policy": config.policy, "setting": config.setting}
    point["all"] = result.period()
    return point | periods(result, config.report_from)


def _simulated(job: tuple[SimConfig, Figures]) -> dict[str, Any]:
    config, figures = job
    return figures(config, simulate(_EVENTS, config))


def run_all(
    events: list[dict[str, Any]],
    configs: Sequence[SimConfig],
    figures: Figures,
    jobs: int = 1,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Every config's closed loop over the events, in ``jobs`` processes; what ``figures``
    keeps of each, in the configs' order."""
    global _EVENTS
    _EVENTS = events
    work = [(config, figures) for config in configs]
    out: list[dict[str, Any]] = []
    if jobs <= 1 or len(work) <= 1:
        for job in work:
            out.append(_simulated(job))
            if progress:
                progress(out[-1])
        return out
    # forked workers share the events read once; results come back in order as they finish
    with multiprocessing.get_context("fork").Pool(min(jobs, len(work))) as pool:
        for point in pool.imap(_simulated, work):
            out.append(point)
            if progress:
                progress(point)
    return out


def sweep(
    events: list[dict[str, Any]],
    base: SimConfig,
    policies: Sequence[str],
    settings: dict[str, tuple[float, ...]] | None = None,
    jobs: int = 1,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Every policy at every one of its settings, in ``jobs`` processes; the points in order."""
    grid = settings or SETTINGS
    configs = [configure(base, p, s) for p in policies for s in grid[p]]
    return run_all(events, configs, frontier_point, jobs, progress)


def envelope(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """(units, fill) points reduced to those no other point beats with fewer or equal units
    and a higher fill, by units ascending."""
    out: list[tuple[float, float]] = []
    for units, fill in sorted(points):
        if out and fill <= out[-1][1]:
            continue
        out.append((units, fill))
    return out


def units_at(points: Sequence[tuple[float, float]], fill: float) -> float | None:
    """Units needed to reach ``fill``, interpolated on the envelope; None when out of range."""
    curve = envelope(points)
    for (u0, f0), (u1, f1) in itertools.pairwise(curve):
        if f0 <= fill <= f1:
            return u0 + (u1 - u0) * (fill - f0) / (f1 - f0) if f1 > f0 else u0
    if curve and curve[0][1] >= fill:
        return None  # reached already at the fewest units tried: not measured below that
    return None


def curves(points: list[dict[str, Any]], period: str) -> dict[str, list[tuple[float, float]]]:
    out: dict[str, list[tuple[float, float]]] = {}
    for p in points:
        figures = p.get(period)
        if figures and figures["order_lines"]:
            out.setdefault(p["policy"], []).append(
                (figures["average_units_held"], figures["line_fill_rate"])
            )
    return out


def comparison(points: list[dict[str, Any]], period: str) -> dict[str, Any]:
    """Per fill rate: the units each policy needs, the best baseline's, and how many fewer
    ``lines`` needs (a share of the best baseline's)."""
    by_policy = curves(points, period)
    table: dict[str, Any] = {}
    for fill in FILL_RATES:
        units = {policy: units_at(pts, fill) for policy, pts in by_policy.items()}
        baselines = [u for p, u in units.items() if p != "lines" and u is not None]
        best = min(baselines) if baselines else None
        lines = units.get("lines")
        saving = None if best is None or lines is None else round(1 - lines / best, 4)
        table[f"{fill:.2f}"] = {
            "units": {p: None if u is None else round(u) for p, u in units.items()},
            "best_baseline_units": None if best is None else round(best),
            "lines_saving": saving,
        }
    return table


BASELINES = ("normal", "static", "min_max")


def lowest_margin(
    points: list[dict[str, Any]], period: str, start: float = FILL_RATES[0], step: float = 0.0001
) -> dict[str, Any] | None:
    """Where ``lines`` needs the fewest units fewer than the best baseline, read every ``step``
    of line fill from ``start`` to the highest fill a baseline reaches (the range a target of
    "fewer units at every fill rate" covers), each policy's units interpolated on its curve as
    :func:`units_at` does. Fills a baseline reaches and ``lines`` has no figure for (outside its
    curve) are counted apart (``lines_missing``, with ``lines_from`` and ``lines_to``, the fills
    its curve spans), as are fills no baseline has a figure for inside the range; neither is
    guessed. None when nothing could be compared."""
    by_policy = curves(points, period)
    tops = [max(f for _, f in pts) for p, pts in by_policy.items() if p in BASELINES and pts]
    if "lines" not in by_policy or not tops:
        return None
    top = max(tops)
    lowest: dict[str, Any] | None = None
    compared = missing = skipped = 0
    for i in range(max(0, round((top - start) / step)) + 1):
        fill = round(start + i * step, 6)
        lines = units_at(by_policy["lines"], fill)
        found = {p: units_at(by_policy[p], fill) for p in BASELINES if p in by_policy}
        baselines = {p: u for p, u in found.items() if u is not None}
        if not baselines:
            skipped += 1
            continue
        if lines is None:
            missing += 1
            continue
        compared += 1
        best = min(baselines, key=lambda p: baselines[p])
        saving = 1 - lines / baselines[best]
        if lowest is None or saving < lowest["lines_saving"]:
            lowest = {
                "fill": fill,
                "lines_saving": saving,
                "lines_units": round(lines),
                "best_baseline": best,
                "best_baseline_units": round(baselines[best]),
            }
    if lowest is None:
        return None
    lowest["lines_saving"] = round(lowest["lines_saving"], 4)
    return {
        **lowest,
        "from": start,
        "to": round(top, 6),
        "step": step,
        "compared": compared,
        "lines_missing": missing,
        "lines_from": min(f for _, f in by_policy["lines"]),
        "lines_to": max(f for _, f in by_policy["lines"]),
        "no_baseline": skipped,
    }


def plot(points: list[dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    periods = [p for p in PERIODS if any(p in point for point in points)]
    fig, axes = plt.subplots(1, len(periods), figsize=(6 * len(periods), 5), squeeze=False)
    for ax, period in zip(axes[0], periods, strict=True):
        for policy, pts in curves(points, period).items():
            pts = sorted(pts)
            ax.plot(
                [u / 1000 for u, _ in pts],
                [f for _, f in pts],
                marker="o",
                label=policy,
                linewidth=2.5 if policy == "lines" else 1.5,
            )
        first = next((pt[period] for pt in points if pt.get(period)), None)
        span = f" ({first['from']} to {first['to']})" if first and first.get("days") else ""
        ax.set_title(f"{period}{span}", fontsize=10)
        ax.set_xlabel("average units held (thousands)")
        ax.set_ylabel("line fill rate")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def split_day(events: list[dict[str, Any]], months: int) -> date:
    """The first day of the month ``months`` months after the history's first month."""
    first = date.fromisoformat(events[0]["occurred_at"][:10])
    month = first.month - 1 + months
    return date(first.year + month // 12, month % 12 + 1, 1)

"""Reading a frontier: where ``lines`` saves the least over the best baseline."""

from __future__ import annotations

from typing import Any

import pytest

from simulation.frontier import lowest_margin, units_at
from simulation.report import lowest_margin_line


def points(curves: dict[str, list[tuple[float, float]]]) -> list[dict[str, Any]]:
    """Frontier points as the sweep writes them: (units, fill) per policy and setting."""
    return [
        {
            "policy": policy,
            "setting": i,
            "all": {"order_lines": 100, "average_units_held": units, "line_fill_rate": fill},
        }
        for policy, pts in curves.items()
        for i, (units, fill) in enumerate(pts)
    ]


def test_the_lowest_margin_is_found_between_the_settings_tried() -> None:
    # lines: 100 units at 0.7, 160 at 0.8, 190 at 0.9; normal: 150 at 0.7, 300 at 0.9. Below 0.8
    # lines' units grow faster than normal's (600 against 750 per unit of fill from 100
    # against 150), above it slower: the margin is lowest at 0.8, 1 - 160 / 225.
    found = lowest_margin(
        points({"lines": [(100, 0.7), (160, 0.8), (190, 0.9)], "normal": [(150, 0.7), (300, 0.9)]}),
        "all",
    )
    assert found is not None
    assert found["fill"] == pytest.approx(0.8)
    assert found["lines_saving"] == round(1 - 160 / 225, 4)
    assert (found["lines_units"], found["best_baseline"], found["best_baseline_units"]) == (
        160,
        "normal",
        225,
    )
    assert (found["from"], found["to"], found["compared"], found["lines_missing"]) == (
        0.75,
        0.9,
        1501,
        0,
    )


def test_the_best_baseline_is_taken_at_each_fill_and_a_gap_in_lines_is_counted() -> None:
    # static is cheaper than normal up to their crossing and reaches 0.95, beyond lines' 0.9
    curves: dict[str, list[tuple[float, float]]] = {
        "lines": [(100, 0.7), (200, 0.9)],
        "normal": [(150, 0.7), (400, 0.9)],
        "static": [(140, 0.7), (300, 0.9), (600, 0.95)],
    }
    found = lowest_margin(points(curves), "all")
    assert found is not None

    def units(policy: str, fill: float) -> float:
        found = units_at(curves[policy], fill)
        assert found is not None
        return found

    margins = [
        1 - units("lines", f) / min(units("normal", f), units("static", f))
        for f in (0.75, 0.8, 0.85, 0.9)
    ]
    assert found["lines_saving"] == pytest.approx(min(margins), abs=1e-4)
    assert found["best_baseline"] == "static"
    assert found["to"] == 0.95
    assert found["lines_missing"] == 500  # 0.9001 to 0.95: static reaches them, lines does not
    assert "at 500 fills a baseline reaches lines has no figure" in lowest_margin_line(found)


def test_without_a_baseline_or_lines_nothing_is_claimed() -> None:
    assert lowest_margin(points({"lines": [(100, 0.7), (200, 0.9)]}), "all") is None
    assert lowest_margin(points({"normal": [(100, 0.7), (200, 0.9)]}), "all") is None
    assert "not measured" in lowest_margin_line(None)

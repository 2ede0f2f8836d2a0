"""The CPU reading's bookkeeping: whose backend is whose, CPU between two samples, per 1,000
events, and what counts in the suite's total."""

from __future__ import annotations

import pytest

from bench.__main__ import repeated_latency
from bench.cpu import (
    BROKER,
    LOAD,
    PG_BACKGROUND,
    Sample,
    above_idle,
    backend_owners,
    cpu_in_window,
    per_thousand,
    spread,
    summarise,
)

LEDGER, BACKEND = (10, 1000.0), (20, 1000.0)


def sample(at: float, cpu: dict[tuple[int, float], float], groups: dict[int, str]) -> Sample:
    return Sample(at, cpu, {key: groups[key[0]] for key in cpu})


def test_a_backend_belongs_to_the_process_holding_the_other_end_of_its_connection() -> None:
    backends = {501: 40001, 502: 40002, 503: 40003, 504: None}
    ports = {"ledger": {40001, 40005}, "projector": {40002}}
    assert backend_owners(backends, ports) == {501: "ledger", 502: "projector"}


def test_cpu_in_a_window_is_the_growth_of_each_group_between_its_samples() -> None:
    groups = {10: "ledger", 20: "ledger (postgresql)"}
    samples = [
        sample(1000.0, {LEDGER: 5.0, BACKEND: 1.0}, groups),
        sample(1001.0, {LEDGER: 5.5, BACKEND: 1.25}, groups),
        sample(1002.0, {LEDGER: 6.0, BACKEND: 1.5}, groups),
    ]
    assert cpu_in_window(samples, 0, 2) == {"ledger": 1.0, "ledger (postgresql)": 0.5}
    assert cpu_in_window(samples, 1, 2) == {"ledger": 0.5, "ledger (postgresql)": 0.25}


def test_a_process_started_in_the_window_counts_from_zero_and_one_gone_up_to_its_last_sample() -> (
    None
):
    groups = {10: "ledger", 20: "ledger (postgresql)", 30: "ledger (postgresql)"}
    new_backend = (30, 1000.5)  # started after the first sample
    samples = [
        sample(1000.0, {LEDGER: 5.0, BACKEND: 1.0}, groups),
        sample(1001.0, {LEDGER: 5.5, BACKEND: 1.75, new_backend: 0.25}, groups),
        sample(1002.0, {LEDGER: 6.0, new_backend: 0.5}, groups),  # the first backend ended
    ]
    assert cpu_in_window(samples, 0, 2) == {"ledger": 1.0, "ledger (postgresql)": 1.25}


def test_a_process_first_seen_late_but_older_than_the_window_counts_from_its_first_sample() -> None:
    groups = {10: "ledger", 20: "ledger (postgresql)"}
    samples = [
        sample(1000.0, {LEDGER: 5.0}, groups),
        sample(1001.0, {LEDGER: 5.5, BACKEND: 30.0}, groups),  # an old connection, seen late
        sample(1002.0, {LEDGER: 6.0, BACKEND: 30.5}, groups),
    ]
    assert cpu_in_window(samples, 0, 2)["ledger (postgresql)"] == 0.5


def test_a_reused_pid_is_another_process() -> None:
    groups = {10: "ledger"}
    samples = [
        sample(1000.0, {(10, 900.0): 7.0}, groups),
        sample(1001.0, {(10, 1000.5): 0.5}, groups),  # the same pid, a process started later
    ]
    assert cpu_in_window(samples, 0, 1) == {"ledger": 0.5}


def test_cpu_seconds_become_milliseconds_per_thousand_events() -> None:
    assert per_thousand({"ledger": 2.0, BROKER: 0.5}, 40_000) == {"ledger": 50.0, BROKER: 12.5}
    assert per_thousand({"ledger": 2.0}, 0) == {"ledger": 0.0}


def test_what_a_process_spends_at_rest_is_taken_out_over_the_time_the_events_took() -> None:
    # 2,000 events/s: 1,000 events take half a second, in which 40 ms a second at rest is 20 ms
    ms = {"ledger": 50.0, BROKER: 30.0, "relay": 5.0}
    idle = {"ledger": 10.0, BROKER: 40.0}
    assert above_idle(ms, idle, 2_000.0) == {"ledger": 45.0, BROKER: 10.0, "relay": 5.0}


def test_the_suite_total_leaves_out_the_load_generator_and_the_servers_background() -> None:
    windows = [
        {"ledger": 40.0, "ledger (postgresql)": 30.0, BROKER: 10.0, LOAD: 5.0, PG_BACKGROUND: 3.0},
        {"ledger": 44.0, "ledger (postgresql)": 32.0, BROKER: 12.0, LOAD: 6.0, PG_BACKGROUND: 1.0},
        {
            "ledger": 42.0,
            "ledger (postgresql)": 31.0,
            BROKER: 11.0,
            f"{LOAD} (postgresql)": 1.0,
        },
    ]
    report = summarise(windows)
    assert report["total"] == {"mean": 84.0, "min": 80.0, "max": 88.0, "stdev": 4.0}
    assert report["left_out_of_total"] == [LOAD, f"{LOAD} (postgresql)", PG_BACKGROUND]
    by_process = report["by_process"]
    assert isinstance(by_process, dict)
    assert by_process[LOAD]["mean"] == pytest.approx(11 / 3)  # absent from a window: 0 there


def test_a_single_window_has_no_spread() -> None:
    assert spread([7.0]) == {"mean": 7.0, "min": 7.0, "max": 7.0, "stdev": 0.0}


def test_repeated_latency_runs_report_the_median_run_and_the_spread_of_p99() -> None:
    runs = [
        {"rate": 1000, "events": 20_000, "p50_ms": p50, "p99_ms": p99, "max_ms": 300.0}
        for p50, p99 in ((40.0, 90.0), (45.0, 150.0), (50.0, 100.0))
    ]
    report = repeated_latency(runs)
    assert report["p99_ms"] == 100.0
    assert report["p50_ms"] == 45.0
    assert report["p99_ms_spread"]["min"] == 90.0
    assert report["p99_ms_spread"]["max"] == 150.0
    assert report["runs"] == runs

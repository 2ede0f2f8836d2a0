"""The benchmark's input in event time: one event a second by default, and for the CPU run as
fast as they are sent, with exactly one planning pass of the replenisher due, in the warm-up."""

from __future__ import annotations

from datetime import datetime, timedelta

import orjson

from bench.endtoend import CpuRun
from bench.workload import START, input_messages
from services.replenisher.app import EventClock


def occurred(messages: list[tuple[str, bytes, bytes]]) -> list[datetime]:
    return [
        datetime.fromisoformat(orjson.loads(value)["occurred_at"].replace("Z", "+00:00"))
        for _, _, value in messages
    ]


def test_events_are_one_second_apart_by_default() -> None:
    times = occurred(list(input_messages(5)))
    assert times == [START + timedelta(seconds=n) for n in range(5)]


def test_at_a_rate_events_occur_as_fast_as_they_are_sent_and_draw_the_same_items() -> None:
    start = datetime.fromisoformat("2011-01-01T23:59:59+00:00")
    paced = list(input_messages(4000, seed=3, start=start, per_second=2000))
    times = occurred(paced)
    assert times[0] == start
    assert times[1] - times[0] == timedelta(microseconds=500)
    assert times[-1] == start + timedelta(microseconds=3999 * 500)
    default = list(input_messages(4000, seed=3))
    assert [(t, k) for t, k, _ in paced] == [(t, k) for t, k, _ in default]


def test_the_cpu_run_has_one_planning_pass_due_and_it_falls_in_the_warm_up() -> None:
    run = CpuRun(rate=1000, seconds=30.0, windows=3, warm_up=6.0)
    total = int(run.rate * (run.warm_up + run.seconds + 2))  # as cpu_per_event sends
    entries = [
        {"occurred_at": t.isoformat()}
        for t in occurred(list(input_messages(total, start=run.start, per_second=run.rate)))
    ]
    clock = EventClock(None, None, None)
    passes = []
    rest = entries
    done = 0
    while rest:
        n, due = clock.split(rest, 7)
        done += n
        if due is not None:
            passes.append((done, due))
            clock.planned = due
        rest = rest[n:]
    assert len(passes) == 1
    [(at, day)] = passes
    assert day.isoformat() == "2011-01-01"
    assert 0 < at < run.rate * run.warm_up  # the pass is due before the measured windows

"""The load run's bookkeeping: which probes a level shows, and latencies per interval."""

from __future__ import annotations

from bench.load import Probes, summary, windows


def test_a_level_shows_every_probe_up_to_its_on_hand_once() -> None:
    probes = Probes()
    probes.sent.update({("P-1", 1): 10.0, ("P-1", 2): 11.0, ("P-1", 3): 12.0})
    probes.on_level("P-1", 2, 12.5)
    probes.on_level("P-1", 1, 13.0)  # an older level, later: changes nothing
    probes.on_level("P-1", 3, 14.0)
    assert probes.seen == {("P-1", 1): 12.5, ("P-1", 2): 12.5, ("P-1", 3): 14.0}


def test_latencies_are_grouped_by_the_interval_they_were_sent_in() -> None:
    probes = Probes()
    for n in range(10):
        probes.sent[("P", n)] = 100.0 + n
        if n != 9:
            probes.seen[("P", n)] = 100.0 + n + (0.1 if n < 5 else 0.5)
    sample = {"rss_mib": {"ledger": 50.0}, "lag": {"ledger": 0}}
    rows = windows(probes, 100.0, 5.0, [sample, sample])
    assert [r["probes"] for r in rows] == [5, 4]
    assert [r["probes_not_seen"] for r in rows] == [0, 1]
    assert round(rows[0]["p50_ms"]) == 100
    assert round(rows[1]["max_ms"]) == 500
    assert summary(rows) == {}  # fewer than three intervals: no thirds to compare
    third = summary(rows[:1] * 3 + rows[1:] * 3)
    assert third["p99_ms_first_third"] == rows[0]["p99_ms"]
    assert third["p99_ms_last_third"] == rows[1]["p99_ms"]
    assert third["rss_mib_last_third"] == {"ledger": 50.0}

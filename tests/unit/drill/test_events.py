"""The recorder every thread appends to, and the pacing of the workloads."""

from __future__ import annotations

import threading

from pgtopo.drill.events import Attempt, Recorder
from pgtopo.drill.workloads import Pacer
from tests.support.drill_logs import log


def test_the_recorder_clock_starts_at_zero_and_recent_reads_the_tail() -> None:
    now = [100.0]
    rec = Recorder(log(), clock=lambda: now[0])
    now[0] = 103.5
    assert rec.now() == 3.5
    for i in range(20):
        rec.attempt(Attempt("w", "ledger", i, i * 0.5, i * 0.5 + 0.1, "ok"))
    recent = rec.recent(rec.log.attempts, since=8.0, when=lambda a: a.end)
    assert sorted(a.seq for a in recent) == [16, 17, 18, 19]
    rec.message("step", "0: kill pg-us")
    rec.note("a note")
    assert rec.log.messages == [(3.5, "step", "0: kill pg-us")] and rec.log.notes == ["a note"]


def test_threads_append_without_losing_anything() -> None:
    rec = Recorder(log())

    def add(k: int) -> None:
        for i in range(500):
            rec.attempt(Attempt(f"w{k}", "ledger", i, 0.0, 0.0, "ok"))

    threads = [threading.Thread(target=add, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(rec.log.attempts) == 2000


def test_the_pacer_keeps_the_rate_and_stops_on_halt() -> None:
    halt = threading.Event()
    fast = Pacer(0)
    assert fast.interval == 0 and fast.wait(halt)
    p = Pacer(1000)
    assert all(p.wait(halt) for _ in range(5))
    halt.set()
    assert not p.wait(halt) and not fast.wait(halt)

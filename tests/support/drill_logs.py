"""Hand-made drill event logs with known answers, for the pure verdict and the report.

``writer(...)`` gives the attempts of one ledger writer that commits every ``every`` seconds on
a timeline, with a gap of failed attempts; ``samples(...)`` gives node samples tick by tick.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pgtopo.drill.events import Attempt, DrillLog, Final, NodeSample, Read, ReportedLoss, StepRecord
from pgtopo.drill.spec import Expect

EVERY = 0.1


def log(**kw: Any) -> DrillLog:
    base: dict[str, Any] = dict(drill="t", topology="t-unit", cluster="main", started_at="2026-12-01T00:00:00+00:00",
                                duration=20.0, sample_every=0.25, ended=20.0)
    base.update(kw)
    return DrillLog(**base)


def acks(workload: str, start: float, end: float, *, seq0: int = 1, timeline: int = 1, node: str = "pg-us",
         lsn0: int = 0x3000000, kind: str = "ledger", every: float = EVERY) -> list[Attempt]:
    """Acknowledged commits every ``every`` s from ``start`` to ``end`` (exclusive), seqs from ``seq0``."""
    out = []
    n = round((end - start) / every)
    for i in range(n):
        t = start + i * every
        out.append(Attempt(workload, kind, seq0 + i, t, t + 0.005, "ok", lsn=lsn0 + 100 * (seq0 + i),  # type: ignore[arg-type]
                           timeline=timeline, node=node))
    return out


def failures(workload: str, start: float, end: float, *, seq0: int, outcome: str = "error", node: str | None = "pg-us",
             every: float = 0.5) -> list[Attempt]:
    n = round((end - start) / every)
    return [Attempt(workload, "ledger", seq0 + i, start + i * every, start + i * every + 0.4, outcome,  # type: ignore[arg-type]
                    node=node, error="connection refused") for i in range(n)]


def samples(node: str, states: Iterable[tuple[int, bool]], *, cluster: str = "main", every: float = 0.25,
            timeline: int = 1) -> list[NodeSample]:
    """(tick, writable) pairs; a tick missing from the list means no answer."""
    return [NodeSample(tick, tick * every, node, cluster, reachable=True, writable=w, timeline=timeline if w else None)
            for tick, w in states]


def final(ledger: dict[str, Iterable[int]], *, subscribers: tuple[Any, ...] = (), primary: str = "pg-eu") -> Final:
    return Final("main", primary, (primary,), {w: sorted(s) for w, s in ledger.items()}, subscribers)


def loss(*, commits: int | None, bytes_: int | None, fork: int, exact: bool = True, old: str = "pg-us",
         new: str = "pg-eu", timeline: int = 2) -> ReportedLoss:
    return ReportedLoss(cluster="main", old_primary=old, new_primary=new, bytes=bytes_, commits=commits, exact=exact,
                        fork_lsn=fork, timeline=timeline)


def step(index: int, action: str, *, start: float, end: float, status: str = "ok", lost: ReportedLoss | None = None,
         detail: str = "") -> StepRecord:
    return StepRecord(index, action, action, start, start, end, status, detail, lost)  # type: ignore[arg-type]


def read(strategy: str, t: float, outcome: str, *, served_by: str = "replica", waited: float = 0.0) -> Read:
    return Read(f"reader0@eu-west/{strategy}/0", strategy, "eu-west", t, t + 0.01, outcome,  # type: ignore[arg-type]
                served_by=served_by, waited_s=waited, max_wait_s=0.08)


def expect(**kw: Any) -> Expect:
    return Expect.model_validate(kw)


def crash_log(*, reported_commits: int, reported_bytes: int = 10_000, exact: bool = True) -> DrillLog:
    """A primary crash at 5 s, failover at 7 s: pg-us acknowledged seqs 1..50 (fork after seq 47: 48-50
    lost); seq 51 was in flight when it died; the writer commits on pg-eu, timeline 2, from 7.5 s."""
    w = "ledger@us-east"
    before = acks(w, 0.0, 5.0, seq0=1)
    doubt = [*failures(w, 5.0, 5.5, seq0=51, outcome="unknown")]
    gap = failures(w, 5.5, 7.5, seq0=52)
    after = acks(w, 7.5, 20.0, seq0=60, timeline=2, node="pg-eu", lsn0=0x4000000)
    fork = before[46].lsn or 0  # seq 47's position: 48, 49, 50 are past it
    present = [a.seq for a in before[:47]] + [a.seq for a in after]
    return log(attempts=[*before, *doubt, *gap, *after],
               samples=samples("pg-us", [(k, True) for k in range(0, 20)])
               + samples("pg-eu", [(k, False) for k in range(0, 28)] + [(k, True) for k in range(28, 80)], timeline=2),
               steps=[step(0, "kill", start=5.0, end=5.1),
                      step(1, "failover", start=6.0, end=7.0,
                           lost=loss(commits=reported_commits, bytes_=reported_bytes, fork=fork, exact=exact))],
               final=final({w: present}))

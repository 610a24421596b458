"""The verdict: what a drill's recorded events say, each expectation PASS or FAIL (pure).

Definitions (each computed from the log alone, so a report can be judged again):

- write unavailability, per ledger writer: from the last commit acknowledged on the old
  timeline to the first acknowledged on the new one (CloudNativePG's "fast failover" measure);
  a writer that never committed on the cluster's newest timeline is unavailable until the end;
- error window, per ledger writer: from the last acknowledged commit before a failed attempt to
  the first acknowledged after it (or the end);
- acknowledged commits lost: acknowledged ledger rows missing from the cluster's primary at the
  end, per failover next to what it reported. ``acked_lost: reported`` holds when, for every
  failover, lost <= reported <= lost + the commits whose outcome the client never learnt, and
  the WAL the lost commits reached past the fork is within the WAL reported;
- stale reads, per strategy: a session's own acknowledged row not found by its next read;
- bank violations: any read, on any node, whose balances do not add up to the initial total;
- split brain: a sampler tick at which two nodes of one cluster accepted writes;
- logical completeness, per subscriber: every row of the publisher's ledger at the end arrived,
  none twice, none the publisher does not have.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pgtopo.drill.events import Attempt, DrillLog, Final, ReportedLoss
from pgtopo.drill.spec import Expect
from pgtopo.postgres.lsn import fmt_bytes


@dataclass(frozen=True)
class Check:
    key: str  # the expectation's name in the drill file, or "step"
    subject: str
    measured: str
    expected: str  # "-" when only measured
    passed: bool | None  # None: measured, not judged
    details: tuple[str, ...] = ()

    @property
    def result(self) -> str:
        return {True: "PASS", False: "FAIL", None: "-"}[self.passed]


# -- write availability ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Switch:
    old_timeline: int
    new_timeline: int
    last_old: float  # end of the last acknowledged commit on the old timeline
    first_new: float | None  # None: none by the end

    def seconds(self, end: float) -> float:
        return (self.first_new if self.first_new is not None else end) - self.last_old


@dataclass(frozen=True)
class WriterStats:
    writer: str
    commits: int
    errors: int
    unknown: int
    switches: tuple[Switch, ...]
    unavailable_s: float  # the longest switch (0 without one)
    recovered: bool
    error_window_s: float
    error_window_at: float | None
    longest_gap_s: float


def _timeline_switches(acks: Sequence[Attempt], newest: int | None) -> list[Switch]:
    out: list[Switch] = []
    for prev, nxt in itertools.pairwise(acks):
        if prev.timeline is not None and nxt.timeline is not None and nxt.timeline > prev.timeline:
            out.append(Switch(prev.timeline, nxt.timeline, prev.end, nxt.end))
    last = acks[-1] if acks else None
    if last is not None and last.timeline is not None and newest is not None and newest > last.timeline:
        out.append(Switch(last.timeline, newest, last.end, None))
    return out


def error_windows(attempts: Sequence[Attempt], end: float) -> list[tuple[float, float]]:
    """(from, to) of each stretch with failed attempts: from the last acknowledged commit before
    the first failure (or that failure's start) to the first acknowledged after (or ``end``)."""
    windows = []
    last_ok: float | None = None
    opened: float | None = None
    for a in sorted(attempts, key=lambda x: x.start):
        if a.outcome == "ok":
            if opened is not None:
                windows.append((opened, a.end))
                opened = None
            last_ok = a.end
        elif opened is None:
            opened = last_ok if last_ok is not None else a.start
    if opened is not None:
        windows.append((opened, end))
    return windows


def writer_stats(writer: str, attempts: Sequence[Attempt], *, newest_timeline: int | None, end: float) -> WriterStats:
    mine = sorted(attempts, key=lambda a: a.end)
    acks = [a for a in mine if a.outcome == "ok"]
    switches = _timeline_switches(acks, newest_timeline)
    windows = error_windows(mine, end)
    widest = max(windows, key=lambda w: w[1] - w[0], default=None)
    gaps = [b.end - a.end for a, b in itertools.pairwise(acks)]
    return WriterStats(
        writer=writer, commits=len(acks), errors=sum(a.outcome == "error" for a in mine),
        unknown=sum(a.outcome == "unknown" for a in mine), switches=tuple(switches),
        unavailable_s=max((s.seconds(end) for s in switches), default=0.0),
        recovered=all(s.first_new is not None for s in switches),
        error_window_s=(widest[1] - widest[0]) if widest else 0.0, error_window_at=widest[0] if widest else None,
        longest_gap_s=max(gaps, default=0.0),
    )


def newest_timeline(log: DrillLog, cluster: str) -> int | None:
    seen = [s.timeline for s in log.samples if s.cluster == cluster and s.writable and s.timeline is not None]
    seen += [a.timeline for a in log.attempts if a.outcome == "ok" and a.timeline is not None]
    return max(seen, default=None)


# -- loss --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class FailoverLoss:
    reported: ReportedLoss
    lost_commits: int  # acknowledged, missing at the end, written on the old primary before it
    lost_bytes: int  # WAL those commits reached past the fork point
    in_doubt: int  # outcome never learnt by the client, missing at the end
    matches: bool
    why: str


@dataclass(frozen=True)
class LossStats:
    known: bool  # the final ledger could be read
    acked: int
    lost: int
    lost_by_workload: dict[str, int]
    in_doubt_missing: int
    unexplained: int  # lost, but not on a node that any failover replaced
    failovers: tuple[FailoverLoss, ...]
    lost_without_position: int = 0
    why_unknown: str = ""


def _present(final: Final | None) -> dict[str, set[int]] | None:
    if final is None or final.ledger is None:
        return None
    return {w: set(seqs) for w, seqs in final.ledger.items()}


def _missing(attempts: Iterable[Attempt], present: dict[str, set[int]], outcome: str) -> list[Attempt]:
    return [a for a in attempts if a.outcome == outcome and a.seq not in present.get(a.workload, set())]


def _judge_failover(r: ReportedLoss, lost: list[Attempt], doubt: list[Attempt]) -> FailoverLoss:
    def replaced(a: Attempt) -> bool:
        return a.node == r.old_primary and (a.timeline is None or r.timeline is None or a.timeline < r.timeline)

    mine = [a for a in lost if replaced(a)]
    in_doubt = sum(1 for a in doubt if a.node in (None, r.old_primary))
    lsns = [a.lsn for a in mine if a.lsn is not None]
    lost_bytes = max(0, max(lsns) - r.fork_lsn) if lsns and r.fork_lsn is not None else 0
    n = len(mine)
    if not r.exact or r.commits is None or r.bytes is None:
        return FailoverLoss(r, n, lost_bytes, in_doubt, False, "the failover could not measure its loss exactly")
    if not n <= r.commits <= n + in_doubt:
        why = (f"{n} acknowledged commit(s) lost, failover reported {r.commits}"
               + (f" ({in_doubt} more were in flight)" if in_doubt else ""))
        return FailoverLoss(r, n, lost_bytes, in_doubt, False, why)
    if lost_bytes > r.bytes:
        return FailoverLoss(r, n, lost_bytes, in_doubt, False,
                            f"lost commits reach {lost_bytes} B past the fork, failover reported {r.bytes} B")
    return FailoverLoss(r, n, lost_bytes, in_doubt, True, "")


def loss_stats(log: DrillLog) -> LossStats:
    present = _present(log.final)
    acked = [a for a in log.attempts if a.outcome == "ok"]
    reported = [s.loss for s in log.steps if s.loss is not None and s.loss.cluster == log.cluster]
    if present is None:
        why = (log.final.error if log.final and log.final.error else "no primary to read the ledger from at the end")
        return LossStats(False, len(acked), 0, {}, 0, 0, (), why_unknown=why)
    lost = _missing(acked, present, "ok")
    doubt = _missing(log.attempts, present, "unknown")
    failovers = tuple(_judge_failover(r, lost, doubt) for r in reported)
    explained = {(a.workload, a.seq) for a in lost for r in reported if a.node == r.old_primary}
    return LossStats(
        known=True, acked=len(acked), lost=len(lost), lost_by_workload=dict(Counter(a.workload for a in lost)),
        in_doubt_missing=len(doubt), unexplained=sum(1 for a in lost if (a.workload, a.seq) not in explained),
        failovers=failovers, lost_without_position=sum(1 for a in lost if a.lsn is None))


# -- reads, bank, split brain, logical ---------------------------------------------------------------

@dataclass(frozen=True)
class ReadStats:
    strategy: str
    reads: int
    stale: int
    errors: int
    replica_share: float
    max_waited_s: float
    max_wait_budget_s: float
    p50_ms: float
    p99_ms: float


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest rank (0 for nothing)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def read_stats(log: DrillLog) -> dict[str, ReadStats]:
    by: dict[str, list[Any]] = defaultdict(list)
    for r in log.reads:
        by[r.strategy].append(r)
    out = {}
    for strategy, reads in by.items():
        done = [r for r in reads if r.outcome != "error"]
        out[strategy] = ReadStats(
            strategy=strategy, reads=len(done), stale=sum(r.outcome == "stale" for r in reads),
            errors=sum(r.outcome == "error" for r in reads),
            replica_share=(sum(r.served_by == "replica" for r in done) / len(done)) if done else 0.0,
            max_waited_s=max((r.waited_s for r in done), default=0.0),
            max_wait_budget_s=max((r.max_wait_s for r in reads), default=0.0),
            p50_ms=percentile([(r.end - r.start) * 1000 for r in done], 50),
            p99_ms=percentile([(r.end - r.start) * 1000 for r in done], 99))
    return out


@dataclass(frozen=True)
class BankStats:
    reads: int
    violations: int
    by_node: dict[str, int]
    first: str | None


def bank_stats(log: DrillLog) -> BankStats:
    done = [b for b in log.bank if b.error is None]
    bad = [b for b in done if b.total != log.bank_total or b.accounts != log.bank_accounts]
    first = None
    if bad:
        b = bad[0]
        first = (f"{b.node} at {b.t:.2f} s: {b.accounts} accounts holding {b.total} "
                 f"(expected {log.bank_accounts} holding {log.bank_total})")
    return BankStats(len(done), len(bad), dict(Counter(b.node for b in bad)), first)


@dataclass(frozen=True)
class SplitBrain:
    cluster: str
    nodes: tuple[str, ...]
    start: float
    end: float
    ticks: int


def split_brains(log: DrillLog) -> list[SplitBrain]:
    """Ticks at which more than one node of a cluster was writable, merged into runs."""
    writable: dict[tuple[str, int], set[str]] = defaultdict(set)
    when: dict[tuple[str, int], float] = {}
    for s in log.samples:
        if s.writable:
            writable[(s.cluster, s.tick)].add(s.node)
            when[(s.cluster, s.tick)] = max(when.get((s.cluster, s.tick), s.t), s.t)
    out: list[SplitBrain] = []
    for (cluster, tick), nodes in sorted(writable.items()):
        if len(nodes) < 2:
            continue
        prev = out[-1] if out else None
        t = when[(cluster, tick)]
        if prev is not None and prev.cluster == cluster and prev.end >= t - 2.5 * log.sample_every:
            out[-1] = SplitBrain(cluster, tuple(sorted(set(prev.nodes) | nodes)), prev.start, t, prev.ticks + 1)
        else:
            out.append(SplitBrain(cluster, tuple(sorted(nodes)), t, t, 1))
    return out


@dataclass(frozen=True)
class LogicalStats:
    node: str
    subscription: str
    expected: int
    received: int
    missing: int
    duplicates: int
    extra: int  # rows the publisher's primary does not have (it lost them after they were sent)
    error: str | None

    @property
    def complete(self) -> bool:
        return self.error is None and not (self.missing or self.duplicates or self.extra)


def logical_stats(final: Final | None) -> list[LogicalStats]:
    if final is None:
        return []
    pub = {(w, s) for w, seqs in (final.ledger or {}).items() for s in seqs}
    out = []
    for sub in final.subscribers:
        got = {(w, s): n for w, seqs in sub.rows.items() for s, n in seqs.items()}
        error = sub.error or (None if final.ledger is not None else "no publisher primary to compare with")
        out.append(LogicalStats(
            node=sub.node, subscription=sub.subscription, expected=len(pub), received=sum(got.values()),
            missing=len(pub - set(got)), duplicates=sum(1 for n in got.values() if n > 1),
            extra=len(set(got) - pub), error=error))
    return out


# -- the verdict -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Verdict:
    drill: str
    checks: tuple[Check, ...]
    writers: tuple[WriterStats, ...]
    loss: LossStats
    reads: dict[str, ReadStats]
    bank: BankStats | None
    split_brain: tuple[SplitBrain, ...]
    logical: tuple[LogicalStats, ...]
    lag_max: dict[str, tuple[int | None, float | None]] = field(default_factory=dict)  # edge -> (bytes, s)

    @property
    def passed(self) -> bool:
        return all(c.passed is not False for c in self.checks)

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.passed is False]

    def check(self, key: str, subject: str | None = None) -> Check:
        """The check of an expectation (and subject); KeyError when there is none."""
        for c in self.checks:
            if c.key == key and (subject is None or c.subject == subject):
                return c
        raise KeyError(f"{key} {subject or ''}".strip())


def _at_most(value: float | int, limit: float | int | None) -> bool | None:
    return None if limit is None else value <= limit


def _fmt_s(s: float) -> str:
    return f"{s:.2f} s"


def _limit(limits: float | dict[str, float] | None, writer: str) -> float | None:
    """One limit for every writer, or the one for the writer's region (``ledger@REGION``)."""
    if isinstance(limits, dict):
        return limits.get(writer.partition("@")[2])
    return limits


def _step_checks(log: DrillLog) -> list[Check]:
    out = []
    for s in log.steps:
        passed = {"ok": True, "failed": False, "skipped": None}[s.status]
        measured = f"{s.status} at {s.start:.1f} s ({s.end - s.start:.1f} s)" if s.status != "skipped" else "skipped"
        out.append(Check("step", f"{s.index}: {s.text}", measured, "succeeds", passed,
                         (s.detail,) if s.detail else ()))
    return out


def _writer_checks(writers: Sequence[WriterStats], expect: Expect) -> list[Check]:
    out = []
    for w in writers:
        switches = tuple(f"timeline {s.old_timeline} -> {s.new_timeline}: last commit at {s.last_old:.2f} s, first "
                         + (f"at {s.first_new:.2f} s" if s.first_new is not None else "never (not recovered)")
                         for s in w.switches)
        measured = _fmt_s(w.unavailable_s) + ("" if w.recovered else " (not recovered)")
        limit = _limit(expect.write_unavailable, w.writer)
        passed = None if limit is None else (w.recovered and w.unavailable_s <= limit)
        out.append(Check("write_unavailable", w.writer, measured, f"<= {_fmt_s(limit)}" if limit is not None else "-",
                         passed, switches or ("no timeline switch",)))
        at = f" from {w.error_window_at:.2f} s" if w.error_window_at is not None else ""
        window = _limit(expect.error_window, w.writer)
        out.append(Check("error_window", w.writer, _fmt_s(w.error_window_s) + at,
                         f"<= {_fmt_s(window)}" if window is not None else "-", _at_most(w.error_window_s, window),
                         (f"{w.commits} commits, {w.errors} errors, {w.unknown} in doubt; longest gap between "
                          f"commits {_fmt_s(w.longest_gap_s)}",)))
    return out


def _loss_check(loss: LossStats, expect: Expect) -> Check:
    want = expect.acked_lost
    expected = "-" if want is None else ("= reported" if want == "reported" else f"<= {want}")
    if not loss.known:
        return Check("acked_lost", "", "unknown", expected, None if want is None else False, (loss.why_unknown,))
    details = [f"{loss.acked} commits acknowledged; lost: "
               + (", ".join(f"{w} {n}" for w, n in sorted(loss.lost_by_workload.items())) or "none")]
    for f in loss.failovers:
        r = f.reported
        rep = ("unknown" if r.bytes is None else f"{fmt_bytes(r.bytes)} ({r.bytes} B)") + (
            f", {r.commits} commit(s)" if r.commits is not None else "") + ("" if r.exact else " (lower bound)")
        details.append(f"{r.old_primary} -> {r.new_primary}: reported {rep}; measured {f.lost_commits} acknowledged "
                       f"commit(s) reaching {f.lost_bytes} B past the fork, {f.in_doubt} in doubt"
                       + ("" if f.matches else f": MISMATCH: {f.why}"))
    if loss.unexplained:
        details.append(f"{loss.unexplained} lost commit(s) were on no node a failover replaced")
    if loss.lost_without_position:
        details.append(f"{loss.lost_without_position} lost commit(s) of readers carry no WAL position (the router "
                       "reports none): they count as commits, not in the bytes")
    if want is None:
        passed = None
    elif want == "reported":
        passed = loss.unexplained == 0 and all(f.matches for f in loss.failovers)
    else:
        passed = loss.lost <= want
    bytes_lost = sum(f.lost_bytes for f in loss.failovers)
    return Check("acked_lost", "", f"{loss.lost} commit(s), {bytes_lost} B of WAL", expected, passed, tuple(details))


def _read_checks(reads: dict[str, ReadStats], expect: Expect) -> list[Check]:
    out = []
    for strategy, r in sorted(reads.items()):
        stale = expect.stale_reads
        want = stale.get(strategy) if isinstance(stale, dict) else stale  # type: ignore[call-overload]
        out.append(Check("stale_reads", strategy, f"{r.stale} of {r.reads}", "-" if want is None else f"<= {want}",
                         _at_most(r.stale, want),
                         (f"{r.replica_share:.0%} served by the replica; read p50 {r.p50_ms:.1f} ms, p99 "
                          f"{r.p99_ms:.1f} ms; longest wait {r.max_waited_s * 1000:.0f} ms (budget "
                          f"{r.max_wait_budget_s * 1000:.0f} ms); {r.errors} errors",)))
    return out


def judge(log: DrillLog, expect: Expect) -> Verdict:
    """Every measure of the drill, and each expectation PASS or FAIL."""
    newest = newest_timeline(log, log.cluster)
    by_writer: dict[str, list[Attempt]] = defaultdict(list)
    for a in log.attempts:
        if a.kind == "ledger":
            by_writer[a.workload].append(a)
    writers = tuple(writer_stats(w, by_writer[w], newest_timeline=newest, end=log.ended) for w in sorted(by_writer))
    loss = loss_stats(log)
    reads = read_stats(log)
    bank = bank_stats(log) if log.bank_total is not None else None
    splits = tuple(split_brains(log))
    logical = tuple(logical_stats(log.final))

    checks = _step_checks(log) + _writer_checks(writers, expect) + [_loss_check(loss, expect)]
    checks += _read_checks(reads, expect)
    if bank is not None:
        checks.append(Check("bank_violations", "", f"{bank.violations} of {bank.reads} reads",
                            "-" if expect.bank_violations is None else f"<= {expect.bank_violations}",
                            _at_most(bank.violations, expect.bank_violations),
                            ((bank.first,) if bank.first else ())
                            + tuple(f"{n}: {c}" for n, c in sorted(bank.by_node.items()))))
    want = expect.split_brain
    checks.append(Check("split_brain", "", "yes" if splits else "no",
                        "-" if want is None else ("yes" if want else "no"),
                        None if want is None else bool(splits) == want,
                        tuple(f"{', '.join(s.nodes)} writable in cluster {s.cluster} from {s.start:.2f} s to "
                              f"{s.end:.2f} s ({s.ticks} samples)" for s in splits)))
    for lg in logical:
        want_l = expect.logical_complete
        measured = ("complete" if lg.complete else
                    (lg.error or f"{lg.missing} missing, {lg.duplicates} duplicated, {lg.extra} extra"))
        checks.append(Check("logical_complete", f"{lg.subscription} on {lg.node}", measured,
                            "-" if want_l is None else ("complete" if want_l else "incomplete"),
                            None if want_l is None else lg.complete == want_l,
                            (f"{lg.received} rows received for {lg.expected} on the publisher",)))
    if expect.logical_complete is not None and not logical:
        checks.append(Check("logical_complete", "", "no subscriber was read", "complete", False))
    lag_max: dict[str, tuple[int | None, float | None]] = {}
    for s in log.lags:
        key = f"{s.sender} -> {s.receiver}"
        b, sec = lag_max.get(key, (None, None))
        lag_max[key] = (max(b or 0, s.bytes or 0) if (b is not None or s.bytes is not None) else None,
                        max(sec or 0.0, s.seconds or 0.0) if (sec is not None or s.seconds is not None) else None)
    return Verdict(drill=log.drill, checks=tuple(checks), writers=writers, loss=loss, reads=reads, bank=bank,
                   split_brain=splits, logical=logical, lag_max=lag_max)

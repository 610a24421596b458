"""Run a drill: bring the topology up if needed, check it is whole, create the drill tables,
start the samplers and the workloads, carry out the steps on time, stop, read what the nodes
hold, mend the faults, judge, and write the report.

Progress goes to two callbacks: ``progress(subject, message)`` for the phases around the run,
and ``on_status(LiveStatus)`` twice a second while it runs (elapsed time, throughput, errors,
the current primary, the next step); ``pgtopo.cli.drill`` draws them.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from pgtopo.apps.routing import Router
from pgtopo.drill import preflight, primaries, report, samplers, spec, steps, tables, targets, workloads
from pgtopo.drill.deadline import Deadlines
from pgtopo.drill.events import DrillLog, Final, Recorder, StepRecord, SubscriberRows
from pgtopo.drill.spec import Drill, format_duration
from pgtopo.drill.targets import Target
from pgtopo.drill.verdict import Verdict, judge
from pgtopo.errors import InputError, PgtopoError, first_line
from pgtopo.lifecycle import deploy
from pgtopo.logical import channels
from pgtopo.model import loader
from pgtopo.model.topology import Topology
from pgtopo.observe import snapshot
from pgtopo.postgres import connect
from pgtopo.progress import Progress, quiet
from pgtopo.runtime import gateway, state

STATUS_EVERY_S = 0.5
MESSAGES_SHOWN = 8
CATCH_UP_S = 30.0


@dataclass(frozen=True)
class WriterRate:
    writer: str
    per_s: float  # acknowledged commits in the last second
    errors: int  # failed or in doubt, since the start


@dataclass(frozen=True)
class LiveStatus:
    drill: str
    elapsed: float
    duration: float
    writers: tuple[WriterRate, ...]
    reads: int
    stale: int
    bank_violations: int
    primaries: dict[str, tuple[str, ...]]  # cluster -> writable nodes at the last tick
    running: str | None  # the step being carried out
    next_step: str | None  # and when: "kill pg-us at 8.0 s"
    messages: tuple[str, ...]  # the last few
    message_count: int  # since the start: what a printer has not shown yet is the difference


StatusCallback = Callable[[LiveStatus], None]


@dataclass
class DrillResult:
    drill: Drill
    log: DrillLog
    verdict: Verdict
    report_dir: Path | None
    wall_s: float
    notes: list[str] = field(default_factory=list)


def prepare(drill_path: Path, *, topology: Path | None) -> tuple[Drill, Path, Topology, Target]:
    """Load and check the drill file and its topology (nothing runs yet)."""
    d = spec.load(drill_path)
    topo_path = topology or spec.topology_path(d, drill_path)
    if not topo_path.exists():
        raise InputError(f"topology: {topo_path}: no such file")
    topo = loader.load(topo_path)
    return d, topo_path, topo, targets.check(d, topo)


# -- the run -----------------------------------------------------------------------------------------

class _Run:
    """One drill run's moving parts."""

    def __init__(self, d: Drill, topo: Topology, t: Target, *, topo_path: Path, progress: Progress) -> None:
        self.d, self.topo, self.t, self.progress = d, topo, t, progress
        self.halt_workload = threading.Event()
        self.halt_samplers = threading.Event()
        self.deadlines = Deadlines()
        start = datetime.now(UTC).isoformat(timespec="seconds")
        bank = d.workload.bank
        self.log = DrillLog(drill=d.drill, topology=topo.name, cluster=t.cluster, started_at=start, duration=d.duration,
                            sample_every=d.sample_every, bank_total=bank.accounts * bank.balance if bank else None,
                            bank_accounts=bank.accounts if bank else None)
        self.rec = Recorder(self.log)
        self.ctx = steps.StepContext(topo=topo, topo_path=topo_path, cluster=t.cluster, progress=self.message)
        self.threads: list[threading.Thread] = []
        self.samplers: list[threading.Thread] = []
        self.routers: list[Router] = []
        self.running: str | None = None
        self.next_step: str | None = None

    def message(self, subject: str, text: str) -> None:
        self.rec.message(subject, text)

    # -- threads -------------------------------------------------------------------------------------

    def start(self) -> None:
        d, t, topo = self.d, self.t, self.topo
        dbs = {t.cluster: t.database, **{s.cluster: s.database for s in t.subscribers}}
        for cluster, name, _spec in topo.all_nodes():
            self.samplers.append(samplers.NodeSampler(
                topo, node=name, cluster=cluster, database=dbs.get(cluster, "postgres"),
                bank=d.workload.bank is not None and cluster in dbs, rec=self.rec, deadlines=self.deadlines,
                every=d.sample_every, halt=self.halt_samplers))
        primary_region = topo.node(primaries.current(topo)[t.cluster]).region
        w = d.workload
        common: dict[str, Any] = {"rec": self.rec, "deadlines": self.deadlines, "halt": self.halt_workload}
        if w.ledger is not None:
            for region in w.ledger.regions or (primary_region,):
                source = workloads.EndpointCache(topo, region=region, cluster=t.cluster, database=t.database)
                source.get()
                self.threads.append(workloads.LedgerWriter(f"ledger@{region}", source=source, rate=w.ledger.rate,
                                                           timeout=w.ledger.timeout, **common))
        if w.bank is not None:
            region = w.bank.region or primary_region
            source = workloads.EndpointCache(topo, region=region, cluster=t.cluster, database=t.database)
            source.get()
            self.threads.append(workloads.Bank(f"bank@{region}", accounts=w.bank.accounts, source=source,
                                               rate=w.bank.rate, timeout=w.bank.timeout, **common))
        for j, rd in enumerate(w.readers):
            source = workloads.EndpointCache(topo, region=rd.region, cluster=t.cluster, database=t.database)
            router = workloads.reader_router(source.get(), topo, strategy=rd.strategy, sessions=rd.sessions,
                                             max_wait_s=rd.max_wait)
            self.routers.append(router)
            for i in range(rd.sessions):
                self.threads.append(workloads.ReaderSession(
                    f"reader{j}@{rd.region}/{rd.strategy}/{i}", router=router, region=rd.region, rate=rd.rate,
                    timeout=rd.timeout, **common))
        for th in [*self.samplers, *self.threads]:
            th.start()

    def stop(self) -> None:
        self.halt_workload.set()
        for th in self.threads:
            th.join(timeout=15)
        self.log.ended = self.rec.now()
        self.halt_samplers.set()
        for th in self.samplers:
            th.join(timeout=15)
        for r in self.routers:
            r.close()
        self.deadlines.close()

    # -- the timeline --------------------------------------------------------------------------------

    def timeline(self) -> None:
        previous_end = 0.0
        failed = False
        for i, step in enumerate(self.d.steps):
            text = step.describe()
            planned = step.at if step.at is not None else previous_end + (step.after or 0.0)
            if failed:
                self.rec.step(StepRecord(i, step.action, text, planned, self.rec.now(), self.rec.now(), "skipped",
                                         "an earlier step failed"))
                continue
            self.next_step = f"{text} at {planned:.1f} s"
            while self.rec.now() < planned:
                time.sleep(min(0.05, planned - self.rec.now()))
            self.next_step, self.running = None, text
            start = self.rec.now()
            self.message("step", f"{i}: {text}")
            try:
                out = steps.run(self.ctx, step)
                self.rec.step(StepRecord(i, step.action, text, planned, start, self.rec.now(), "ok", out.detail, out.loss))
                self.message("step", f"{i}: {out.detail}")
            except PgtopoError as exc:
                failed = True
                self.rec.step(StepRecord(i, step.action, text, planned, start, self.rec.now(), "failed",
                                         " ".join(exc.lines())))
                self.message("step", f"{i} FAILED: {exc.message}")
            self.running = None
            previous_end = self.rec.now()
        remaining = self.d.duration - self.rec.now()
        if remaining > 0:
            self.next_step = f"end at {self.d.duration:.1f} s"
            time.sleep(remaining)
        self.next_step = None

    # -- live status -----------------------------------------------------------------------------------

    def status(self) -> LiveStatus:
        now = self.rec.now()
        log = self.log
        recent = self.rec.recent(log.attempts, now - 1.0, lambda a: a.end)
        writers = []
        for th in self.threads:
            if isinstance(th, workloads.LedgerWriter | workloads.Bank):
                errors = sum(1 for a in log.attempts if a.workload == th.workload and a.outcome != "ok")
                writers.append(WriterRate(th.workload, sum(1 for a in recent if a.workload == th.workload
                                                           and a.outcome == "ok"), errors))
        last_tick = max((s.tick for s in log.samples[-50:]), default=-1) - 1
        primaries: dict[str, list[str]] = {c: [] for c in self.topo.clusters}
        for s in log.samples[-50:]:
            if s.tick == last_tick and s.writable:
                primaries[s.cluster].append(s.node)
        bad = sum(1 for b in log.bank if b.error is None and b.total != log.bank_total)
        return LiveStatus(
            drill=self.d.drill, elapsed=now, duration=self.d.duration, writers=tuple(writers),
            reads=len(log.reads), stale=sum(1 for r in log.reads if r.outcome == "stale"), bank_violations=bad,
            primaries={c: tuple(sorted(n)) for c, n in primaries.items()}, running=self.running,
            next_step=self.next_step,
            messages=tuple(f"[drill {t:5.1f}s] {s}: {m}" for t, s, m in log.messages[-MESSAGES_SHOWN:]),
            message_count=len(log.messages))

    # -- the end ---------------------------------------------------------------------------------------

    def final(self) -> Final:
        topo, t = self.ctx.topo, self.t
        snap = snapshot.collect(topo)
        writable = tuple(snap.writable(t.cluster))
        now = primaries.current(topo)
        recorded = now[t.cluster]
        primary = recorded if recorded in writable else (writable[0] if writable else None)
        if primary is None:
            return Final(t.cluster, None, writable, None, error=f"no node of cluster {t.cluster} accepts writes")
        try:
            ledger = _ledger(topo, primary, t.database)
        except PgtopoError as exc:
            return Final(t.cluster, primary, writable, None, error=exc.message)
        subs = []
        for s in t.subscribers:
            node = now[s.cluster]
            self.progress("final", f"waiting for {s.subscription} on {node} to catch up")
            try:
                if not tables.caught_up(topo, primary, t.database, node, s, timeout=CATCH_UP_S):
                    self.log.notes.append(f"{s.subscription} on {node} had not caught up after {CATCH_UP_S:g} s")
                subs.append(SubscriberRows(node, s.subscription, _subscriber_rows(topo, node, s.database)))
            except PgtopoError as exc:
                subs.append(SubscriberRows(node, s.subscription, {}, error=exc.message))
        return Final(t.cluster, primary, writable, ledger, tuple(subs))

    def cleanup(self) -> None:
        note = self.log.notes.append
        steps.mend(self.ctx, note=self.message)
        # Newest first, each with what its step created (a publication, tables): a second run of the
        # drill adds the same channel again.
        for name, plan in reversed(self.ctx.faults.subscriptions):
            try:
                channels.remove_subscription(self.ctx.topo_path, name, progress=self.message)
            except PgtopoError as exc:
                note(f"could not remove subscription {name}: {exc.message}; what its step created stays")
                continue
            for left in channels.undo_created(self.ctx.topo, plan, progress=self.message):
                note(f"after removing subscription {name}: {left}")


def _ledger(topo: Topology, node: str, db: str) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    try:
        with connect.connect(topo.name, node, dbname=db) as conn:
            for w, s in conn.execute(sql.SQL("SELECT writer, seq FROM {} ORDER BY 1, 2").format(tables.LEDGER)):
                out.setdefault(str(w), []).append(int(str(s)))
    except psycopg.Error as exc:
        raise PgtopoError(f"{node}: could not read the ledger: {first_line(exc)}") from None
    return out


def _subscriber_rows(topo: Topology, node: str, db: str) -> dict[str, dict[int, int]]:
    out: dict[str, dict[int, int]] = {}
    try:
        with connect.connect(topo.name, node, dbname=db) as conn:
            for w, s, n in conn.execute(sql.SQL("SELECT writer, seq, count(*) FROM {} GROUP BY 1, 2").format(
                    tables.LEDGER)):
                out.setdefault(str(w), {})[int(str(s))] = int(str(n))
    except psycopg.Error as exc:
        raise PgtopoError(f"{node}: could not read the ledger: {first_line(exc)}") from None
    return out


def _running(topo: Topology) -> bool:
    return any(gateway.status(c) != "exited" for c in gateway.containers(topo.name, kind="node"))


def ensure_up(topo: Topology, topo_path: Path, *, recreate: bool, progress: Progress) -> None:
    if recreate:
        progress("topology", f"removing {topo.name} and its volumes (--recreate)")
        deploy.down(topo.name, volumes=True)
    if not _running(topo):
        progress("topology", f"bringing {topo.name} up")
        deploy.up(topo, topo_path=topo_path, progress=progress)


def _working_copy(d: Drill, topo_path: Path) -> Path:
    """add-subscription steps edit the topology file: they edit a copy beside it (removed at the end)."""
    if not any(s.action == "add-subscription" for s in d.steps):
        return topo_path
    copy = topo_path.with_name(f".{topo_path.stem}.drill-{d.drill}{topo_path.suffix}")
    shutil.copyfile(topo_path, copy)
    return copy


def run(drill_path: Path, *, topology: Path | None = None, recreate: bool = False, remove: bool = False,
        report_dir: Path | None = None, on_status: StatusCallback | None = None, progress: Progress = quiet) -> DrillResult:
    """Run the drill in ``drill_path`` against its topology (or ``topology``); the verdict and the report."""
    wall = time.monotonic()
    # Faults break connections inside pipelines by design; psycopg logs each as a warning, which
    # would land on the terminal (Python's last-resort handler): every attempt is recorded instead.
    logging.getLogger("psycopg").addHandler(logging.NullHandler())
    d, topo_path, topo, t = prepare(drill_path, topology=topology)
    ensure_up(topo, topo_path, recreate=recreate, progress=progress)
    found = preflight.problems(topo, snapshot.collect(topo), state.load(topo.name), t, primaries=primaries.current(topo))
    if found:
        raise InputError(f"topology '{topo.name}' is not whole: a drill starts from a healthy topology",
                         details=[*found, f"mend it, or start afresh with --recreate (removes {topo.name}'s data)"])
    bank = d.workload.bank
    tables.prepare(topo, t, accounts=bank.accounts if bank else 2, balance=bank.balance if bank else 0,
                   progress=progress)
    work_path = _working_copy(d, topo_path)
    r = _Run(d, topo, t, topo_path=work_path, progress=progress)
    ticker_halt = threading.Event()

    def tick() -> None:
        while not ticker_halt.wait(STATUS_EVERY_S):
            if on_status is not None:
                on_status(r.status())

    ticker = threading.Thread(target=tick, name="drill-status", daemon=True)
    progress("drill", f"{d.drill}: {format_duration(d.duration)}, {len(d.steps)} steps")
    try:
        r.start()
        ticker.start()
        try:
            r.timeline()
        finally:
            r.stop()
            ticker_halt.set()
            ticker.join(timeout=5)
            if on_status is not None:
                on_status(r.status())
            r.cleanup()
        progress("final", "reading what the nodes hold")
        r.log.final = r.final()
        tables.remove(r.ctx.topo, t, progress=progress, note=r.log.notes.append)
    finally:
        if work_path != topo_path:
            work_path.unlink(missing_ok=True)
    verdict = judge(r.log, d.expect)
    out_dir = None
    if report_dir is not None:
        out_dir = report.write(report_dir, drill=d, log=r.log, verdict=verdict)
        progress("report", f"written to {out_dir}")
    if remove:
        progress("topology", f"removing {topo.name} (--down)")
        deploy.down(topo.name, volumes=True)
    return DrillResult(d, r.log, verdict, out_dir, time.monotonic() - wall, r.log.notes)

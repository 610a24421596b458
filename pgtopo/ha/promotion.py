"""Carry out a failover or a switchover: fence, re-point, promote, move subscribers, demote.

The decisions are made beforehand by ``pgtopo.ha.failover`` on a frozen snapshot; this module
acts on the live nodes (SQL over the nodes' published ports, files through ``docker exec``)
and reports what it did and how long it took. Every failure names the node and the step.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from pgtopo.errors import InputError, OperationFailed, PgtopoError, first_line
from pgtopo.ha import failover, pending, synchronous
from pgtopo.ha.dataloss import Loss, fork_point, measure_loss
from pgtopo.ha.failover import Plan
from pgtopo.ha.fencing import FENCE_STOP_TIMEOUT, Fence, fence, leave_stopped, unfence
from pgtopo.ha.rejoin import rejoin
from pgtopo.ha.replication import (
    RELOAD,
    alter_system,
    container,
    converge_primary,
    create_slot,
    drop_slot,
    now,
    publishing,
    recorded_sync,
    repoint,
    set_primary_settings,
    set_slot_sync,
)
from pgtopo.ha.standby import controldata, start_as_standby, stop_postgres
from pgtopo.ha.subscribers import SubscriberResult, move_subscriber
from pgtopo.ha.synchronous import SyncConfig
from pgtopo.model.topology import Topology, slot_name
from pgtopo.observe import snapshot
from pgtopo.postgres import connect, instance
from pgtopo.postgres.lsn import format_lsn, parse_lsn
from pgtopo.postgres.sql import query, run_all
from pgtopo.postgres.streaming import wait_streaming
from pgtopo.progress import Progress
from pgtopo.runtime import gateway, state
from pgtopo.runtime.waiting import poll, wait_for

if TYPE_CHECKING:  # the Docker SDK itself is only imported by pgtopo.runtime
    from docker.models.containers import Container

SWITCHOVER_STOP_TIMEOUT = 60
SYNC_GUARD_S = 20.0  # a new primary never waits longer than this for a synchronous standby


def _parallel(jobs: dict[str, Callable[[], Any]]) -> dict[str, PgtopoError | None]:
    """Run independent jobs at once; returns each job's error (or None)."""
    out: dict[str, PgtopoError | None] = {}
    if not jobs:
        return out
    with ThreadPoolExecutor(max_workers=min(8, len(jobs))) as pool:
        futures = {name: pool.submit(fn) for name, fn in jobs.items()}
        for name, fut in futures.items():
            try:
                fut.result()
                out[name] = None
            except PgtopoError as exc:
                out[name] = exc
    return out


# -- the new primary ---------------------------------------------------------------------------------

def promote(topo: Topology, node: str) -> None:
    rows = query(topo, node, "SELECT pg_promote(wait => true, wait_seconds => 60)", step="pg_promote")
    if not rows or rows[0][0] is not True:
        raise OperationFailed("pg_promote did not finish within 60 s", node=node, step="pg_promote")


def first_write(topo: Topology, node: str, *, guard_s: float = SYNC_GUARD_S, timeout: float = 30) -> bool:
    """Commit a transaction that writes (gets an xid); True if a synchronous wait had to be released.

    A commit waits for the synchronous standbys set on the new primary; if none acknowledges
    within ``guard_s``, synchronous_standby_names is emptied: never wait for a standby that is gone.
    """
    released = threading.Event()

    def release() -> None:
        try:
            run_all(topo, node, [alter_system("synchronous_standby_names", ""), RELOAD], step="release synchronous wait")
            released.set()
        except PgtopoError:
            pass

    timer = threading.Timer(guard_s, release)
    timer.start()
    last = "no attempt finished"

    def write_accepted() -> bool:
        nonlocal last
        try:
            with connect.connect(topo.name, node, autocommit=False) as conn:
                conn.execute("SELECT pg_current_xact_id()")
            return True
        except (psycopg.Error, PgtopoError) as exc:
            last = first_line(exc)
            return False

    try:
        wait_for(write_accepted, timeout=timeout, what="a write to be accepted", step="first write", node=node,
                 interval=0.05, last_seen=lambda: last)
        return released.is_set()
    finally:
        timer.cancel()


def _record_primary(topo: Topology, cluster: str, node: str) -> None:
    state.update(topo.name, lambda rt: rt.model_copy(update={"primaries": {**rt.primaries_of(topo), cluster: node}}))


# -- failover and switchover -------------------------------------------------------------------------

@dataclass
class Outcome:
    plan: Plan
    fence: Fence | None = None
    recovery_s: float = 0.0
    promote_s: float = 0.0
    timeline: int | None = None
    loss: Loss | None = None
    sync_after: SyncConfig | None = None
    standby_slots: tuple[str, ...] = ()
    replicas: list[str] = field(default_factory=list)
    subscribers: list[SubscriberResult] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    steps: list[tuple[str, float]] = field(default_factory=list)
    resumed_from: str | None = None  # finished a failover begun (and interrupted) at this time


def plan_live(topo: Topology, *, mode: str, cluster: str | None, to: str | None, max_lag: int = failover.DEFAULT_MAX_LAG,
              force: bool = False) -> Plan:
    """Snapshot every node and plan (InputError when refused: nothing changed)."""
    gateway.require_running(topo.name)
    snap = snapshot.collect(topo)
    primaries = state.current_primaries(topo)
    if mode == "switchover":
        if to is None:
            raise InputError("switchover needs --to NODE")
        return failover.plan_switchover(topo, snap, cluster=cluster, to=to, primaries=primaries)
    c = failover.choose_cluster(topo, cluster=cluster, to=to)
    known = state.load(topo.name).last_known.get(primaries[c])
    last = (parse_lsn(known.lsn) or 0, known.timeline) if known else None
    return failover.plan_failover(topo, snap, cluster=c, to=to, max_lag=max_lag, force=force,
                                  old_primary_last_lsn=last, primaries=primaries,
                                  recorded_sync=recorded_sync(topo, c))


def _prepare_candidate(topo: Topology, plan: Plan, out: Outcome, progress: Progress) -> None:
    """Before promotion: the other replicas stream from the candidate (cascading, then they follow
    its new timeline) and the candidate holds the synchronous settings it will need as primary."""
    cand = plan.candidate
    pub = publishing(topo, plan.cluster)
    repoints = [m for m in plan.replicas if m.action == "repoint"]
    for m in repoints:
        create_slot(topo, on=cand, slot=slot_name(m.node))
    jobs: dict[str, Callable[[], Any]] = {}
    for m in repoints:
        progress(m.node, f"re-pointing to {cand} ({m.reason})")
        jobs[m.node] = functools.partial(repoint, topo, node=m.node, upstream=cand, slot_sync=pub)
    for m in plan.replicas:
        if m.action == "stay" and m.upstream == cand and pub:
            jobs[m.node] = functools.partial(set_slot_sync, topo, m.node)
    errors = _parallel(jobs)
    for node, err in errors.items():
        if err is not None:
            out.warnings.append(f"{node}: {err.message}")
    ready = {m.node for m in plan.replicas if m.upstream == cand and m.action in ("repoint", "stay")
             and errors.get(m.node) is None}
    sync = synchronous.intended_sync(topo, plan.cluster, primary=cand, available=ready)
    slots = tuple(slot_name(n) for n in ready) if pub else ()
    set_primary_settings(topo, cand, sync=sync, standby_slots=slots)


def _promote_and_write(topo: Topology, plan: Plan, out: Outcome, *, started: float, progress: Progress) -> None:
    progress(plan.candidate, "pg_promote")
    t = time.monotonic()
    promote(topo, plan.candidate)
    out.promote_s = time.monotonic() - t
    out.steps.append(("promoted", time.monotonic() - started))
    if first_write(topo, plan.candidate):
        out.warnings.append(f"no synchronous standby acknowledged within {SYNC_GUARD_S:.0f} s: "
                            f"synchronous_standby_names emptied on {plan.candidate}")
    out.recovery_s = time.monotonic() - started
    out.steps.append(("first write accepted", out.recovery_s))
    _record_primary(topo, plan.cluster, plan.candidate)
    progress(plan.candidate, f"accepts writes ({out.recovery_s:.2f} s after the command started)")
    _reset_standby_settings(topo, plan.candidate)


def _reset_standby_settings(topo: Topology, node: str) -> None:
    """Standby-only settings mean nothing on a primary: back to the rendered ones."""
    run_all(topo, node, [sql.SQL("ALTER SYSTEM RESET {}").format(sql.Identifier(n)) for n in
                         ("primary_conninfo", "primary_slot_name", "sync_replication_slots")] + [RELOAD],
            step="reset standby settings")


def _after_promotion(topo: Topology, plan: Plan, out: Outcome, *, started: float, progress: Progress) -> None:
    cand = plan.candidate
    parent, fork, tli = fork_point(topo, cand)
    out.timeline = tli
    _move_subscribers(topo, plan, out, started=started, progress=progress)
    followers = [m for m in plan.replicas if m.action in ("repoint", "stay")]
    if followers:
        progress(cand, f"waiting for {', '.join(m.node for m in followers)} to stream on timeline {tli}")
    errors = _parallel({m.node: functools.partial(wait_streaming, topo, m.node, timeline=tli) for m in followers})
    for m in followers:
        err = errors.get(m.node)
        if err is None:
            out.replicas.append(f"{m.node}: streaming on timeline {tli} from {m.upstream} ({m.action}: {m.reason})")
        else:
            out.warnings.append(f"{m.node}: {err.message}")
    for m in plan.replicas:
        if m.action in ("down", "rejoin"):
            out.replicas.append(f"{m.node}: {m.reason}")
    out.steps.append(("replicas streaming", time.monotonic() - started))
    for slot in plan.stale_slots:
        try:
            drop_slot(topo, on=cand, slot=slot)
            out.replicas.append(f"dropped stale slot {slot} on {cand}")
        except PgtopoError as exc:
            out.warnings.append(exc.message)
    if plan.mode == "failover":
        out.loss = measure_loss(topo, plan, parent_tli=parent, fork=fork)
        out.steps.append(("loss measured", time.monotonic() - started))


def _move_subscribers(topo: Topology, plan: Plan, out: Outcome, *, started: float, progress: Progress) -> None:
    for m in plan.subscribers:
        try:
            res = move_subscriber(topo, m, new_primary=plan.candidate, progress=progress)
        except PgtopoError as exc:
            res = SubscriberResult(m.subscription, m.node, "failed", exc.message)
            out.warnings.append(f"subscription {m.subscription} on {m.node}: {exc.message}")
        out.subscribers.append(res)
        if res.action == "resynced":
            out.warnings.append(f"subscription {m.subscription} on {m.node} was {res.detail}")
    out.steps.append(("subscribers moved", time.monotonic() - started))


def _finish(topo: Topology, plan: Plan, out: Outcome) -> None:
    out.sync_after, out.standby_slots = converge_primary(topo, plan.cluster, plan.candidate)
    rec = state.ChangeRecord(mode=plan.mode, cluster=plan.cluster, from_=plan.old_primary, to=plan.candidate,
                             at=now(), recovery_s=round(out.recovery_s, 3), timeline=out.timeline,
                             lost_bytes=None if out.loss is None else out.loss.bytes)
    state.update(topo.name, lambda rt: rt.model_copy(update={"last_change": rec}))


def execute_failover(topo: Topology, plan: Plan, *, started: float, progress: Progress) -> Outcome:
    """Fence the old primary, re-point the replicas to the candidate, promote, first write, then move
    subscribers, check the replicas stream, drop stale slots and measure the loss.

    Each step done is recorded (``pgtopo.ha.pending``): Ctrl-C stops the failover with
    ``Interrupted`` saying what is done, what is not and the command that finishes it.
    """
    out = Outcome(plan=plan, warnings=list(plan.warnings))
    out.steps.append(("planned", time.monotonic() - started))
    with pending.tracked(topo, plan) as done:
        out.fence = fence(topo, plan.old_primary, timeout=FENCE_STOP_TIMEOUT, progress=progress)
        done("fenced")
        progress(plan.old_primary, f"fenced: {out.fence.method} ({out.fence.detail})")
        out.steps.append(("fenced", time.monotonic() - started))
        _prepare_candidate(topo, plan, out, progress)
        done("re-pointed")
        out.steps.append(("replicas re-pointed", time.monotonic() - started))
        _promote_and_write(topo, plan, out, started=started, progress=progress)
        done("promoted", recovery_s=out.recovery_s)
        _after_promotion(topo, plan, out, started=started, progress=progress)
        _finish(topo, plan, out)
    return out


def resume_failover(topo: Topology, rec: state.PendingChange, *, started: float, progress: Progress) -> Outcome:
    """Finish a failover stopped after its candidate was promoted (``pending.unfinished``): the steps
    after the promotion, from the plan recorded with it (each is safe to run again)."""
    plan = pending.plan_of(rec)
    out = Outcome(plan=plan, warnings=list(plan.warnings), recovery_s=rec.recovery_s or 0.0, resumed_from=rec.at)
    # Promoted, whatever the record says (Ctrl-C may have come between pg_promote and the record).
    rec = rec.model_copy(update={"done": ("fenced", "re-pointed", "promoted")})
    with pending.tracked(topo, plan, resumed=rec):
        progress(plan.candidate, f"finishing the failover of cluster {plan.cluster} begun at {rec.at}")
        if first_write(topo, plan.candidate):
            out.warnings.append(f"no synchronous standby acknowledged within {SYNC_GUARD_S:.0f} s: "
                                f"synchronous_standby_names emptied on {plan.candidate}")
        _record_primary(topo, plan.cluster, plan.candidate)
        _reset_standby_settings(topo, plan.candidate)
        _after_promotion(topo, plan, out, started=started, progress=progress)
        _finish(topo, plan, out)
    return out


def execute_switchover(topo: Topology, plan: Plan, *, started: float, progress: Progress) -> Outcome:
    """Stop the old primary cleanly, promote once the candidate replayed its last record, demote."""
    out = Outcome(plan=plan, warnings=list(plan.warnings))
    old, cand = plan.old_primary, plan.candidate
    for m in plan.subscribers:
        if m.action == "move" and not m.ready:
            progress(cand, f"waiting for failover slot {m.slot} to be sync-ready")
            _wait_sync_ready(topo, cand, m.slot)
    c_old = container(topo, old)
    progress(old, "stopping writes: clean shutdown (its last WAL goes to the standbys)")
    stop_postgres(topo, c_old, timeout=SWITCHOVER_STOP_TIMEOUT)
    ctl = controldata(c_old)
    final = parse_lsn(ctl.get("Latest checkpoint location"))
    if ctl.get("Database cluster state") != "shut down" or final is None:
        _restart(c_old)
        raise OperationFailed(f"did not shut down cleanly ({ctl.get('Database cluster state')}); restarted as primary, "
                              "nothing else changed", node=old, step="stop writes")
    out.steps.append(("old primary stopped", time.monotonic() - started))
    progress(cand, f"waiting to replay {old}'s shutdown checkpoint at {format_lsn(final)}")
    try:
        _wait_replayed(topo, cand, past=final)
        out.steps.append(("candidate caught up", time.monotonic() - started))
        _prepare_candidate(topo, plan, out, progress)
        _promote_and_write(topo, plan, out, started=started, progress=progress)
    except BaseException:
        # Failed or interrupted (Ctrl-C) before the switch completed: the old primary comes back
        # only if the candidate is certainly still a standby; otherwise it stays stopped (never
        # two writable nodes) and `pgtopo status` / `rejoin` take it from there.
        if _still_standby(topo, cand):
            _restart(c_old)
        raise
    out.loss = Loss(bytes=0, commits=0, fork_lsn=final, old_end_lsn=final, exact=True,
                    source=f"{cand} replayed {old}'s shutdown checkpoint {format_lsn(final)} before promotion")
    progress(old, f"restarting as a replica of {cand}")
    try:
        create_slot(topo, on=cand, slot=slot_name(old))
        behind = [slot_name(m.node) for m in plan.replicas if m.action == "stay" and m.upstream == old]
        start_as_standby(topo, c_old, node=old, upstream=cand, primary=cand, keep_slots=behind)
    except PgtopoError:
        leave_stopped(topo, c_old, node=old, why=f"switchover: {cand} is primary, demoting {old} failed")
        raise
    unfence(topo, old)
    _after_promotion(topo, plan, out, started=started, progress=progress)
    try:
        wait_streaming(topo, old, timeline=out.timeline)
        out.replicas.insert(0, f"{old}: streaming on timeline {out.timeline} from {cand} (demoted, no rewind needed)")
    except PgtopoError:
        progress(old, "not streaming: rewinding it")
        res = rejoin(topo, old, reclone=False, progress=progress)
        out.replicas.insert(0, f"{old}: {res.method}, streaming from {cand}")
    _finish(topo, plan, out)
    return out


def _still_standby(topo: Topology, node: str) -> bool:
    try:
        rows = query(topo, node, "SELECT pg_is_in_recovery()", step="check the candidate")
    except (PgtopoError, psycopg.Error):
        return False
    return bool(rows and rows[0][0])


def _wait_sync_ready(topo: Topology, node: str, slot: str, timeout: float = 60) -> None:
    """Before anything changes: a synced slot that is still temporary would vanish on promotion."""
    def sync_ready() -> bool:
        rows = query(topo, node, "SELECT synced AND NOT temporary FROM pg_replication_slots WHERE slot_name = %s",
                     (slot,), step="wait for the failover slot")
        return bool(rows and rows[0][0])

    if poll(sync_ready, timeout=timeout, interval=0.5):
        return
    raise InputError(f"failover slot {slot} on {node} is not sync-ready after {timeout:.0f} s: nothing changed "
                     "(see its log for slot sync messages)")


def _restart(c: Container) -> None:
    instance.release(c)
    instance.wait_accepting(c)


def _wait_replayed(topo: Topology, node: str, *, past: int, timeout: float = 60) -> None:
    replayed = None

    def replayed_past() -> bool:
        nonlocal replayed
        rows = query(topo, node, "SELECT pg_last_wal_replay_lsn()::text", step="wait for the last WAL")
        replayed = parse_lsn(str(rows[0][0])) if rows and rows[0][0] else None
        return replayed is not None and replayed > past

    wait_for(replayed_past, timeout=timeout, what=f"WAL to be replayed past {format_lsn(past)}",
             step="wait for the last WAL", node=node, interval=0.05,
             last_seen=lambda: f"replayed up to {format_lsn(replayed)}; the old primary was restarted")

"""Carry out a failover: fence, prepare the candidate, promote, then move everything else.

The decisions are made beforehand by ``pgtopo.ha.failover`` on a frozen snapshot of only the
nodes they need (``plan_live``); this module acts on the live nodes (SQL over the nodes'
published ports, files through ``docker exec``) and reports what it did and how long it took.
Only what the first write needs comes before it (the fence, the candidate's slots and
synchronous standbys); the other replicas, the subscribers, stale slots and the loss come after,
at once. Every failure names the node and the step; what could not be done is listed with the
command that finishes it. ``pgtopo.ha.switchover`` shares the promotion and what follows it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import psycopg

from pgtopo.errors import InputError, OperationFailed, PgtopoError, first_line
from pgtopo.ha import failover, inherited, pending, synchronous
from pgtopo.ha.dataloss import Loss, fork_point, measure_loss
from pgtopo.ha.failover import Plan, Unfinished, heal_text, resume_command
from pgtopo.ha.fencing import FENCE_STOP_TIMEOUT, Fence, fence
from pgtopo.ha.moves import ReplicaMove, SubscriberMove
from pgtopo.ha.replication import (
    RELOAD,
    alter_system,
    converge_primary,
    drop_slot,
    now,
    primary_settings,
    primary_settings_sql,
    publishing,
    recorded_sync,
    repoint,
    set_slot_sync,
)
from pgtopo.ha.subscribers import SubscriberResult, move_all
from pgtopo.ha.synchronous import SyncConfig
from pgtopo.model import render
from pgtopo.model.topology import HOLD_SLOT, Topology, slot_name
from pgtopo.observe import snapshot
from pgtopo.postgres import connect
from pgtopo.postgres.lsn import parse_lsn
from pgtopo.postgres.sql import Query, run_all, translated
from pgtopo.postgres.streaming import wait_streaming
from pgtopo.progress import Progress
from pgtopo.runtime import state
from pgtopo.runtime.waiting import wait_for

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

PROMOTE_TIMEOUT_S = 60.0
PROMOTE_POLL_S = 0.005


def promote(topo: Topology, node: str, *, timeout: float = PROMOTE_TIMEOUT_S, port: int | None = None,
            connected: Callable[[], None] | None = None, signalled: Callable[[], None] | None = None,
            promoted_on: Callable[[psycopg.Connection[Any]], None] | None = None,
            conn: psycopg.Connection[Any] | None = None) -> None:
    """Promote ``node`` and return once it is out of recovery (``connected`` is called once the
    connection is open, so that a failover's timings tell the connection from the promotion;
    ``signalled`` once the promotion is requested; ``promoted_on`` with the connection once
    recovery ended: the first write needs no new one).

    ``pg_promote(wait => true)`` looks whether recovery ended every 100 ms (PostgreSQL's
    WAITS_PER_SECOND), so it returned after 0.1 s however quickly the promotion ended (tens of
    ms): a tenth of a second more of write outage. The promotion is signalled without waiting and
    its end watched on the same connection every 5 ms instead. ``conn``: an open autocommit
    connection to ``node`` (left open), else a new one.
    """
    with translated(node=node, step="pg_promote"), \
            contextlib.nullcontext(conn) if conn is not None else connect.connect(topo.name, node, port=port) as conn:
        if connected is not None:
            connected()
        row = conn.execute("SELECT pg_promote(wait => false)").fetchone()
        if not row or row[0] is not True:
            raise OperationFailed("pg_promote could not signal the promotion", node=node, step="pg_promote")
        if signalled is not None:
            signalled()

        def promoted() -> bool:
            got = conn.execute("SELECT pg_is_in_recovery()").fetchone()
            return got is not None and got[0] is False

        wait_for(promoted, timeout=timeout, what="the promotion to end (pg_promote)", step="pg_promote", node=node,
                 interval=PROMOTE_POLL_S)
        if promoted_on is not None:
            promoted_on(conn)


def first_write(topo: Topology, node: str, *, guard_s: float = SYNC_GUARD_S, timeout: float = 30,
                port: int | None = None, conn: psycopg.Connection[Any] | None = None) -> bool:
    """Commit a transaction that writes (gets an xid); True if a synchronous wait had to be released.

    A commit waits for the synchronous standbys set on the new primary; if none acknowledges
    within ``guard_s``, synchronous_standby_names is emptied: never wait for a standby that is gone.
    The first attempt is on ``conn`` if given (the promotion's, in autocommit: a transaction
    started after recovery ended may write); the others on new connections.
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
        first = last == "no attempt finished"
        try:
            if first and conn is not None:
                conn.execute("SELECT pg_current_xact_id()")
                return True
            # The known port on the first attempt; a retry looks it up again (a restarted
            # container may publish another one).
            with connect.connect(topo.name, node, autocommit=False, port=port if first else None) as new:
                new.execute("SELECT pg_current_xact_id()")
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


def _record_moved(topo: Topology, pointed: dict[str, str]) -> None:
    """Which cascades stream from another node than the file's (``failover.moved_after``)."""
    if pointed:
        state.update(topo.name, lambda rt: rt.model_copy(
            update={"moved": failover.moved_after(topo, rt.moved, pointed=pointed)}))


# -- failover ------------------------------------------------------------------------------------------

SNAPSHOT_TIMEOUT_S = 5.0  # a node that has not answered by then is planned for as unreachable


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
    unfinished: list[Unfinished] = field(default_factory=list)


Collector = Callable[..., snapshot.Snapshot]
SlotReader = Callable[[Topology, str, "connect.Held | None"], tuple[snapshot.Slot, ...]]


def read_slots(topo: Topology, node: str, held: connect.Held | None) -> tuple[snapshot.Slot, ...]:
    """``node``'s replication slots, on the connection ``held`` keeps for it (else a new one)."""
    conn = held.get(node) if held is not None else None
    with translated(node=node, step="read the candidate's slots"):
        if conn is not None:
            return snapshot.slots(conn)
        with connect.connect(topo.name, node) as new:
            return snapshot.slots(new)


def plan_live(topo: Topology, *, mode: str, cluster: str | None, to: str | None, max_lag: int = failover.DEFAULT_MAX_LAG,
              force: bool = False, collect: Collector = snapshot.collect, unattended: bool = False,
              held: connect.Held | None = None, slots_of: SlotReader = read_slots) -> Plan:
    """Snapshot the nodes the decision needs and plan (InputError when refused: nothing changed).

    Only the cluster's members and its subscribers are asked (``failover.scope``), all at once,
    each within ``SNAPSHOT_TIMEOUT_S``: the time to decide grows neither with the rest of the
    topology nor with a node that hangs. The members are asked only what the plan needs (a light
    snapshot), the subscribers only their role and subscriptions.

    A failover leaves out, too, the cascaded replicas their upstream is seen streaming
    (``failover.deferrable``, ``failover.streamed_by``): they hold no more WAL than it and stay
    behind it, and are asked after the first write (while re-pointing and checking the replicas).
    Not under a partition, nor with ``--to``, nor when the plan could depend on them (a refusal,
    or an upstream with more WAL than the chosen candidate): then they are asked before deciding.

    An ``unattended`` failover (``--yes``, a drill: nobody reads the plan before it runs) asks its
    subscribers after the first write as well (``Plan.subscribers_later``): the choice of candidate
    does not depend on them, only what becomes of their subscriptions. Not under a partition: the
    plan then says which subscribers could not reach each candidate. Its replicas are asked only
    what ranks them (``rank_only``: no slots nor settings, which only the chosen candidate's and the
    old primary's matter for), and the chosen candidate's slots are read once it is chosen
    (``slots_of``), on the connection ``held`` keeps for it: the connections that answered stay
    open there for the steps up to the first write.
    """
    if mode == "switchover" and to is None:
        raise InputError("switchover needs --to NODE")
    c = failover.choose_cluster(topo, cluster=cluster, to=to)
    primaries = state.current_primaries(topo)
    members = topo.clusters[c].nodes
    subscribers = [n for n in failover.subscriber_nodes(topo, c, primaries) if n not in members]
    runtime = state.load(topo.name)
    ask_all = mode != "failover" or to is not None or bool(runtime.partitioned)
    later = {} if ask_all else failover.deferrable(topo, c, primaries[c], moved=runtime.moved)
    subscribers_later = unattended and mode == "failover" and not runtime.partitioned
    # Only what ranks a replica, when the plan's subscriber part waits for the first write (the
    # candidate's slots feed it and the stale slots: read below, once the candidate is chosen).
    ranked = {n for n in members if n != primaries[c]} if subscribers_later else set()

    scope = [n for n in failover.scope(topo, c, primaries) if not (subscribers_later and n in subscribers)]
    # One Docker call for every round of questions below (only the cluster's containers when its
    # subscribers are asked after the first write).
    listed = snapshot.containers(topo, scope)

    def ask(nodes: list[str]) -> snapshot.Snapshot:
        return collect(topo, nodes=nodes, timeout=SNAPSHOT_TIMEOUT_S, light=True,
                       subscriptions_only=[n for n in subscribers if n in nodes],
                       rank_only=[n for n in nodes if n in ranked], listed=listed, held=held)

    snap = ask([n for n in scope if n not in later])
    if all(n.container == "missing" for n in snap.nodes.values()):
        raise OperationFailed(f"topology '{topo.name}' is not running (no containers); start it with `pgtopo up`")
    if mode == "switchover":
        assert to is not None
        return failover.plan_switchover(topo, snap, cluster=c, to=to, primaries=primaries)
    known = runtime.last_known.get(primaries[c])
    last = (parse_lsn(known.lsn) or 0, known.timeline) if known else None
    deferred, unseen = failover.streamed_by(snap, later)

    def plan_on(s: snapshot.Snapshot, left_out: dict[str, str]) -> Plan:
        return failover.plan_failover(topo, s, cluster=c, to=to, max_lag=max_lag, force=force,
                                      old_primary_last_lsn=last, primaries=primaries,
                                      recorded_sync=recorded_sync(topo, c), deferred=left_out,
                                      subscribers_later=subscribers_later)

    def decided() -> tuple[Plan, snapshot.Snapshot]:
        s = _merged(snap, ask(unseen)) if unseen else snap
        if deferred:
            try:
                plan = plan_on(s, deferred)
                if not failover.deferral_unsafe(plan, s, deferred):
                    return plan, s
            except InputError:
                pass  # a refusal names every replica: asked below
            s = _merged(s, ask(list(deferred)))
        return plan_on(s, {}), s

    plan, final = decided()
    if plan.candidate in ranked:
        plan = failover.with_candidate_slots(topo, plan, final, slots_of(topo, plan.candidate, held))
    return plan


def _merged(a: snapshot.Snapshot, b: snapshot.Snapshot) -> snapshot.Snapshot:
    return dataclasses.replace(a, nodes={**a.nodes, **b.nodes})


def _early(plan: Plan) -> list[ReplicaMove]:
    """The replicas re-pointed before promotion: only the synchronous standbys the new primary's first
    commit waits for. The others follow after the first write (they follow the new timeline then too)."""
    needed = set(plan.sync_after.standbys) if plan.sync_after else set()
    return [m for m in plan.replicas if m.action == "repoint" and m.node in needed and not m.waits]


def _held(plan: Plan) -> list[str]:
    """The replicas re-pointed after the first write: until then the candidate keeps their WAL with
    ``HOLD_SLOT``, and their own slots are copied from it (same restart position) after it."""
    early = {m.node for m in _early(plan)}
    return [m.node for m in plan.replicas if m.action == "repoint" and m.node not in early]


def slots_from_hold(plan: Plan) -> list[Query]:
    """After the first write: the held replicas' own slots, copied from ``HOLD_SLOT`` (so they keep
    WAL from where it did, before the promotion), then ``HOLD_SLOT`` dropped (one an earlier,
    failed attempt left too)."""
    return [*(render.copy_physical_slot(slot_name(n), source=HOLD_SLOT) for n in _held(plan)),
            render.drop_idle_slot(HOLD_SLOT)]


def prepare_candidate(topo: Topology, plan: Plan, out: Outcome, progress: Progress, *, port: int | None = None,
                      conn: psycopg.Connection[Any] | None = None) -> set[str]:
    """Before promotion: the candidate keeps the WAL of every replica that will stream from it (the
    synchronous standbys re-pointed now get their own slots, the others share ``HOLD_SLOT``: one
    slot's writes and fsyncs before the promotion, not one per replica), its synchronous standbys
    stream from it, and it holds the synchronous settings it needs as primary. Returns the replicas
    whose re-pointing failed."""
    cand = plan.candidate
    pub = publishing(topo, plan.cluster)
    early = _early(plan)
    own = [slot_name(m.node) for m in early] + ([HOLD_SLOT] if _held(plan) else [])
    slots: list[Query] = [render.create_physical_slot(s, reserve_wal=True) for s in own]
    if not early:
        # Nobody to re-point first: the slots and the settings in one connection.
        run_all(topo, cand, [*slots, *_candidate_settings(topo, plan, failed=set(), pub=pub)],
                step="create slots, synchronous settings", port=port, conn=conn)
        return set()
    if slots:
        run_all(topo, cand, slots, step="create slots", port=port, conn=conn)
    jobs: dict[str, Callable[[], Any]] = {}
    for m in early:
        progress(m.node, f"re-pointing to {cand} ({m.reason})")
        jobs[m.node] = functools.partial(repoint, topo, node=m.node, upstream=cand, slot_sync=pub)
    errors = _parallel(jobs)
    failed = {node for node, err in errors.items() if err is not None}
    for node, err in errors.items():
        if err is not None:
            out.warnings.append(f"{node}: {err.message}")
            out.unfinished.append(Unfinished(f"{node} not re-pointed to {cand} ({err.message})",
                                             f"pgtopo rejoin {{file}} {node}"))
    run_all(topo, cand, _candidate_settings(topo, plan, failed=failed, pub=pub), step="synchronous settings", port=port,
            conn=conn)
    return failed


def _candidate_settings(topo: Topology, plan: Plan, *, failed: set[str], pub: bool) -> list[Query]:
    """The synchronous settings the candidate needs as primary: every standby that will stream from it
    now, whether re-pointed before or after the promotion (not ``failed``); a partition's prisoners
    are no synchronous standbys and hold no failover slot back."""
    ready = set(plan.direct_standbys()) - failed
    sync = synchronous.intended_sync(topo, plan.cluster, primary=plan.candidate, available=ready)
    slots = tuple(slot_name(n) for n in plan.direct_standbys() if n in ready) if pub else ()
    return primary_settings_sql(topo, plan.candidate, sync=sync, standby_slots=slots, promoting=True)


def promote_and_write(topo: Topology, plan: Plan, out: Outcome, *, started: float, progress: Progress,
                      port: int | None = None, conn: psycopg.Connection[Any] | None = None) -> None:
    progress(plan.candidate, "pg_promote")
    t = time.monotonic()

    def write_on(conn: psycopg.Connection[Any]) -> None:
        out.promote_s = time.monotonic() - t
        out.steps.append(("promoted", time.monotonic() - started))
        if first_write(topo, plan.candidate, port=port, conn=conn):
            out.warnings.append(f"no synchronous standby acknowledged within {SYNC_GUARD_S:.0f} s: "
                                f"synchronous_standby_names emptied on {plan.candidate}")

    requested = False

    def signalled() -> None:
        nonlocal requested
        requested = True

    try:
        promote(topo, plan.candidate, port=port, promoted_on=write_on, signalled=signalled, conn=conn,
                connected=lambda: out.steps.append(("connected to the candidate", time.monotonic() - started)))
    except BaseException:
        if not requested:  # still a standby: it keeps no WAL for replicas that may never follow it
            release_hold(topo, plan.candidate)
        raise
    out.recovery_s = time.monotonic() - started
    out.steps.append(("first write accepted", out.recovery_s))
    _record_primary(topo, plan.cluster, plan.candidate)
    progress(plan.candidate, f"accepts writes ({out.recovery_s:.2f} s after the command started)")


def after_promotion(topo: Topology, plan: Plan, out: Outcome, *, started: float, progress: Progress,
                     failed: set[str], own: Sequence[inherited.Inherited] = ()) -> None:
    """Everything the first write did not need, at once: the other replicas re-pointed and streaming,
    the subscribers moved; then stale slots dropped and the loss measured; then the subscriptions
    the new primary inherited (``own``, read before the promotion) carried on or re-synchronised."""
    cand = plan.candidate
    run_all(topo, cand, [*slots_from_hold(plan), *primary_settings(topo, cand), RELOAD], step="reset standby settings")
    parent, fork, tli = fork_point(topo, cand)
    out.timeline = tli
    pub = publishing(topo, plan.cluster)
    early = {m.node for m in _early(plan)}
    followers = [m for m in plan.replicas if m.action in ("repoint", "stay") and m.node not in failed]

    def follow(m: ReplicaMove) -> None:
        if m.action == "repoint" and m.node not in early:
            progress(m.node, f"re-pointing to {cand} ({m.reason})")
            repoint(topo, node=m.node, upstream=cand, slot_sync=pub)
        elif m.action == "stay" and m.upstream == cand and pub and not m.waits:
            set_slot_sync(topo, m.node)
        if not m.waits:
            wait_streaming(topo, m.node, timeline=tli)

    jobs: dict[str, Callable[[], Any]] = {m.node: functools.partial(follow, m) for m in followers}
    subs: list[SubscriberResult] = []
    moves: list[SubscriberMove] = list(plan.subscribers)

    def subscribers() -> None:
        if plan.subscribers_later:
            nodes = [n for _c, n in plan.subscribers_later]
            progress(cand, f"asking the subscribers {', '.join(nodes)}")
            try:
                asked = snapshot.collect(topo, nodes=nodes, timeout=SNAPSHOT_TIMEOUT_S, light=True,
                                         subscriptions_only=nodes)
            except PgtopoError as exc:
                out.warnings.append(f"the subscribers could not be asked: {exc.message}")
                out.unfinished.append(Unfinished(f"the subscriptions to cluster {plan.cluster} not moved "
                                                 f"({exc.message})", resume_command(plan.cluster)))
                return
            moves.extend(failover.later_subscriber_moves(topo, plan, asked))
            out.warnings.extend(failover.subscriber_warnings(moves))
        subs.extend(move_all(topo, moves, new_primary=cand, progress=progress))

    if plan.subscribers or plan.subscribers_later:
        jobs["subscribers"] = subscribers
    errors = _parallel(jobs)
    _record_moved(topo, {m.node: cand for m in plan.replicas if m.action == "repoint" and m.node not in failed
                         and errors.get(m.node) is None})
    _report_replicas(plan, out, errors, tli=tli)
    _report_subscribers(plan.cluster, moves, out, subs)
    out.steps.append(("replicas and subscribers", time.monotonic() - started))
    for slot in plan.stale_slots:
        try:
            drop_slot(topo, on=cand, slot=slot)
            out.replicas.append(f"dropped stale slot {slot} on {cand}")
        except PgtopoError as exc:
            out.warnings.append(exc.message)
    if plan.mode == "failover":
        out.loss = measure_loss(topo, plan, parent_tli=parent, fork=fork)
        out.steps.append(("loss measured", time.monotonic() - started))
    if own:
        _carry_on(topo, plan, out, own, progress=progress)
        out.steps.append(("its own subscriptions", time.monotonic() - started))


def _carry_on(topo: Topology, plan: Plan, out: Outcome, own: Sequence[inherited.Inherited], *,
              progress: Progress) -> None:
    lost = out.loss.bytes if out.loss is not None and out.loss.exact else None
    for res in inherited.carry_on(topo, own, lost_bytes=lost, progress=progress):
        out.subscribers.append(res)
        if res.action == "resynced":
            out.warnings.append(f"subscription {res.subscription} on {res.node} was {res.detail}")
        elif res.action in ("failed", "skipped"):
            out.warnings.append(f"subscription {res.subscription} on {res.node}: {res.detail}")
            out.unfinished.append(Unfinished(f"subscription {res.subscription} on {res.node} ({res.detail})",
                                             "pgtopo verify {file}"))


def _report_replicas(plan: Plan, out: Outcome, errors: dict[str, PgtopoError | None], *, tli: int) -> None:
    for m in plan.replicas:
        err = errors.get(m.node)
        if m.action in ("down", "rejoin"):
            out.replicas.append(f"{m.node}: {m.reason}")
            if m.action == "rejoin":  # alive, and not following: not done (a node that is down follows on rejoin)
                out.unfinished.append(Unfinished(f"{m.node} cannot follow {plan.candidate}'s timeline",
                                                 f"pgtopo rejoin {{file}} {m.node}",
                                                 after=heal_text(m.cut_by) if m.cut_by else ""))
        elif m.action not in ("repoint", "stay"):
            continue
        elif m.node not in errors:
            continue  # its re-pointing failed before the promotion: reported then
        elif err is not None:
            out.warnings.append(f"{m.node}: {err.message}")
            out.unfinished.append(Unfinished(f"{m.node} not streaming from {m.upstream} ({err.message})",
                                             f"pgtopo rejoin {{file}} {m.node}"))
        elif m.waits:
            out.replicas.append(f"{m.node}: {m.action} -> {m.upstream}, not streaming yet: {m.waits}")
            out.unfinished.append(Unfinished(f"{m.node} cut off ({m.waits})", resume_command(plan.cluster),
                                             after=heal_text(m.cut_by)))
        else:
            out.replicas.append(f"{m.node}: streaming on timeline {tli} from {m.upstream} ({m.action}: {m.reason})")


def _report_subscribers(cluster: str, moves: Sequence[SubscriberMove], out: Outcome,
                        results: list[SubscriberResult]) -> None:
    by_name = {m.subscription: m for m in moves}
    for res in results:
        out.subscribers.append(res)
        m = by_name[res.subscription]
        if res.action == "resynced":
            out.warnings.append(f"subscription {res.subscription} on {res.node} was {res.detail}")
        elif res.action == "failed":
            out.warnings.append(f"subscription {res.subscription} on {res.node}: {res.detail}")
            out.unfinished.append(Unfinished(f"subscription {res.subscription} on {res.node} ({res.detail})",
                                             resume_command(cluster)))
        elif res.action == "pending":
            out.unfinished.append(Unfinished(f"subscription {res.subscription} on {res.node} ({m.waits})",
                                             resume_command(cluster), after=heal_text(m.cut_by)))
        elif m.action == "unreachable":
            out.unfinished.append(Unfinished(f"subscription {res.subscription} on {res.node} ({res.detail})",
                                             resume_command(cluster), after=f"{res.node} is back"))
        elif m.action == "missing":
            out.unfinished.append(Unfinished(f"subscription {res.subscription} ({res.detail})", "pgtopo up {file}"))


def finish(topo: Topology, plan: Plan, out: Outcome) -> None:
    out.sync_after, out.standby_slots = converge_primary(topo, plan.cluster, plan.candidate)
    rec = state.ChangeRecord(mode=plan.mode, cluster=plan.cluster, from_=plan.old_primary, to=plan.candidate,
                             at=now(), recovery_s=round(out.recovery_s, 3), timeline=out.timeline,
                             lost_bytes=None if out.loss is None else out.loss.bytes)
    state.update(topo.name, lambda rt: rt.model_copy(update={"last_change": rec}))


def execute_failover(topo: Topology, plan: Plan, *, started: float, progress: Progress,
                     on_writable: Callable[[], None] | None = None, held: connect.Held | None = None) -> Outcome:
    """Fence the old primary, prepare the candidate (slots, synchronous standbys), promote and accept
    the first write; then everything else at once: re-point and check the replicas, move the
    subscribers; drop stale slots and measure the loss. ``Outcome.unfinished`` lists what could not
    be done, each with the command that finishes it. ``on_writable`` is called once the first write
    is accepted (an unattended run shows its plan then: nothing before the first write waits for it).
    ``held``: the connections the plan kept open (``plan_live``); the candidate is prepared, promoted
    and written to on its own, and all are closed once the first write is accepted (their backends'
    exits then no longer compete with the promotion for the CPUs).

    Each step done is recorded (``pgtopo.ha.pending``): Ctrl-C stops the failover with
    ``Interrupted`` saying what is done, what is not and the command that finishes it.
    """
    out = Outcome(plan=plan, warnings=list(plan.warnings))
    out.steps.append(("planned", time.monotonic() - started))
    with pending.tracked(topo, plan) as done:
        out.fence = fence(topo, plan.old_primary, timeout=FENCE_STOP_TIMEOUT, progress=progress,
                          kill=plan.fence == "kill")
        done("fenced")
        progress(plan.old_primary, f"fenced: {out.fence.method} ({out.fence.detail})")
        out.steps.append(("fenced", time.monotonic() - started))
        conn = held.get(plan.candidate) if held is not None else None
        # Its host port once (a Docker call), not before each of the four connections to come; none
        # when the plan's connection to it is open (a retry of the first write looks it up).
        port = connect.node_port(topo.name, plan.candidate) if conn is None else None
        try:
            failed = prepare_candidate(topo, plan, out, progress, port=port, conn=conn)
            done("re-pointed")
            out.steps.append(("candidate prepared", time.monotonic() - started))
            own: list[inherited.Inherited] = []
            if topo.clusters[plan.cluster].subscriptions:
                progress(plan.candidate, "reading the subscriptions it inherits (origin and slot positions)")
                own = inherited.read(topo, cluster=plan.cluster, candidate=plan.candidate)
                out.steps.append(("subscriptions read", time.monotonic() - started))
        except BaseException:
            release_hold(topo, plan.candidate)
            raise
        promote_and_write(topo, plan, out, started=started, progress=progress, port=port, conn=conn)
        if held is not None:
            held.close()
        done("promoted", recovery_s=out.recovery_s)
        if on_writable is not None:
            on_writable()
        _after_promotion_or_unfinished(topo, plan, out, started=started, progress=progress, failed=failed, own=own)
    return out


def release_hold(topo: Topology, node: str) -> None:
    """A candidate that stays a standby (its preparation or the promotion's request failed, or was
    interrupted) keeps no WAL for replicas that may never follow it (best effort: a node that does
    not answer keeps ``HOLD_SLOT`` until it is re-pointed or promoted: both drop it)."""
    with contextlib.suppress(PgtopoError):
        run_all(topo, node, [render.drop_idle_slot(HOLD_SLOT, standby_only=True)], step="drop the hold slot")


def _after_promotion_or_unfinished(topo: Topology, plan: Plan, out: Outcome, *, started: float, progress: Progress,
                                   failed: set[str], own: Sequence[inherited.Inherited]) -> None:
    try:
        after_promotion(topo, plan, out, started=started, progress=progress, failed=failed, own=own)
        finish(topo, plan, out)
    except PgtopoError as exc:
        # Promoted and accepting writes: what is left is finished by --resume, never by failing over again.
        out.warnings.append(exc.message)
        out.unfinished.append(Unfinished(f"the steps after the promotion ({exc.message})", resume_command(plan.cluster)))

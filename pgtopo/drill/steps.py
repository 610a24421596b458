"""Carry out one step of a drill with pgtopo's own operations (the ones its commands run).

Each returns a line saying what happened (and, for failover and switchover, what was reported
lost); a failure is a ``PgtopoError``. :class:`Faults` remembers what the drill broke, so that the
end of a drill heals partitions, resets latency and unpauses nodes whatever happened.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from pgtopo.drill import primaries
from pgtopo.drill.events import ReportedLoss
from pgtopo.drill.spec import OLD_PRIMARY, PRIMARY, REPLICA, LatencyChange, Step, WaitUntil, format_duration, role_word
from pgtopo.errors import InputError, OperationFailed, PgtopoError
from pgtopo.ha import failover, fencing, manager, promotion, rejoin, switchover
from pgtopo.ha.promotion import Outcome
from pgtopo.logical import channel_request, channels
from pgtopo.logical.channel_plan import AddPlan
from pgtopo.model import loader
from pgtopo.model.topology import Topology
from pgtopo.network import latency
from pgtopo.observe import snapshot
from pgtopo.postgres.connect import Held
from pgtopo.postgres.lsn import parse_lsn
from pgtopo.postgres.sql import query
from pgtopo.progress import Progress
from pgtopo.runtime import gateway, state
from pgtopo.runtime.waiting import wait_for


@dataclass
class Faults:
    """What the drill broke and has not mended yet."""

    paused: set[str] = field(default_factory=set)
    partitioned: set[str] = field(default_factory=set)
    links: set[tuple[str, str]] = field(default_factory=set)
    subscriptions: list[tuple[str, AddPlan]] = field(default_factory=list)  # added by add-subscription steps


@dataclass
class StepContext:
    topo: Topology
    topo_path: Path  # the file add-subscription edits (a working copy)
    cluster: str
    progress: Progress
    faults: Faults = field(default_factory=Faults)
    old_primaries: dict[str, str] = field(default_factory=dict)  # cluster -> its primary before the last fault


@dataclass(frozen=True)
class StepOutcome:
    detail: str
    loss: ReportedLoss | None = None


def current_primary(ctx: StepContext, cluster: str | None = None) -> str:
    c = cluster or ctx.cluster
    return primaries.current(ctx.topo)[c] if primaries.managed(ctx.topo, c) else state.current_primaries(ctx.topo)[c]


def resolve(ctx: StepContext, name: str) -> str:
    """A node name, or ``primary`` / ``replica`` / ``old-primary`` (``@CLUSTER``: of that cluster, else
    of the drill's cluster)."""
    if name in ctx.topo.node_names() or name in ctx.topo.regions:
        return name
    role = role_word(name)
    if role is None:
        raise InputError(f"unknown node '{name}'")
    word, cluster = role[0], role[1] or ctx.cluster
    if word == PRIMARY:
        return current_primary(ctx, cluster)
    if word == REPLICA:
        return best_replica(ctx.topo, cluster)
    assert word == OLD_PRIMARY
    if cluster not in ctx.old_primaries:
        raise InputError(f"{name}: no step of this drill has killed, paused or replaced the primary of cluster "
                         f"{cluster} yet")
    return ctx.old_primaries[cluster]


def _note_primary(ctx: StepContext, node: str) -> None:
    cluster = ctx.topo.cluster_of(node)
    if node == current_primary(ctx, cluster):
        ctx.old_primaries[cluster] = node


def run(ctx: StepContext, step: Step) -> StepOutcome:
    a = step.action
    if a == "kill":
        node = resolve(ctx, step.kill or "")
        _note_primary(ctx, node)
        last = fencing.kill_node(ctx.topo, node)
        return StepOutcome(f"killed {node}" + (f" at {last}" if last else ""))
    if a == "unpause" and step.unpause == "all":
        done = [_pause(ctx, node, pause=False).detail for node in sorted(ctx.faults.paused)]
        return StepOutcome("; ".join(done) or "nothing was paused")
    if a in ("pause", "unpause"):
        return _pause(ctx, resolve(ctx, getattr(step, a)), pause=a == "pause")
    if a == "partition":
        name = resolve(ctx, step.partition or "")
        ch = latency.partition(ctx.topo, name)
        ctx.faults.partitioned.add(name)
        return StepOutcome(f"{ch.kind} {name} cut off: {len(ch.paths)} paths" if ch.changed else f"{name} was already cut")
    if a == "heal":
        healed = None if step.heal == "all" else resolve(ctx, step.heal or "")
        ch = latency.heal(ctx.topo, healed)
        ctx.faults.partitioned = set(ch.partitioned)
        return StepOutcome(f"healed {healed or 'every partition'}: {len(ch.paths)} paths restored")
    if a == "latency" and step.latency is not None:
        return _latency(ctx, step.latency)
    if a == "failover" and step.failover is not None:
        f = step.failover
        cluster = f.cluster or ctx.cluster
        started = time.monotonic()
        if primaries.managed(ctx.topo, cluster):  # through Patroni, as `pgtopo failover` does
            return _through_manager(ctx, "failover", cluster, to=resolve(ctx, f.to) if f.to else None, started=started,
                                    force=f.force, max_lag=failover.DEFAULT_MAX_LAG if f.max_lag is None else f.max_lag)
        with Held() as held:  # the plan's connections serve the steps up to the first write
            plan = promotion.plan_live(ctx.topo, mode="failover", cluster=cluster,
                                       to=resolve(ctx, f.to) if f.to else None, force=f.force,
                                       max_lag=failover.DEFAULT_MAX_LAG if f.max_lag is None else f.max_lag,
                                       unattended=True, held=held)
            ctx.old_primaries[cluster] = plan.old_primary
            return _outcome(promotion.execute_failover(ctx.topo, plan, started=started, progress=ctx.progress,
                                                       held=held))
    if a == "switchover" and step.switchover is not None:
        s = step.switchover
        cluster = s.cluster or ctx.cluster
        started = time.monotonic()
        if primaries.managed(ctx.topo, cluster):  # through Patroni, as `pgtopo switchover` does
            return _through_manager(ctx, "switchover", cluster, to=resolve(ctx, s.to) if s.to else None,
                                    started=started)
        to = resolve(ctx, s.to) if s.to else best_replica(ctx.topo, cluster)
        plan = promotion.plan_live(ctx.topo, mode="switchover", cluster=cluster, to=to)
        ctx.old_primaries[cluster] = plan.old_primary
        return _outcome(switchover.execute_switchover(ctx.topo, plan, started=started, progress=ctx.progress))
    if a == "rejoin" and step.rejoin is not None:
        node = resolve(ctx, step.rejoin.node)
        if primaries.managed(ctx.topo, ctx.topo.cluster_of(node)):
            return _manager_rejoin(ctx, node)
        res = rejoin.rejoin(ctx.topo, node, reclone=step.rejoin.reclone, progress=ctx.progress)
        return StepOutcome(f"{node} streams from {res.upstream} ({res.method}, {res.seconds:.1f} s)")
    if a == "add-subscription" and step.add_subscription is not None:
        return _add_subscription(ctx, step)
    if a == "wait":
        time.sleep(step.wait or 0.0)
        return StepOutcome(f"waited {format_duration(step.wait or 0.0)}")
    assert step.wait_until is not None
    return _wait_until(ctx, step.wait_until)


def _pause(ctx: StepContext, node: str, *, pause: bool) -> StepOutcome:
    c = gateway.find(ctx.topo.name, node)
    if c is None:
        raise InputError(f"{node} has no container")
    st = gateway.status(c)
    if pause:
        if st != "running":
            raise InputError(f"{node} is not running (container {st}): nothing to pause")
        _note_primary(ctx, node)
        gateway.pause(c)
        ctx.faults.paused.add(node)
        return StepOutcome(f"paused {node} (docker pause: frozen with its sockets open)")
    if st != "paused":
        raise InputError(f"{node} is not paused (container {st})")
    gateway.unpause(c)
    ctx.faults.paused.discard(node)
    return StepOutcome(f"unpaused {node}")


def _latency(ctx: StepContext, change: LatencyChange) -> StepOutcome:
    a, b = change.between
    if change.reset:
        latency.reset(ctx.topo, (a, b))
        ctx.faults.links.discard((a, b))
        return StepOutcome(f"{a} <-> {b}: the file's latency again")
    rtt = change.rtt or 0.0
    s = latency.set_link(ctx.topo, a, b, rtt=f"{rtt * 1000:g}ms",
                         jitter=f"{change.jitter * 1000:g}ms" if change.jitter is not None else None)
    ctx.faults.links.add((a, b))
    return StepOutcome(f"{a} <-> {b}: round trip {s.rtt_ms:g} ms" + (f" ±{s.jitter_ms:g}" if s.jitter_ms else ""))


def _outcome(o: Outcome) -> StepOutcome:
    p = o.plan
    loss = None
    if o.loss is not None:
        loss = ReportedLoss(cluster=p.cluster, old_primary=p.old_primary, new_primary=p.candidate, bytes=o.loss.bytes,
                            commits=o.loss.commits, exact=o.loss.exact, fork_lsn=o.loss.fork_lsn, timeline=o.timeline)
    lost = f"; data lost: {o.loss.text()}" if o.loss is not None else ""
    subs = "".join(f"; subscription {s.subscription} on {s.node}: {s.action}"
                   + (f" ({s.detail})" if s.action in ("failed", "pending") else "") for s in o.subscribers)
    timings = ", ".join(f"{name} {t:.1f} s" for name, t in o.steps)
    return StepOutcome(f"{p.old_primary} -> {p.candidate} (timeline {o.timeline}) in {o.recovery_s:.2f} s{lost}{subs} "
                       f"({timings})", loss)


def best_replica(topo: Topology, cluster: str) -> str:
    """``replica``, and the switchover target when the step names none: a streaming replica,
    highest failover priority first."""
    snap = snapshot.collect(topo)
    streaming = [n for n in snap.cluster_nodes(cluster) if n.reachable and n.in_recovery and
                 n.receiver_status == "streaming"]
    if not streaming:
        raise InputError(f"no replica of cluster {cluster} is streaming")
    return sorted(streaming, key=lambda n: (-topo.node(n.node).failover_priority, n.node))[0].node


def _through_manager(ctx: StepContext, mode: str, cluster: str, *, to: str | None, started: float,
                     force: bool = False, max_lag: int = failover.DEFAULT_MAX_LAG) -> StepOutcome:
    """A failover or switchover of a Patroni cluster: Patroni's REST API makes it (pgtopo's ranking
    picks the candidate unless the step names one), never pgtopo's own promotion behind its back."""
    plan = manager.plan_live(ctx.topo, mode=mode, cluster=cluster, to=to, max_lag=max_lag, force=force)
    if plan.leader:
        ctx.old_primaries[cluster] = plan.leader
    out = manager.execute(ctx.topo, plan, started=started, progress=ctx.progress)
    timings = ", ".join(f"{name} {t:.1f} s" for name, t in out.steps)
    return StepOutcome(f"{plan.leader or 'no leader'} -> {plan.candidate} through Patroni (timeline {out.timeline}) "
                       f"in {out.recovery_s:.2f} s ({timings})")


def _manager_rejoin(ctx: StepContext, node: str) -> StepOutcome:
    """A member of a Patroni cluster rejoins by itself once it runs: `pgtopo rejoin` starts its
    container if it is stopped and waits until Patroni shows it streaming (and, when it may be a
    synchronous standby, counted as one: a next fault then finds a synchronous candidate)."""
    res = manager.rejoin(ctx.topo, node, reinit=False, progress=ctx.progress)
    role = f" as its {res.role}" if res.role != "replica" else ""
    started = "started; " if res.started_container else ""
    return StepOutcome(f"{node} {started}Patroni rejoined it: streaming from {res.leader}{role} after "
                       f"{res.seconds:.1f} s")


def _add_subscription(ctx: StepContext, step: Step) -> StepOutcome:
    s = step.add_subscription
    assert s is not None
    req = channel_request.AddRequest(subscriber=resolve(ctx, s.subscriber), publication=s.publication,
                                     publisher=resolve(ctx, s.publisher) if s.publisher else None, tables=s.tables,
                                     database=s.database, name=s.name, copy_data=s.copy_data)
    res = channels.add_subscription(ctx.topo_path, req, progress=ctx.progress)
    ctx.faults.subscriptions.append((res.plan.intent.name, res.plan))
    ctx.topo = loader.load(ctx.topo_path)  # later steps (a failover) must know the new subscription
    i = res.plan.intent
    return StepOutcome(f"{i.name} on {i.subscriber} receives {i.publication} ({len(res.copies)} tables ready in "
                       f"{res.seconds:.1f} s)")


def _wait_until(ctx: StepContext, w: WaitUntil) -> StepOutcome:
    cond, raw = w.condition()
    topo = ctx.topo
    seen = "nothing yet"

    def holds() -> bool:
        nonlocal seen
        try:
            if cond == "subscribed":
                return _subscribed(ctx, raw)
            node = resolve(ctx, raw)
            if cond == "streaming":
                rows = query(topo, node, "SELECT status FROM pg_stat_wal_receiver", step="wait until streaming")
                seen = str(rows[0][0]) if rows else "no WAL receiver"
                return seen == "streaming"
            if cond == "writable":
                rows = query(topo, node, "SELECT NOT pg_is_in_recovery()", step="wait until writable")
                seen = "writable" if rows and rows[0][0] else "in recovery"
                return seen == "writable"
            return _caught_up(ctx, node)
        except PgtopoError as exc:
            seen = exc.message
            return False

    t = time.monotonic()
    wait_for(holds, timeout=w.timeout, what=f"{raw} to be {cond}", step="wait-until", interval=0.2,
             last_seen=lambda: seen)
    return StepOutcome(f"{raw} is {cond} after {time.monotonic() - t:.1f} s")


def _caught_up(ctx: StepContext, node: str) -> bool:
    primary = current_primary(ctx, ctx.topo.cluster_of(node))
    target = query(ctx.topo, primary, "SELECT pg_current_wal_lsn()::text", step="wait until caught up")[0][0]
    got = query(ctx.topo, node, "SELECT pg_last_wal_replay_lsn()::text", step="wait until caught up")[0][0]
    a, b = parse_lsn(str(got)) if got else None, parse_lsn(str(target))
    return a is not None and b is not None and a >= b


def _subscribed(ctx: StepContext, name: str) -> bool:
    for cname, cl in ctx.topo.clusters.items():
        if name in cl.subscriptions:
            node = current_primary(ctx, cname)
            snap = snapshot.collect(ctx.topo).nodes[node]
            sub = next((s for s in snap.subscriptions if s.name == name), None)
            return sub is not None and sub.worker_running and sub.tables_ready == sub.tables_total
    raise OperationFailed(f"no subscription {name} in the topology", step="wait-until")


def mend(ctx: StepContext, *, note: Progress) -> None:
    """Undo what the drill broke and did not mend itself: unpause, heal, reset latency (best effort)."""
    for node in sorted(ctx.faults.paused):
        c = gateway.find(ctx.topo.name, node)
        try:
            if c is not None and gateway.status(c) == "paused":
                gateway.unpause(c)
                note(node, "unpaused (the drill ended)")
        except PgtopoError as exc:
            note(node, f"could not unpause: {exc.message}")
    ctx.faults.paused.clear()
    rt = state.load(ctx.topo.name)
    try:
        if rt.partitioned:
            latency.heal(ctx.topo, None)
            note("network", f"healed {', '.join(rt.partitioned)} (the drill ended)")
        if rt.links:
            latency.reset(ctx.topo, None)
            note("network", "the file's latencies again (the drill ended)")
    except PgtopoError as exc:
        note("network", f"could not restore the network: {exc.message}")
    ctx.faults.partitioned.clear()
    ctx.faults.links.clear()

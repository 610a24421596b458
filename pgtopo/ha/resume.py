"""Finish what a failover or switchover left undone: `pgtopo failover FILE --resume`.

A failover that could not finish its plan (a replica or a subscriber behind a partition, a step
that failed) ends with the command that finishes it. That command looks at the cluster as it
is, around its current primary (the state's), and does what is missing: replicas that do not
stream are rejoined, subscriptions that do not use the primary are moved to it (or
re-synchronised), and the primary's synchronous settings follow the standbys really streaming.
Nothing is promoted. The decision (``plan_resume``) is pure, on a frozen snapshot.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pgtopo.errors import InputError, PgtopoError
from pgtopo.ha import failover
from pgtopo.ha.candidates import cut_between, partition_text, upstream_of
from pgtopo.ha.failover import Unfinished, heal_text, resume_command
from pgtopo.ha.moves import SubscriberMove
from pgtopo.ha.rejoin import rejoin
from pgtopo.ha.replication import RELOAD, converge_primary, primary_settings
from pgtopo.ha.subscribers import SubscriberResult, move_all
from pgtopo.ha.synchronous import SyncConfig
from pgtopo.model import render
from pgtopo.model.topology import HOLD_SLOT, Topology
from pgtopo.observe import snapshot
from pgtopo.observe.expectations import conninfo_target
from pgtopo.observe.snapshot import Snapshot
from pgtopo.postgres.sql import run_all
from pgtopo.progress import Progress
from pgtopo.runtime import state


@dataclass(frozen=True)
class ReplicaCheck:
    node: str
    action: str  # ok, rejoin, wait (a partition keeps it away), left (down or fenced: `pgtopo rejoin`)
    reason: str
    cut_by: tuple[str, ...] = ()


@dataclass(frozen=True)
class ResumePlan:
    cluster: str
    primary: str
    replicas: tuple[ReplicaCheck, ...]
    subscribers: tuple[SubscriberMove, ...]  # move, resync, unreachable, missing; "ok" when nothing to do

    def lines(self) -> list[str]:
        out = [f"resume cluster {self.cluster} around its primary {self.primary}"]
        out += [f"  {r.node}: {r.action} ({r.reason})" for r in self.replicas]
        out += [f"  subscription {s.subscription} on {s.node}: {s.action} ({s.reason})"
                + (f"; pending: {s.waits}" if s.waits else "") for s in self.subscribers]
        return out


def plan_resume(topo: Topology, snap: Snapshot, *, cluster: str, primary: str,
                primaries: dict[str, str], fenced: frozenset[str]) -> ResumePlan:
    """What is missing for every replica and subscriber of ``cluster`` to follow ``primary``."""
    p = snap.nodes.get(primary)
    if p is None or not p.reachable or p.in_recovery is not False:
        why = "not running" if p is None or not p.reachable else "not writable"
        raise InputError(f"the primary of cluster {cluster}, {primary}, is {why}: nothing to resume around "
                         "(`pgtopo failover` first)")
    cut = snap.partitioned
    replicas = []
    for n in snap.cluster_nodes(cluster):
        if n.node == primary:
            continue
        if n.node in fenced or not n.reachable:
            why = "fenced" if n.node in fenced else (n.error or f"container {n.container}")
            replicas.append(ReplicaCheck(n.node, "left", f"{why}: `pgtopo rejoin` brings it back"))
            continue
        up = upstream_of(topo, n) or primary
        if n.in_recovery and n.receiver_status == "streaming" and n.timeline == p.timeline:
            replicas.append(ReplicaCheck(n.node, "ok", f"streams from {n.upstream} on timeline {n.timeline}"))
            continue
        apart = cut_between(topo, cut, n.node, up) or cut_between(topo, cut, n.node, primary)
        if apart and n.in_recovery:
            replicas.append(ReplicaCheck(n.node, "wait", f"cut off from {up} by {partition_text(topo, apart)}: "
                                         "streams once that heals", cut_by=apart))
            continue
        state_now = ("writable" if not n.in_recovery else
                     f"{n.receiver_status or 'no WAL receiver'} on timeline {n.timeline}, primary on {p.timeline}")
        replicas.append(ReplicaCheck(n.node, "rejoin", f"not streaming ({state_now})"))
    return ResumePlan(cluster=cluster, primary=primary, replicas=tuple(replicas),
                      subscribers=tuple(_subscriber_checks(topo, snap, cluster=cluster, primary=primary,
                                                           primaries=primaries)))


def _subscriber_checks(topo: Topology, snap: Snapshot, *, cluster: str, primary: str,
                       primaries: dict[str, str]) -> list[SubscriberMove]:
    slots = {s.name: s for s in snap.nodes[primary].slots}
    out = []
    for cname, cl in topo.clusters.items():
        for sname, sub in cl.subscriptions.items():
            if sub.publisher != cluster:
                continue
            db = sub.database or topo.clusters[cluster].publications[sub.publication].database
            node = primaries.get(cname, cl.primary_name)
            ns = snap.nodes.get(node)
            live = next((x for x in ns.subscriptions if x.name == sname), None) if ns and ns.reachable else None
            slot = live.slot_name if live and live.slot_name else sname

            def move(action: str, reason: str, *, waits: str = "", cut_by: tuple[str, ...] = (),
                     node: str = node, slot: str = slot, sname: str = sname, cname: str = cname,
                     db: str = db) -> SubscriberMove:
                return SubscriberMove(sname, cname, node, db, slot, action, reason, waits=waits, cut_by=cut_by)

            if ns is None or not ns.reachable:
                out.append(move("unreachable", f"{node} is down: resume again when it is back"))
                continue
            if live is None:
                out.append(move("missing", f"no subscription {sname} on {node}: `pgtopo up` creates it"))
                continue
            target = conninfo_target(topo, live.conninfo)
            apart = cut_between(topo, snap.partitioned, node, primary)
            waits = (f"{node} is cut off from {primary} by {partition_text(topo, apart)}: "
                     "the subscription connects once that heals") if apart else ""
            s = slots.get(slot)
            if target == primary and live.enabled and (live.worker_running or waits):
                out.append(move("ok", f"uses slot {slot} on {primary}" + (" (worker running)" if
                                                                        live.worker_running else ""),
                                waits=waits, cut_by=apart))
            elif s is not None and s.slot_type == "logical" and s.failover and not s.temporary:
                was = f"points at {target}" if target != primary else "its worker is not running"
                out.append(move("move", f"{was}; failover slot {slot} is on {primary}", waits=waits, cut_by=apart))
            else:
                out.append(move("resync", f"no usable failover slot {slot} on {primary}", waits=waits, cut_by=apart))
    return out


@dataclass
class ResumeOutcome:
    plan: ResumePlan
    replicas: list[str] = field(default_factory=list)
    subscribers: list[SubscriberResult] = field(default_factory=list)
    sync_after: SyncConfig | None = None
    standby_slots: tuple[str, ...] = ()
    unfinished: list[Unfinished] = field(default_factory=list)


def plan_live(topo: Topology, *, cluster: str | None) -> ResumePlan:
    c = failover.choose_cluster(topo, cluster=cluster, to=None)
    primaries = state.current_primaries(topo)
    snap = snapshot.collect(topo, nodes=failover.scope(topo, c, primaries))
    return plan_resume(topo, snap, cluster=c, primary=primaries[c], primaries=primaries,
                       fenced=frozenset(state.load(topo.name).fenced))


def resume(topo: Topology, plan: ResumePlan, *, progress: Progress) -> ResumeOutcome:
    """Rejoin the replicas that do not stream, move the subscribers that do not follow, converge."""
    out = ResumeOutcome(plan=plan)
    again = resume_command(plan.cluster)
    for r in plan.replicas:
        if r.action == "rejoin":
            try:
                joined = rejoin(topo, r.node, reclone=False, progress=progress)
                out.replicas.append(f"{r.node}: {joined.method}, streams from {joined.upstream}")
            except PgtopoError as exc:
                out.replicas.append(f"{r.node}: rejoin failed: {exc.message}")
                out.unfinished.append(Unfinished(f"{r.node} ({exc.message})", f"pgtopo rejoin {{file}} {r.node} --reclone"))
        elif r.action == "wait":
            out.replicas.append(f"{r.node}: {r.reason}")
            out.unfinished.append(Unfinished(f"{r.node} cut off", again, heal_text(r.cut_by)))
        else:
            out.replicas.append(f"{r.node}: {r.action}: {r.reason}")
    todo = [s for s in plan.subscribers if s.action != "ok"]
    out.subscribers = move_all(topo, todo, new_primary=plan.primary, progress=progress)
    out.subscribers += [SubscriberResult(s.subscription, s.node, "ok" if not s.waits else "pending",
                                         s.reason + (f"; {s.waits}" if s.waits else ""))
                        for s in plan.subscribers if s.action == "ok"]
    by_name = {s.subscription: s for s in plan.subscribers}
    for res in out.subscribers:
        m = by_name[res.subscription]
        if res.action == "pending":
            out.unfinished.append(Unfinished(f"subscription {res.subscription} on {res.node} cut off", again,
                                             heal_text(m.cut_by)))
        elif res.action == "failed" or m.action == "unreachable":
            out.unfinished.append(Unfinished(f"subscription {res.subscription} on {res.node} ({res.detail})", again))
        elif m.action == "missing":
            out.unfinished.append(Unfinished(f"subscription {res.subscription} ({res.detail})", "pgtopo up {file}"))
    # A failover stopped after the promotion may have left the slot that held the WAL of the replicas
    # it had yet to re-point: they are rejoined above (each with its own slot).
    run_all(topo, plan.primary, [render.drop_idle_slot(HOLD_SLOT), *primary_settings(topo, plan.primary), RELOAD],
            step="reset standby settings")
    out.sync_after, out.standby_slots = converge_primary(topo, plan.cluster, plan.primary)
    return out

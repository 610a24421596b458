"""Who can be promoted: every replica of the cluster judged and ranked on a frozen snapshot (pure).

Ranking, like CloudNativePG: the most advanced WAL wins, since a less advanced winner loses
what the others have and leaves them unable to follow its timeline; ``failover_priority``
breaks ties (0 means never promoted, like Patroni's nofailover), then a direct standby beats
a cascaded one, then the region nearest the old primary. A replica cut off from the other
regions by a partition is unsafe whatever its WAL: the other replicas, the subscribers and the
applications elsewhere could not reach it, so it is the last resort (``--force``), ranked after
every replica that can be reached. ``pgtopo.ha.failover`` assembles the plan around the choice.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from pgtopo.ha.synchronous import SyncConfig, effective_sync
from pgtopo.model.topology import Topology
from pgtopo.observe.expectations import configured_upstream
from pgtopo.observe.snapshot import NodeSnapshot, Snapshot
from pgtopo.postgres.lsn import fmt_bytes, format_lsn, parse_lsn


@dataclass(frozen=True)
class Candidate:
    """One node of the cluster judged for promotion."""

    node: str
    region: str
    state: str  # replica, writable, down, ...
    timeline: int | None
    receive_lsn: int | None
    replay_lsn: int | None
    lag_bytes: int | None
    upstream: str | None
    cascaded: bool
    sync: str  # sync, quorum, potential, listed, async, or "" when the cluster is asynchronous
    priority: int
    rtt_ms: float
    blockers: tuple[str, ...] = ()  # never promotable
    risks: tuple[str, ...] = ()  # promotable with --force, at the stated risk
    cut_off: tuple[str, ...] = ()  # the partitions (its region, itself) that cut it off from the other regions

    @property
    def eligible(self) -> bool:
        return not self.blockers and not self.risks

    @property
    def verdict(self) -> str:
        if self.blockers:
            return "no: " + "; ".join(self.blockers)
        if self.risks:
            return "unsafe: " + "; ".join(self.risks)
        return "ok"


def upstream_of(topo: Topology, n: NodeSnapshot) -> str | None:
    """The node a replica streams from, or is configured to (when its upstream is gone), or
    the file's upstream when the replica cannot be asked."""
    if n.upstream:
        return n.upstream
    configured = configured_upstream(topo, n)
    if configured:
        return configured
    if not n.reachable:
        return topo.node(n.node).upstream
    return None


def down_state(n: NodeSnapshot) -> str:
    if n.container != "running":
        return f"down (container {n.container})"
    return f"unreachable ({n.error})" if n.error else "unreachable"


def position(n: NodeSnapshot) -> int | None:
    return parse_lsn(n.receive_lsn) if n.in_recovery else parse_lsn(n.current_lsn)


def _replay(n: NodeSnapshot) -> int | None:
    return parse_lsn(n.replay_lsn) if n.in_recovery else parse_lsn(n.current_lsn)


# -- reachability under partitions --------------------------------------------------------------

def isolating(topo: Topology, partitioned: frozenset[str], node: str) -> tuple[str, ...]:
    """The partitions that cut ``node`` off from every other region: its region, itself (empty: none)."""
    if len(topo.regions) < 2:
        return ()
    return tuple(x for x in (topo.node(node).region, node) if x in partitioned)


def cut_between(topo: Topology, partitioned: frozenset[str], a: str, b: str) -> tuple[str, ...]:
    """The partitions that keep nodes ``a`` and ``b`` apart (empty: they reach each other).

    Within a region nodes talk directly; across regions through the relay, which blackholes any
    path touching a partitioned region or node.
    """
    ra, rb = topo.node(a).region, topo.node(b).region
    if ra == rb:
        return ()
    return tuple(x for x in dict.fromkeys((ra, rb, a, b)) if x in partitioned)


def can_reach(topo: Topology, partitioned: frozenset[str], a: str, b: str) -> bool:
    return not cut_between(topo, partitioned, a, b)


def partition_text(topo: Topology, names: tuple[str, ...]) -> str:
    """'region ra', 'node pg-x', 'region ra and node pg-x'."""
    regions = [n for n in names if n in topo.regions]
    nodes = [n for n in names if n not in topo.regions]
    parts = ([("regions " if len(regions) > 1 else "region ") + ", ".join(regions)] if regions else []) + (
        [("nodes " if len(nodes) > 1 else "node ") + ", ".join(nodes)] if nodes else [])
    return "the partition of " + " and ".join(parts)


# -- the facts a plan is decided on --------------------------------------------------------------

@dataclass(frozen=True)
class Context:
    topo: Topology
    snap: Snapshot
    cluster: str
    old: str
    old_snap: NodeSnapshot | None
    old_alive: bool
    max_tl: int | None
    sysid: str | None
    sync: SyncConfig | None
    sync_states: dict[str, str]
    partitioned: frozenset[str] = frozenset()
    subscribers: tuple[str, ...] = ()  # the nodes holding subscriptions to the cluster's publications
    # Cascaded replicas not asked before the promotion (``pgtopo.ha.failover.deferrable``), each with
    # the live upstream that streams it: they stay behind it.
    deferred: tuple[tuple[str, str], ...] = ()


def context(topo: Topology, snap: Snapshot, cluster: str, old: str, recorded_sync: SyncConfig | None, *,
            subscribers: tuple[str, ...] = (), deferred: tuple[tuple[str, str], ...] = ()) -> Context:
    nodes = snap.cluster_nodes(cluster)
    old_snap = snap.nodes.get(old)
    old_alive = bool(old_snap and old_snap.reachable and old_snap.in_recovery is False)
    live = [n for n in nodes if n.reachable]
    tls = [n.timeline for n in live if n.timeline is not None]
    sysids = [n.system_identifier for n in live if n.system_identifier]
    sysid = old_snap.system_identifier if old_alive and old_snap else (max(set(sysids), key=sysids.count) if sysids
                                                                      else None)
    sync_states = {d.application_name: d.sync_state for d in old_snap.downstream} if old_alive and old_snap else {}
    return Context(topo=topo, snap=snap, cluster=cluster, old=old, old_snap=old_snap, old_alive=old_alive,
                    max_tl=max(tls) if tls else None, sysid=sysid,
                    sync=effective_sync(topo, snap, cluster, primary=old, recorded=recorded_sync),
                    sync_states=sync_states, partitioned=snap.partitioned, subscribers=subscribers,
                    deferred=deferred)


@dataclass(frozen=True)
class Reference:
    """The position lag is measured against."""

    lsn: int | None
    who: str  # short: "pg-us", "the most advanced replica pg-eu"
    description: str


def reference(ctx: Context, old_primary_last_lsn: tuple[int, int | None] | None) -> Reference:
    if ctx.old_alive and ctx.old_snap is not None:
        ref = parse_lsn(ctx.old_snap.current_lsn)
        return Reference(ref, ctx.old, f"{ctx.old}'s current position {format_lsn(ref)}")
    replicas = [n for n in ctx.snap.cluster_nodes(ctx.cluster)
                if n.node != ctx.old and n.reachable and n.in_recovery and n.timeline == ctx.max_tl]
    best = max(replicas, key=lambda n: position(n) or -1, default=None)
    best_pos = position(best) if best else None
    if old_primary_last_lsn is not None:
        last, tl = old_primary_last_lsn
        if (tl is None or tl == ctx.max_tl) and (best_pos is None or last > best_pos):
            return Reference(last, f"{ctx.old}'s last known position",
                             f"the last known position of {ctx.old}, {format_lsn(last)} ({ctx.old} is down)")
    if best is None:
        return Reference(None, "nothing", f"nothing: {ctx.old} is down and no replica is reachable")
    return Reference(best_pos, f"the most advanced replica {best.node}",
                     f"the most advanced replica, {best.node} at {format_lsn(best_pos)} ({ctx.old} is down: WAL it "
                     "wrote but never sent is not counted)")


# -- judging and ranking -------------------------------------------------------------------------

def candidate(ctx: Context, n: NodeSnapshot, *, ref: Reference, max_lag: int) -> Candidate:
    topo = ctx.topo
    spec = topo.node(n.node)
    old_region = topo.node(ctx.old).region
    blockers: list[str] = []
    risks: list[str] = []
    upstream = upstream_of(topo, n)
    if not n.reachable:
        state = down_state(n)
        blockers.append(state)
    elif not n.in_recovery:
        state = "writable"
        blockers.append("writable: not a replica")
    else:
        state = "replica"
        if ctx.max_tl is not None and n.timeline is not None and n.timeline < ctx.max_tl:
            blockers.append(f"on timeline {n.timeline}, behind timeline {ctx.max_tl}")
        if ctx.sysid and n.system_identifier and n.system_identifier != ctx.sysid:
            blockers.append(f"a different database system (system identifier {n.system_identifier})")
        if position(n) is None:
            blockers.append("has received no WAL")
    pos = position(n) if n.reachable and n.in_recovery else None
    lag = None if pos is None or ref.lsn is None else max(0, ref.lsn - pos)
    if not blockers:
        if lag is not None and lag > max_lag:
            extra = f" (cascaded behind {upstream})" if upstream and upstream != ctx.old else ""
            risks.append(f"lags {fmt_bytes(lag)} behind {ref.who}{extra}, more than --max-lag {fmt_bytes(max_lag)}")
        if spec.failover_priority == 0:
            risks.append("failover_priority 0: never promoted unless forced")
    cut = isolating(topo, ctx.partitioned, n.node)
    if cut and not blockers:
        risks.append(_cut_off_risk(ctx, n, cut))
    sync = ""
    if topo.clusters[ctx.cluster].synchronous is not None:
        if ctx.sync is not None and n.node in ctx.sync.standbys:
            sync = ctx.sync_states.get(n.node, "listed") if ctx.old_alive else "listed"
        else:
            sync = "async"
    return Candidate(
        node=n.node, region=n.region, state=state, timeline=n.timeline if n.reachable else None,
        receive_lsn=pos, replay_lsn=_replay(n) if n.reachable and n.in_recovery else None, lag_bytes=lag,
        upstream=upstream, cascaded=upstream is not None and upstream != ctx.old, sync=sync,
        priority=spec.failover_priority, rtt_ms=topo.rtt_ms(n.region, old_region),
        blockers=tuple(blockers), risks=tuple(risks), cut_off=cut,
    )


def _cut_off_risk(ctx: Context, n: NodeSnapshot, cut: tuple[str, ...]) -> str:
    """Who could not reach ``n`` as primary: the live replicas and subscribers in other regions, and the
    applications there (nodes that are down are not waiting for it)."""
    topo = ctx.topo
    live = [m.node for m in ctx.snap.cluster_nodes(ctx.cluster) if m.node not in (n.node, ctx.old) and m.reachable]
    subs = [s for s in ctx.subscribers if (ns := ctx.snap.nodes.get(s)) is None or ns.reachable]
    who = [m for m in live if not can_reach(topo, ctx.partitioned, m, n.node)]
    who += [f"{s} (subscriber)" for s in subs if not can_reach(topo, ctx.partitioned, s, n.node)]
    regions = [r for r in topo.regions if r != n.region]
    apps = f"applications in {', '.join(regions)}"
    return (f"cut off from the other regions by {partition_text(topo, cut)}: "
            f"{', '.join([*who, apps]) if not who else ', '.join(who) + ' and ' + apps} cannot reach it")


def sync_risks(ctx: Context, cands: list[Candidate]) -> list[Candidate]:
    """In a synchronous cluster only a synchronous standby that holds every acknowledged commit is safe."""
    sync = ctx.sync
    if ctx.topo.clusters[ctx.cluster].synchronous is None:
        return cands
    if sync is None:
        return cands  # the old primary ran without a synchronous standby: nothing more to protect
    listed = [c for c in cands if c.node in sync.standbys]
    usable = [c for c in listed if not c.blockers]
    missing = [n for n in sync.standbys if n not in {c.node for c in usable}]
    best = max((c.receive_lsn or 0 for c in usable), default=0)
    quorum_ok = ctx.old_alive or len(usable) >= sync.needed_for_safety()
    out = []
    for c in cands:
        extra: list[str] = []
        if not c.blockers:
            if c.node not in sync.standbys:
                extra.append(f"not a synchronous standby ({sync.text()})")
            elif not ctx.old_alive and (c.receive_lsn or 0) < best:
                extra.append(f"behind another synchronous standby by {fmt_bytes(best - (c.receive_lsn or 0))}: "
                             "acknowledged commits may be missing")
            if not quorum_ok and c.node in sync.standbys:
                extra.append(f"{', '.join(missing)} (synchronous) unavailable: acknowledged commits may exist only "
                             f"there ({sync.text()} needs {sync.needed_for_safety()} of {len(sync.standbys)} seen)")
        out.append(dataclasses.replace(c, risks=c.risks + tuple(extra)) if extra else c)
    return out


def rank_key(c: Candidate) -> tuple[object, ...]:
    return (
        bool(c.blockers), bool(c.risks), bool(c.cut_off), c.sync not in ("", "sync", "quorum", "potential", "listed"),
        -(c.timeline or 0), -(c.receive_lsn if c.receive_lsn is not None else -1),
        -(c.replay_lsn if c.replay_lsn is not None else -1), -c.priority, c.cascaded, c.rtt_ms, c.node,
    )


def why_chosen(ctx: Context, chosen: Candidate, ranking: list[Candidate]) -> list[str]:
    others = [c for c in ranking if c.node != chosen.node]
    why = []
    if chosen.sync and chosen.sync != "async":
        why.append(f"{chosen.node} is a synchronous standby ({ctx.sync.text() if ctx.sync else ''})")
    ahead = [c for c in others if not c.blockers and c.cut_off and (c.receive_lsn or 0) > (chosen.receive_lsn or 0)]
    among = " of the replicas the other regions can reach" if ahead and not chosen.cut_off else ""
    why.append(f"{chosen.node} has the most WAL{among}: received {format_lsn(chosen.receive_lsn)}, replayed "
               f"{format_lsn(chosen.replay_lsn)}, lag {fmt_bytes(chosen.lag_bytes)}")
    ties = [c for c in others if c.eligible and c.receive_lsn == chosen.receive_lsn
            and c.replay_lsn == chosen.replay_lsn]
    if ties:
        why.append(f"tie on WAL with {', '.join(c.node for c in ties)}: " + _tie_break(ctx, chosen, ties[0]))
    cut = [c for c in others if c.cut_off and not c.blockers and not chosen.cut_off]
    if cut:
        by = "; ".join(dict.fromkeys(partition_text(ctx.topo, c.cut_off) for c in cut))
        why.append(f"not {', '.join(c.node for c in cut)}: cut off from the other regions by {by}, a last resort "
                   f"(`--to {cut[0].node} --force`)")
    return why


def _tie_break(ctx: Context, chosen: Candidate, other: Candidate) -> str:
    if chosen.priority != other.priority:
        return f"higher failover_priority ({chosen.priority} > {other.node}'s {other.priority})"
    if chosen.cascaded != other.cascaded:
        return f"a direct standby ({other.node} is cascaded behind {other.upstream})"
    if chosen.rtt_ms != other.rtt_ms:
        return (f"nearer {ctx.old}'s region ({chosen.region}, {chosen.rtt_ms:g} ms round trip; {other.region}, "
                f"{other.rtt_ms:g} ms)")
    return "first by name"

"""What else moves when a cluster changes primary: its other replicas and its subscribers (pure).

``pgtopo.ha.failover`` plans around the choice of candidate with these: for every other node of
the cluster where it streams from afterwards (re-pointed to the new primary, staying behind a
cascade, left for ``pgtopo rejoin``), and for every subscription to the cluster's publications
whether it moves onto the synced failover slot or must be re-synchronised. Under a partition a
node that cannot reach its new upstream is changed all the same but marked ``waits``: it follows
once the partition heals, and nothing waits for it meanwhile.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from pgtopo.ha.candidates import (
    Context,
    can_reach,
    cut_between,
    down_state,
    partition_text,
    position,
    upstream_of,
)
from pgtopo.model.topology import Topology
from pgtopo.observe.snapshot import NodeSnapshot, Slot
from pgtopo.postgres.lsn import fmt_bytes


@dataclass(frozen=True)
class ReplicaMove:
    """What happens to a node of the cluster other than the new primary."""

    node: str
    action: str  # repoint, stay, demote, down, rejoin
    upstream: str | None
    reason: str
    waits: str = ""  # why it cannot stream now (a partition): nothing waits for it, it counts for nothing
    cut_by: tuple[str, ...] = ()  # the partitioned regions and nodes that keep it away

    def text(self) -> str:
        return (f"{self.node}: {self.action}" + (f" -> {self.upstream}" if self.upstream else "") + f" ({self.reason})"
                + (f"; pending: {self.waits}" if self.waits else ""))


@dataclass(frozen=True)
class SubscriberMove:
    """A subscription to the cluster's publications, on another cluster's primary."""

    subscription: str
    cluster: str
    node: str
    database: str
    slot: str
    action: str  # move, resync, unreachable (its node is down), missing (no such subscription on its node)
    reason: str
    ready: bool = True  # False: the synced slot is still temporary; a switchover waits for it
    waits: str = ""  # why it cannot connect now (a partition): changed now, connects once that heals
    cut_by: tuple[str, ...] = ()


def replica_moves(ctx: Context, cand: str, *, switchover: bool) -> list[ReplicaMove]:
    """Where every other live node of the cluster streams from once ``cand`` is primary."""
    topo, snap = ctx.topo, ctx.snap
    cand_pos = position(snap.nodes[cand])
    file_primary = topo.clusters[ctx.cluster].primary_name
    moves: dict[str, ReplicaMove] = {}
    for n in snap.cluster_nodes(ctx.cluster):
        if n.node in (cand, ctx.old):
            continue
        up = upstream_of(topo, n)
        if not n.reachable:
            moves[n.node] = ReplicaMove(n.node, "down", None,
                                        f"{down_state(n)}: `pgtopo rejoin` points it at {cand} when it is back")
            continue
        pos = position(n)
        old_side = _receives_what_cand_cannot(ctx, n, cand)
        if not ctx.old_alive and pos is not None and cand_pos is not None and pos > cand_pos:
            moves[n.node] = ReplicaMove(n.node, "rejoin", None,
                                        f"ahead of {cand} by {fmt_bytes(pos - cand_pos)}: it cannot follow the new "
                                        "timeline; run `pgtopo rejoin` for it after the failover")
        elif old_side and not switchover:
            moves[n.node] = ReplicaMove(n.node, "rejoin", None,
                                        f"streams from {ctx.old}, kept from {cand} by {partition_text(topo, old_side)}:"
                                        f" it may hold WAL {cand} never got (what {ctx.old} wrote since) and then cannot "
                                        "follow the new timeline; run `pgtopo rejoin` for it once that heals (it rewinds "
                                        "only if needed)", cut_by=old_side)
        elif up == cand:
            moves[n.node] = ReplicaMove(n.node, "stay", cand, f"already streams from {cand}")
        elif switchover and up == ctx.old and topo.node(n.node).upstream == ctx.old != file_primary:
            moves[n.node] = ReplicaMove(n.node, "stay", ctx.old, f"cascaded behind {ctx.old} as the file says: follows "
                                        f"it once it is a replica of {cand}")
        elif up is None or up == ctx.old:
            why = f"streamed from {ctx.old}" if up else "its upstream is unknown"
            moves[n.node] = ReplicaMove(n.node, "repoint", cand, why)
        else:
            moves[n.node] = ReplicaMove(n.node, "stay", up,
                                        f"cascaded behind {up}, which is alive: follows the new timeline through it")
    for name, up in ctx.deferred:
        moves[name] = ReplicaMove(name, "stay", up,
                                  (f"already streams from {cand}" if up == cand else
                                   f"cascaded behind {up}, which streams it: follows the new timeline through it")
                                  + f"; asked after the promotion: it holds no more WAL than {up}")
    # A cascade stays only if its upstream keeps streaming; otherwise it goes to the new primary.
    changed = True
    while changed:
        changed = False
        for name, m in list(moves.items()):
            if m.action == "stay" and m.upstream not in (cand, None) and not (switchover and m.upstream == ctx.old):
                up_move = moves.get(m.upstream)
                if up_move is None or up_move.action in ("down", "rejoin"):
                    moves[name] = ReplicaMove(name, "repoint", cand, f"its upstream {m.upstream} will not stream")
                    changed = True
    _partitioned_moves(ctx, cand, moves, switchover=switchover)
    out = [moves[n] for n in topo.clusters[ctx.cluster].nodes if n in moves]
    if switchover:
        out.insert(0, ReplicaMove(ctx.old, "demote", cand, "the old primary becomes a replica of the new one"))
    return out


def _receives_what_cand_cannot(ctx: Context, n: NodeSnapshot, cand: str) -> tuple[str, ...]:
    """The partitions keeping ``cand`` from a live old primary that ``n`` still streams from (empty: none).

    Until it is fenced, such an old primary goes on writing (its shutdown checkpoint at least) to
    the replicas on its side: they end up ahead of the new primary's timeline.
    """
    apart = cut_between(ctx.topo, ctx.partitioned, cand, ctx.old)
    if not ctx.old_alive or not apart or n.receiver_status != "streaming":
        return ()
    return apart if can_reach(ctx.topo, ctx.partitioned, n.node, ctx.old) else ()


def _partitioned_moves(ctx: Context, cand: str, moves: dict[str, ReplicaMove], *, switchover: bool) -> None:
    """A replica that cannot reach the node it would stream from goes to the new primary if it can
    reach that; otherwise it is changed all the same (it follows once the partition heals) but
    nothing waits for it and it is no synchronous standby meanwhile. A cascade behind such a
    replica is in the same case."""
    topo, cut = ctx.topo, ctx.partitioned
    if not cut:
        return
    changed = True
    while changed:
        changed = False
        for name, m in list(moves.items()):
            if m.action not in ("repoint", "stay") or m.waits or m.upstream is None:
                continue
            if switchover and m.upstream == ctx.old:
                continue
            up = m.upstream
            apart = cut_between(topo, cut, name, up)
            blocked = moves.get(up)
            if not apart and not (up != cand and blocked is not None and blocked.waits):
                continue
            why = (f"cut off from {up} by {partition_text(topo, apart)}" if apart
                   else f"its upstream {up} cannot reach {cand}")
            if up != cand and can_reach(topo, cut, name, cand):
                moves[name] = ReplicaMove(name, "repoint", cand, why)
            elif up == cand:
                moves[name] = dataclasses.replace(m, waits=f"{why}: streams from it once that heals", cut_by=apart)
            else:
                to_cand = cut_between(topo, cut, name, cand)
                by = tuple(dict.fromkeys((*apart, *(blocked.cut_by if blocked else ()), *to_cand)))
                moves[name] = dataclasses.replace(
                    m, waits=f"{why}, nor can it ({partition_text(topo, to_cand)}): follows once that heals",
                    cut_by=by)
            changed = True


def subscriber_moves(topo: Topology, cluster: str, cand: str, *, cand_slots: Iterable[Slot],
                     nodes: Mapping[str, NodeSnapshot], partitioned: frozenset[str], primaries: Mapping[str, str],
                     switchover: bool) -> list[SubscriberMove]:
    """For every subscription to ``cluster``'s publications: moved onto the synced failover slot, or
    re-synchronised; a subscriber that is down or lacks the subscription is left alone.

    ``cand_slots`` are the candidate's slots before its promotion; ``nodes`` holds the subscribers'
    snapshots (a failover run unattended asks them after the first write: ``Plan.subscribers_later``).
    """
    by_name = {s.name: s for s in cand_slots}
    out = []
    for cname, cl in topo.clusters.items():
        for sname, sub in cl.subscriptions.items():
            if sub.publisher != cluster:
                continue
            pub = topo.clusters[sub.publisher].publications[sub.publication]
            db = sub.database or pub.database
            node = primaries.get(cname, cl.primary_name)
            ns = nodes.get(node)
            state = next((s for s in ns.subscriptions if s.name == sname), None) if ns else None
            slot = (state.slot_name if state and state.slot_name else sname)
            if ns is None or not ns.reachable:
                out.append(SubscriberMove(sname, cname, node, db, slot, "unreachable",
                                          f"{node} is down: move the subscription by hand when it is back"))
                continue
            if state is None:
                out.append(SubscriberMove(sname, cname, node, db, slot, "missing",
                                          f"no subscription {sname} on {node}: `pgtopo up` creates it"))
                continue
            waits = ""
            apart = cut_between(topo, partitioned, node, cand)
            if apart:
                waits = (f"{node} is cut off from {cand} by {partition_text(topo, apart)}: "
                         "the subscription connects once that heals")
            s = by_name.get(slot)
            synced = s is not None and s.slot_type == "logical" and s.synced and s.failover
            if synced and s is not None and not s.temporary:
                out.append(SubscriberMove(sname, cname, node, db, slot, "move",
                                          f"failover slot {slot} is synced on {cand}: continues with no gap",
                                          waits=waits, cut_by=apart))
                continue
            if synced and switchover:
                out.append(SubscriberMove(sname, cname, node, db, slot, "move",
                                          f"failover slot {slot} on {cand} is not sync-ready yet: the switchover waits "
                                          "for it", ready=False, waits=waits, cut_by=apart))
                continue
            if synced:
                why = f"slot {slot} on {cand} is not sync-ready yet (temporary: promotion drops it)"
            elif topo.postgres.version < 17:
                why = f"PostgreSQL {topo.postgres.version} has no failover slots"
            elif s is None:
                why = f"no slot {slot} on {cand}" + ("" if state.failover else " (the subscription has failover = false)")
            else:
                why = f"slot {slot} on {cand} is not a synced failover slot"
            out.append(SubscriberMove(sname, cname, node, db, slot, "resync", why, waits=waits, cut_by=apart))
    return out

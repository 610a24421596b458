"""Who becomes primary, and what else has to move: pure decisions on a frozen snapshot.

``plan_failover`` and ``plan_switchover`` read a ``Snapshot`` (and the file) and return a
frozen ``Plan``: the ranked candidates with the reason for each verdict (``pgtopo.ha.candidates``),
the choice, how to fence the old primary, where every other replica and every subscriber of the
cluster goes (``pgtopo.ha.moves``), and the synchronous settings the new primary needs. They never
touch a database; refusals are ``InputError`` (nothing changed). ``pgtopo.ha.promotion`` carries a
plan out; what it cannot finish is ``Unfinished``, with the command that finishes it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from pgtopo.errors import InputError
from pgtopo.ha.candidates import (
    Candidate,
    Context,
    Reference,
    candidate,
    context,
    cut_between,
    down_state,
    position,
    rank_key,
    reference,
    sync_risks,
    upstream_of,
    why_chosen,
)
from pgtopo.ha.moves import ReplicaMove, SubscriberMove, replica_moves, subscriber_moves
from pgtopo.ha.synchronous import SyncConfig, intended_sync
from pgtopo.model import render
from pgtopo.model.topology import HOLD_SLOT, Topology, slot_name
from pgtopo.observe.snapshot import NodeSnapshot, Slot, Snapshot
from pgtopo.postgres.lsn import fmt_bytes, format_lsn, parse_lsn

DEFAULT_MAX_LAG = 1 << 20  # Patroni's maximum_lag_on_failover


# -- the plan ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Plan:
    mode: str  # failover or switchover
    cluster: str
    old_primary: str
    old_state: str
    old_container: str
    fence: str  # stop, kill, disconnect, none
    candidate: str
    ranking: tuple[Candidate, ...]
    why: tuple[str, ...]
    reference_lsn: int | None
    reference: str
    max_lag: int
    forced: bool
    at_risk_bytes: int
    timeline: int | None
    replicas: tuple[ReplicaMove, ...]
    subscribers: tuple[SubscriberMove, ...]
    sync_before: SyncConfig | None
    sync_after: SyncConfig | None
    synchronized_standby_slots: tuple[str, ...]
    slot_sync_standbys: tuple[str, ...]
    stale_slots: tuple[str, ...]  # physical slots on the new primary nobody will use
    warnings: tuple[str, ...] = field(default=())
    # The cascades not asked before deciding (``streamed_by``): (node, region, upstream streaming it).
    not_asked: tuple[tuple[str, str, str], ...] = field(default=())
    # A failover run unattended asks its subscribers after the first write: (cluster, its primary) of
    # each subscribing cluster, and the candidate's slots before the promotion (``later_subscriber_moves``).
    subscribers_later: tuple[tuple[str, str], ...] = field(default=())
    candidate_slots: tuple[Slot, ...] = field(default=())

    def chosen(self) -> Candidate:
        return next(c for c in self.ranking if c.node == self.candidate)

    def direct_standbys(self) -> list[str]:
        """The replicas that will stream from the new primary now (not those a partition keeps away)."""
        return [m.node for m in self.replicas if m.upstream == self.candidate and m.action in ("repoint", "stay", "demote")
                and not m.waits]

    def lines(self) -> list[str]:
        """The plan in words, for the terminal."""
        out = [f"{self.mode} of cluster {self.cluster}: {self.old_primary} ({self.old_state}) -> {self.candidate}"]
        out.extend(f"  why: {w}" for w in self.why)
        out.append(f"  lag measured against {self.reference}")
        fence = {"stop": f"stop {self.old_primary} (fast shutdown; killed if it does not stop)",
                 "kill": f"kill {self.old_primary}: {self.candidate} is cut off from it, so a clean shutdown would "
                         "only wait for standbys it cannot reach",
                 "disconnect": f"disconnect {self.old_primary} from every network (it cannot be stopped: "
                               f"{self.old_container})",
                 "none": f"none needed: {self.old_primary} is {self.old_state}"}[self.fence]
        out.append(f"  fence: {fence}")
        out.extend(f"  {m.text()}" for m in self.replicas)
        if self.subscribers_later:
            out.append(f"  subscribers {', '.join(n for _c, n in self.subscribers_later)}: asked after the first write, "
                       "then moved onto their failover slots (or re-synchronised)")
        for s in self.subscribers:
            loud = "RE-SYNCHRONISE (truncate + full copy)" if s.action == "resync" else s.action
            out.append(f"  subscription {s.subscription} on {s.node}: {loud} ({s.reason})"
                       + (f"; pending: {s.waits}" if s.waits else ""))
        after = self.sync_after.text() if self.sync_after else "''"
        if self.sync_before is not None or self.sync_after is not None:
            out.append(f"  synchronous_standby_names on {self.candidate}: {after}")
        if self.synchronized_standby_slots:
            out.append(f"  synchronized_standby_slots on {self.candidate}: {', '.join(self.synchronized_standby_slots)}")
        if self.stale_slots:
            out.append(f"  drop stale slots on {self.candidate}: {', '.join(self.stale_slots)}")
        out.extend(f"  warning: {w}" for w in self.warnings)
        return out


@dataclass(frozen=True)
class Unfinished:
    """A part of a plan that is not done, and the command that finishes it (``{file}``: the topology file)."""

    what: str
    command: str
    after: str = ""  # what has to happen first, e.g. a partition healing (with its command)


def heal_text(cut_by: tuple[str, ...]) -> str:
    """What must happen before a node behind a partition can follow: 'ra is healed (`pgtopo heal FILE ra`)'."""
    return " and ".join(f"{n} is healed (`pgtopo heal {{file}} {n}`)" for n in cut_by) or "the partition heals"


def resume_command(cluster: str) -> str:
    return f"pgtopo failover {{file}} --resume --cluster {cluster}"


def last_line(unfinished: list[Unfinished], *, file: str) -> str:
    """The last line of a command that could not finish its plan: what is not done, and how to finish it."""
    items = "; ".join(u.what for u in unfinished)
    cmds = list(dict.fromkeys(u.command.format(file=file) for u in unfinished))
    after = list(dict.fromkeys(u.after.format(file=file) for u in unfinished if u.after))
    first = f"once {' and '.join(after)}, " if after else ""
    return f"not done: {items}; {first}finish with: {' && '.join(cmds)}"


def ranking_rows(plan: Plan) -> list[list[str]]:
    rows = []
    for c in plan.ranking:
        rows.append([
            ("-> " if c.node == plan.candidate else "") + c.node, c.region, c.state,
            "-" if c.timeline is None else str(c.timeline), format_lsn(c.receive_lsn), format_lsn(c.replay_lsn),
            fmt_bytes(c.lag_bytes), c.sync or "-", str(c.priority), c.upstream or "-", c.verdict,
        ])
    for node, region, up in plan.not_asked:
        rows.append([node, region, "not asked", "-", "-", "-", "-", "-", "-", up,
                     f"ranks below {up}: streamed by it, so holds no more WAL (asked after the promotion)"])
    return rows


RANKING_COLUMNS = ["node", "region", "state", "TL", "received", "replayed", "lag", "sync", "priority", "upstream",
                   "verdict"]


# -- planning ------------------------------------------------------------------------------------

def subscriber_nodes(topo: Topology, cluster: str, primaries: dict[str, str]) -> tuple[str, ...]:
    """The nodes holding subscriptions to ``cluster``'s publications: their clusters' current primaries."""
    out = [primaries.get(c, cl.primary_name) for c, cl in topo.clusters.items()
           if any(sub.publisher == cluster for sub in cl.subscriptions.values())]
    return tuple(dict.fromkeys(out))


def scope(topo: Topology, cluster: str, primaries: dict[str, str]) -> list[str]:
    """Every node a failover of ``cluster`` decides on or changes: its members and its subscribers.

    Nothing else is looked at, so the time to decide does not grow with the rest of the topology.
    """
    return [*topo.clusters[cluster].nodes, *subscriber_nodes(topo, cluster, primaries)]


def deferrable(topo: Topology, cluster: str, old: str, moved: Collection[str] = ()) -> dict[str, str]:
    """The cascaded replicas a failover's plan may leave unasked until after the first write, each
    with the replica the file puts it behind: a replica ``X`` behind ``U``, where ``U`` is a direct
    replica (it streams from the old primary, or from the file's primary) and ``X`` is no
    synchronous standby, nor ``moved`` (an earlier failover or rejoin pointed it elsewhere:
    ``U`` would not list it, and asking it in a second round, once ``U`` answered, costs a round
    trip before the promotion). Whether ``U`` really streams ``X`` is for ``streamed_by`` to see.

    A cascade gets its WAL from its upstream, so while ``U`` streams it ``X`` holds no more WAL
    than ``U``: it cannot be the most advanced replica, and it stays behind ``U`` whoever is
    promoted. Asking it would only make the time before ``pg_promote`` grow with the cascades.
    """
    cl = topo.clusters[cluster]
    members = set(cl.nodes)
    sync = set(cl.synchronous.standbys) if cl.synchronous is not None else set()

    def direct(n: str) -> bool:
        up = topo.node(n).upstream
        return up is None or up in (old, cl.primary_name) or up not in members

    return {n: up for n in cl.nodes
            if n not in (old, cl.primary_name) and n not in sync and n not in moved
            and (up := topo.node(n).upstream) is not None
            and up in members and up not in (old, cl.primary_name) and direct(up)}


def moved_after(topo: Topology, moved: Mapping[str, str], *, pointed: Mapping[str, str]) -> dict[str, str]:
    """``moved`` (``RuntimeState.moved``) once the replicas in ``pointed`` stream from the node each is
    mapped to: recorded where the file puts the replica behind another replica than that one, forgotten
    where it is back behind its file upstream (or the file makes it a direct replica)."""
    out = dict(moved)
    for x, up in pointed.items():
        file_up = topo.node(x).upstream
        if file_up is None or file_up == topo.clusters[topo.cluster_of(x)].primary_name or file_up == up:
            out.pop(x, None)
        else:
            out[x] = up
    return out


def streamed_by(snap: Snapshot, candidates: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """(the candidates whose upstream was asked and lists them as streaming from it, the others):
    the first may stay unasked, the others must be asked before planning."""
    deferred: dict[str, str] = {}
    ask: list[str] = []
    for n, up in candidates.items():
        u = snap.nodes.get(up)
        if u is not None and u.reachable and u.in_recovery and any(
                d.application_name == n and d.state == "streaming" for d in u.downstream):
            deferred[n] = up
        else:
            ask.append(n)
    return deferred, ask


def deferral_unsafe(plan: Plan, snap: Snapshot, deferred: dict[str, str]) -> list[str]:
    """The deferred replicas that might rank above the chosen candidate: those behind an upstream
    holding more WAL than the candidate (it was ranked lower for another reason, say a failover
    priority of 0) or on another timeline, and all of them when the candidate is forced (at
    risk). Empty: the plan is the one all replicas would give (on a tie of received WAL the
    replica asked wins: the same WAL either way)."""
    chosen = plan.chosen()
    if chosen.risks:
        # Forced: a replica not asked might be promotable without force (a cascade with a failover
        # priority behind an upstream with none): only all of them tell.
        return list(deferred)
    out = []
    for n, up in deferred.items():
        u = snap.nodes[up]
        bound = max(position(u) or 0, parse_lsn(u.replay_lsn) or 0)
        if u.timeline != chosen.timeline or chosen.receive_lsn is None or bound > chosen.receive_lsn:
            out.append(n)
    return out


def choose_cluster(topo: Topology, *, cluster: str | None, to: str | None) -> str:
    if to is not None and to not in topo.node_names():
        raise InputError(f"--to {to}: unknown node (known: {', '.join(topo.node_names())})")
    if cluster is not None:
        if cluster not in topo.clusters:
            raise InputError(f"--cluster {cluster}: unknown cluster (known: {', '.join(topo.clusters)})")
        if to is not None and topo.cluster_of(to) != cluster:
            raise InputError(f"--to {to}: not in cluster {cluster} (it is in cluster {topo.cluster_of(to)})")
        return cluster
    if to is not None:
        return topo.cluster_of(to)
    with_replicas = [c for c, cl in topo.clusters.items() if len(cl.nodes) > 1]
    if len(with_replicas) == 1:
        return with_replicas[0]
    if not with_replicas:
        raise InputError("no cluster has a replica to promote")
    raise InputError(f"several clusters have replicas ({', '.join(with_replicas)}): choose one with --cluster")


def _old_primary_state(n: NodeSnapshot | None) -> tuple[str, str, str]:
    """(state, container status, fencing action)."""
    if n is None:
        return "unknown", "missing", "none"
    if n.container in ("exited", "dead", "missing", "created"):
        return down_state(n), n.container, "none"
    if n.container == "paused":
        return "down (container paused)", n.container, "disconnect"
    if not n.reachable:
        return down_state(n), n.container, "stop"
    if n.in_recovery:
        return "a replica", n.container, "stop"
    return "writable", n.container, "stop"


def _finish(ctx: Context, *, mode: str, cand: Candidate, ranking: list[Candidate], why: list[str], ref: Reference,
            max_lag: int, forced: bool, primaries: dict[str, str], warnings: list[str],
            subscribers_later: bool = False) -> Plan:
    topo, snap = ctx.topo, ctx.snap
    old_state, old_container, fence = _old_primary_state(ctx.old_snap)
    if fence == "stop" and mode == "failover" and cut_between(topo, ctx.partitioned, ctx.old, cand.node):
        # Its fast shutdown would wait (wal_sender_timeout) for standbys behind the partition to confirm
        # its last WAL: seconds of outage for nothing, since the candidate gets none of it anyway.
        fence = "kill"
    replicas = replica_moves(ctx, cand.node, switchover=mode == "switchover")
    direct = [m.node for m in replicas if m.upstream == cand.node and m.action in ("repoint", "stay", "demote")
              and not m.waits]
    sync_after = intended_sync(topo, ctx.cluster, primary=cand.node, available=set(direct))
    file_sync = topo.clusters[ctx.cluster].synchronous
    if file_sync is not None and sync_after is None:
        warnings.append(f"no synchronous standby left for {cand.node}: cluster {ctx.cluster} runs asynchronously "
                        "until a standby rejoins")
    elif file_sync is not None and sync_after is not None and len(sync_after.standbys) < len(file_sync.standbys):
        warnings.append(f"synchronous_standby_names on {cand.node} keeps only the standbys that will stream from it: "
                        f"{sync_after.text()}")
    publishing = topo.postgres.version >= 17 and render.publishes(topo, ctx.cluster)
    standby_slots = tuple(slot_name(n) for n in direct) if publishing else ()
    stale = _stale_slots(topo, snap, replicas, cand.node, snap.nodes[cand.node].slots)
    for m in replicas:
        if m.action == "rejoin":
            warnings.append(f"{m.node} {m.reason}")
        elif m.waits:
            warnings.append(f"{m.node}: {m.waits}")
    later: tuple[tuple[str, str], ...] = ()
    if subscribers_later:
        subs: list[SubscriberMove] = []
        later = tuple((c, primaries[c]) for c, cl in topo.clusters.items()
                      if any(sub.publisher == ctx.cluster for sub in cl.subscriptions.values()))
    else:
        subs = subscriber_moves(topo, ctx.cluster, cand.node, cand_slots=snap.nodes[cand.node].slots, nodes=snap.nodes,
                                partitioned=ctx.partitioned, primaries=primaries, switchover=mode == "switchover")
    warnings.extend(subscriber_warnings(subs))
    at_risk = max(0, ref.lsn - (cand.receive_lsn or 0)) if ref.lsn is not None else 0
    return Plan(
        mode=mode, cluster=ctx.cluster, old_primary=ctx.old, old_state=old_state, old_container=old_container,
        fence=fence, candidate=cand.node, ranking=tuple(ranking), why=tuple(why), reference_lsn=ref.lsn,
        reference=ref.description, max_lag=max_lag, forced=forced, at_risk_bytes=at_risk, timeline=cand.timeline,
        replicas=tuple(replicas), subscribers=tuple(subs), sync_before=ctx.sync, sync_after=sync_after,
        synchronized_standby_slots=standby_slots, slot_sync_standbys=tuple(direct) if publishing else (),
        stale_slots=stale, warnings=tuple(warnings),
        not_asked=tuple((n, topo.node(n).region, up) for n, up in ctx.deferred),
        subscribers_later=later, candidate_slots=snap.nodes[cand.node].slots if later else (),
    )


def _stale_slots(topo: Topology, snap: Snapshot, replicas: Iterable[ReplicaMove], cand: str,
                 slots: Iterable[Slot]) -> tuple[str, ...]:
    """The candidate's physical slots nobody will use once it is primary (idle, no replica's)."""
    replicas = list(replicas)
    keep = {slot_name(m.node) for m in replicas if m.upstream == cand}
    keep |= {slot_name(m.node) for m in replicas if m.action == "down" and upstream_of(topo, snap.nodes[m.node]) == cand}
    return tuple(s.name for s in slots
                 if s.slot_type == "physical" and not s.active and s.name not in keep and s.name != HOLD_SLOT)


def with_candidate_slots(topo: Topology, plan: Plan, snap: Snapshot, slots: Sequence[Slot]) -> Plan:
    """``plan`` made before its candidate's slots were read (an unattended failover asks its replicas
    only what ranks them, ``Plan.subscribers_later``), completed with them: the stale slots to drop
    and the slots its subscribers' moves are decided from after the first write. The rest of the
    plan does not depend on them."""
    assert plan.mode == "failover" and not plan.subscribers, "only a plan whose subscribers are asked later"
    return dataclasses.replace(plan, stale_slots=_stale_slots(topo, snap, plan.replicas, plan.candidate, slots),
                               candidate_slots=tuple(slots) if plan.subscribers_later else ())


def subscriber_warnings(subs: Iterable[SubscriberMove]) -> list[str]:
    out = []
    for s in subs:
        if s.waits:
            out.append(f"subscription {s.subscription}: {s.waits}")
        if s.action == "resync":
            out.append(f"subscription {s.subscription} on {s.node} will be RE-SYNCHRONISED: {s.reason}; its tables "
                       "are truncated and copied again")
        elif s.action == "unreachable":
            out.append(f"subscription {s.subscription}: {s.reason}")
    return out


def later_subscriber_moves(topo: Topology, plan: Plan, snap: Snapshot) -> list[SubscriberMove]:
    """The subscriber moves of a plan that left its subscribers unasked (``Plan.subscribers_later``), from
    their snapshot taken after the first write and the candidate's slots as they were before it."""
    return subscriber_moves(topo, plan.cluster, plan.candidate, cand_slots=plan.candidate_slots, nodes=snap.nodes,
                            partitioned=snap.partitioned, primaries=dict(plan.subscribers_later), switchover=False)


def _global_checks(ctx: Context) -> None:
    cl = ctx.topo.clusters[ctx.cluster]
    if len(cl.nodes) < 2:
        raise InputError(f"cluster {ctx.cluster} has no replica to promote")
    others = [n for n in ctx.snap.writable(ctx.cluster) if n != ctx.old]
    if others:
        raise InputError(f"cluster {ctx.cluster} already has a writable node other than {ctx.old}: "
                         f"{', '.join(others)}; resolve that first (`pgtopo rejoin` the one to keep as a replica)")


def plan_failover(topo: Topology, snap: Snapshot, *, cluster: str | None, to: str | None,
                  max_lag: int = DEFAULT_MAX_LAG, force: bool = False,
                  old_primary_last_lsn: tuple[int, int | None] | None = None,
                  primaries: dict[str, str] | None = None, recorded_sync: SyncConfig | None = None,
                  deferred: dict[str, str] | None = None, subscribers_later: bool = False) -> Plan:
    """Choose the node to promote, or refuse (InputError) when none is safe.

    ``primaries`` is cluster -> current primary (the state's, after earlier failovers);
    ``old_primary_last_lsn`` is (LSN, timeline) of the old primary last time it was seen, used
    when it is unreachable now; ``recorded_sync`` is its synchronous setting as last applied;
    ``deferred`` the cascaded replicas left out of the snapshot (``streamed_by``), each with the
    upstream that streams it: they stay behind it.
    """
    if max_lag < 0:
        raise InputError(f"--max-lag {max_lag}: must be 0 or more bytes")
    cluster = choose_cluster(topo, cluster=cluster, to=to)
    primaries = {c: (primaries or {}).get(c, cl.primary_name) for c, cl in topo.clusters.items()}
    old = primaries[cluster]
    ctx = context(topo, snap, cluster, old, recorded_sync, subscribers=subscriber_nodes(topo, cluster, primaries),
                  deferred=tuple((deferred or {}).items()))
    if to == old:
        raise InputError(f"--to {to}: it is the current primary of cluster {cluster}")
    _global_checks(ctx)
    ref = reference(ctx, old_primary_last_lsn)
    cands = [candidate(ctx, n, ref=ref, max_lag=max_lag)
             for n in snap.cluster_nodes(cluster) if n.node != old]
    ranking = sorted(sync_risks(ctx, cands), key=rank_key)
    warnings: list[str] = []
    if topo.clusters[cluster].synchronous is not None and ctx.sync is None:
        warnings.append(f"{old} ran without a synchronous standby: acknowledged commits may be lost")
    if ctx.old_alive:
        warnings.append(f"{old} is alive and writable: it is stopped first (for a planned change with zero loss use "
                        "`pgtopo switchover`)")
    if to is not None:
        chosen = next(c for c in ranking if c.node == to)
        if chosen.blockers:
            raise InputError(f"--to {to}: cannot be promoted: {'; '.join(chosen.blockers)}")
        if chosen.risks and not force:
            raise InputError(f"--to {to}: not safe to promote: {'; '.join(chosen.risks)}",
                             details=["--force promotes it anyway"])
        why = [f"chosen with --to {to}"]
        best = ranking[0]
        if best.node != to and best.eligible and (best.receive_lsn or 0) > (chosen.receive_lsn or 0):
            warnings.append(f"{best.node} has {fmt_bytes((best.receive_lsn or 0) - (chosen.receive_lsn or 0))} more WAL "
                            f"than {to}: that WAL is lost and {best.node} needs `pgtopo rejoin`")
    else:
        safe = [c for c in ranking if c.eligible]
        if safe:
            chosen = safe[0]
        else:
            forcible = [c for c in ranking if not c.blockers]
            details = [f"{c.node}: {c.verdict}" for c in ranking]
            if not forcible:
                raise InputError(f"no candidate can be promoted in cluster {cluster}", details=details)
            if not force:
                raise InputError(f"no safe candidate in cluster {cluster}",
                                 details=[*details, "--force promotes the best of them anyway (data at risk)"])
            chosen = forcible[0]
        why = why_chosen(ctx, chosen, ranking)
    if chosen.risks:
        at_risk = max(0, (ref.lsn or 0) - (chosen.receive_lsn or 0))
        warnings.insert(0, f"--force: promoting {chosen.node} although {'; '.join(chosen.risks)}; data at risk: "
                           f"{fmt_bytes(at_risk)} ({at_risk} bytes) of WAL behind {ref.who}")
    return _finish(ctx, mode="failover", cand=chosen, ranking=ranking, why=why, ref=ref,
                   max_lag=max_lag, forced=bool(chosen.risks), primaries=primaries, warnings=warnings,
                   subscribers_later=subscribers_later)


def plan_switchover(topo: Topology, snap: Snapshot, *, cluster: str | None, to: str,
                    primaries: dict[str, str] | None = None) -> Plan:
    """A planned change of primary with zero loss: the old primary must be up and writable."""
    cluster = choose_cluster(topo, cluster=cluster, to=to)
    primaries = {c: (primaries or {}).get(c, cl.primary_name) for c, cl in topo.clusters.items()}
    old = primaries[cluster]
    if to == old:
        raise InputError(f"--to {to}: it is already the primary of cluster {cluster}")
    ctx = context(topo, snap, cluster, old, None, subscribers=subscriber_nodes(topo, cluster, primaries))
    _global_checks(ctx)
    if not ctx.old_alive:
        state, _c, _f = _old_primary_state(ctx.old_snap)
        raise InputError(f"switchover needs a running primary: {old} is {state}; use `pgtopo failover`")
    ref = reference(ctx, None)
    cands = [candidate(ctx, n, ref=ref, max_lag=1 << 62)
             for n in snap.cluster_nodes(cluster) if n.node != old]
    ranking = sorted(cands, key=rank_key)
    chosen = next(c for c in ranking if c.node == to)
    if chosen.blockers:
        raise InputError(f"--to {to}: cannot be promoted: {'; '.join(chosen.blockers)}")
    target = snap.nodes[to]
    if target.receiver_status != "streaming":
        raise InputError(f"--to {to}: not streaming ({target.receiver_status or 'no WAL receiver'}); a switchover "
                         "waits for it to receive the last WAL")
    if chosen.risks:
        raise InputError(f"--to {to}: {'; '.join(chosen.risks)}")
    why = [f"chosen with --to {to}; {old} stops cleanly and {to} receives its last WAL before promotion: no loss"]
    return _finish(ctx, mode="switchover", cand=chosen, ranking=ranking, why=why, ref=ref, max_lag=0, forced=False,
                   primaries=primaries, warnings=[])

"""Who becomes primary, and what else has to move: pure decisions on a frozen snapshot.

``plan_failover`` and ``plan_switchover`` read a ``Snapshot`` (and the file) and return a
frozen ``Plan``: the ranked candidates with the reason for each verdict, the choice, how to
fence the old primary, where every other replica and every subscriber of the cluster goes,
and the synchronous settings the new primary needs. They never touch a database; refusals
are ``InputError`` (nothing changed). ``pgtopo.replication`` carries a plan out.

Ranking, like CloudNativePG: the most advanced WAL wins, since a less advanced winner loses
what the others have and leaves them unable to follow its timeline; ``failover_priority``
breaks ties (0 means never promoted, like Patroni's nofailover), then a direct standby beats
a cascaded one, then the region nearest the old primary.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field

from pgtopo import render
from pgtopo.errors import InputError
from pgtopo.snapshot import NodeSnapshot, Snapshot, lsn_to_int, resolve_sender
from pgtopo.topology import Topology, slot_name

DEFAULT_MAX_LAG = 1 << 20  # Patroni's maximum_lag_on_failover


# -- small formatting helpers (pure) ------------------------------------------------------------

def fmt_lsn(value: int | None) -> str:
    if value is None:
        return "-"
    return f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"


def fmt_bytes(value: int | None) -> str:
    if value is None:
        return "-"
    if value < 1024:
        return f"{value} B"
    if value < 1 << 20:
        return f"{value / 1024:.1f} KiB"
    if value < 1 << 30:
        return f"{value / (1 << 20):.1f} MiB"
    return f"{value / (1 << 30):.1f} GiB"


# -- synchronous replication ---------------------------------------------------------------------

@dataclass(frozen=True)
class SyncConfig:
    """A parsed ``synchronous_standby_names``: ``ANY n (...)`` or ``FIRST n (...)``."""

    method: str
    count: int
    standbys: tuple[str, ...]
    source: str = "file"

    def text(self) -> str:
        if not self.standbys:
            return ""
        names = ", ".join(f'"{n}"' for n in self.standbys)
        return f"{self.method.upper()} {self.count} ({names})"

    def needed_for_safety(self) -> int:
        """How many listed standbys must be seen to be sure one holds every acknowledged commit.

        An acknowledged commit is on ``count`` of the ``n`` listed standbys (which ones is not
        known once the primary is gone), so any ``n - count + 1`` of them include one of those.
        """
        return len(self.standbys) - self.count + 1


_SSN_RE = re.compile(r"^\s*(?:(ANY|FIRST)\s+)?(?:(\d+)\s*\()?(.*?)\)?\s*$", re.IGNORECASE | re.DOTALL)


def parse_sync(value: str | None, *, source: str) -> SyncConfig | None:
    """``synchronous_standby_names`` as PostgreSQL reads it (None when empty)."""
    if not value or not value.strip():
        return None
    m = _SSN_RE.match(value)
    if m is None:
        return None
    method = (m.group(1) or "first").lower()
    count = int(m.group(2)) if m.group(2) else 1
    names = tuple(n.strip().strip('"') for n in m.group(3).split(",") if n.strip())
    if not names:
        return None
    return SyncConfig(method=method, count=count, standbys=names, source=source)


def intended_sync(topo: Topology, cluster: str, *, primary: str, available: set[str] | None) -> SyncConfig | None:
    """The file's synchronous standbys as they apply to ``primary``.

    When another node than the file's primary leads, that node leaves the list and the file's
    primary joins at its end (it is a standby now). ``available`` keeps only standbys that can
    acknowledge (streaming from ``primary``): a primary never waits for a standby that is gone.
    The count shrinks to the standbys left; with none left the cluster runs asynchronously.
    """
    sync = topo.clusters[cluster].synchronous
    if sync is None:
        return None
    file_primary = topo.clusters[cluster].primary_name
    names = [n for n in sync.standbys if n != primary]
    if primary != file_primary and file_primary not in names:
        names.append(file_primary)
    if available is not None:
        names = [n for n in names if n in available]
    if not names:
        return None
    return SyncConfig(method=sync.method, count=min(sync.count, len(names)), standbys=tuple(names), source="file")


def effective_sync(topo: Topology, snap: Snapshot, cluster: str, *, primary: str,
                   recorded: SyncConfig | None) -> SyncConfig | None:
    """What the old primary was really waiting for: its live setting, else the state, else the file."""
    if topo.clusters[cluster].synchronous is None:
        return None
    old = snap.nodes.get(primary)
    if old is not None and old.reachable and old.in_recovery is False:
        return parse_sync(old.settings.get("synchronous_standby_names"), source=f"live setting on {primary}")
    if recorded is not None:
        return recorded
    return intended_sync(topo, cluster, primary=primary, available=None)


# -- the plan ------------------------------------------------------------------------------------

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


@dataclass(frozen=True)
class ReplicaMove:
    """What happens to a node of the cluster other than the new primary."""

    node: str
    action: str  # repoint, stay, demote, down, rejoin
    upstream: str | None
    reason: str


@dataclass(frozen=True)
class SubscriberMove:
    """A subscription to the cluster's publications, on another cluster's primary."""

    subscription: str
    cluster: str
    node: str
    database: str
    slot: str
    action: str  # move, resync, unreachable
    reason: str
    ready: bool = True  # False: the synced slot is still temporary; a switchover waits for it


@dataclass(frozen=True)
class Plan:
    mode: str  # failover or switchover
    cluster: str
    old_primary: str
    old_state: str
    old_container: str
    fence: str  # stop, disconnect, none
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

    def chosen(self) -> Candidate:
        return next(c for c in self.ranking if c.node == self.candidate)

    def direct_standbys(self) -> list[str]:
        return [m.node for m in self.replicas if m.upstream == self.candidate and m.action in ("repoint", "stay", "demote")]

    def lines(self) -> list[str]:
        """The plan in words, for the terminal."""
        out = [f"{self.mode} of cluster {self.cluster}: {self.old_primary} ({self.old_state}) -> {self.candidate}"]
        out.extend(f"  why: {w}" for w in self.why)
        out.append(f"  lag measured against {self.reference}")
        fence = {"stop": f"stop {self.old_primary} (fast shutdown; killed if it does not stop)",
                 "disconnect": f"disconnect {self.old_primary} from every network (it cannot be stopped: "
                               f"{self.old_container})",
                 "none": f"none needed: {self.old_primary} is {self.old_state}"}[self.fence]
        out.append(f"  fence: {fence}")
        for m in self.replicas:
            out.append(f"  {m.node}: {m.action}" + (f" -> {m.upstream}" if m.upstream else "") + f" ({m.reason})")
        for s in self.subscribers:
            loud = "RE-SYNCHRONISE (truncate + full copy)" if s.action == "resync" else s.action
            out.append(f"  subscription {s.subscription} on {s.node}: {loud} ({s.reason})")
        after = self.sync_after.text() if self.sync_after else "''"
        if self.sync_before is not None or self.sync_after is not None:
            out.append(f"  synchronous_standby_names on {self.candidate}: {after}")
        if self.synchronized_standby_slots:
            out.append(f"  synchronized_standby_slots on {self.candidate}: {', '.join(self.synchronized_standby_slots)}")
        if self.stale_slots:
            out.append(f"  drop stale slots on {self.candidate}: {', '.join(self.stale_slots)}")
        out.extend(f"  warning: {w}" for w in self.warnings)
        return out


def ranking_rows(plan: Plan) -> list[list[str]]:
    rows = []
    for c in plan.ranking:
        rows.append([
            ("-> " if c.node == plan.candidate else "") + c.node, c.region, c.state,
            "-" if c.timeline is None else str(c.timeline), fmt_lsn(c.receive_lsn), fmt_lsn(c.replay_lsn),
            fmt_bytes(c.lag_bytes), c.sync or "-", str(c.priority), c.upstream or "-", c.verdict,
        ])
    return rows


RANKING_COLUMNS = ["node", "region", "state", "TL", "received", "replayed", "lag", "sync", "priority", "upstream",
                   "verdict"]


# -- planning ------------------------------------------------------------------------------------

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


def configured_upstream(topo: Topology, n: NodeSnapshot) -> str | None:
    """The node a replica streams from, or is configured to (when its upstream is gone)."""
    if n.upstream:
        return n.upstream
    info = n.settings.get("primary_conninfo") or ""
    parts = dict(p.split("=", 1) for p in info.split() if "=" in p)
    port = parts.get("port")
    found = resolve_sender(topo, host=parts.get("host"), port=int(port) if port and port.isdigit() else None)
    if found:
        return found
    if not n.reachable:
        return topo.node(n.node).upstream
    return None


def _down_state(n: NodeSnapshot) -> str:
    if n.container != "running":
        return f"down (container {n.container})"
    return f"unreachable ({n.error})" if n.error else "unreachable"


def _old_primary_state(n: NodeSnapshot | None) -> tuple[str, str, str]:
    """(state, container status, fencing action)."""
    if n is None:
        return "unknown", "missing", "none"
    if n.container in ("exited", "dead", "missing", "created"):
        return _down_state(n), n.container, "none"
    if n.container == "paused":
        return "down (container paused)", n.container, "disconnect"
    if not n.reachable:
        return _down_state(n), n.container, "stop"
    if n.in_recovery:
        return "a replica", n.container, "stop"
    return "writable", n.container, "stop"


def _position(n: NodeSnapshot) -> int | None:
    return lsn_to_int(n.receive_lsn) if n.in_recovery else lsn_to_int(n.current_lsn)


def _replay(n: NodeSnapshot) -> int | None:
    return lsn_to_int(n.replay_lsn) if n.in_recovery else lsn_to_int(n.current_lsn)


@dataclass(frozen=True)
class _Context:
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


def _context(topo: Topology, snap: Snapshot, cluster: str, old: str, recorded_sync: SyncConfig | None) -> _Context:
    nodes = snap.cluster_nodes(cluster)
    old_snap = snap.nodes.get(old)
    old_alive = bool(old_snap and old_snap.reachable and old_snap.in_recovery is False)
    live = [n for n in nodes if n.reachable]
    tls = [n.timeline for n in live if n.timeline is not None]
    sysids = [n.system_identifier for n in live if n.system_identifier]
    sysid = old_snap.system_identifier if old_alive and old_snap else (max(set(sysids), key=sysids.count) if sysids
                                                                      else None)
    sync_states = {d.application_name: d.sync_state for d in old_snap.downstream} if old_alive and old_snap else {}
    return _Context(topo=topo, snap=snap, cluster=cluster, old=old, old_snap=old_snap, old_alive=old_alive,
                    max_tl=max(tls) if tls else None, sysid=sysid,
                    sync=effective_sync(topo, snap, cluster, primary=old, recorded=recorded_sync),
                    sync_states=sync_states)


@dataclass(frozen=True)
class Reference:
    """The position lag is measured against."""

    lsn: int | None
    who: str  # short: "pg-us", "the most advanced replica pg-eu"
    description: str


def _reference(ctx: _Context, old_primary_last_lsn: tuple[int, int | None] | None) -> Reference:
    if ctx.old_alive and ctx.old_snap is not None:
        ref = lsn_to_int(ctx.old_snap.current_lsn)
        return Reference(ref, ctx.old, f"{ctx.old}'s current position {fmt_lsn(ref)}")
    replicas = [n for n in ctx.snap.cluster_nodes(ctx.cluster)
                if n.node != ctx.old and n.reachable and n.in_recovery and n.timeline == ctx.max_tl]
    best = max(replicas, key=lambda n: _position(n) or -1, default=None)
    best_pos = _position(best) if best else None
    if old_primary_last_lsn is not None:
        last, tl = old_primary_last_lsn
        if (tl is None or tl == ctx.max_tl) and (best_pos is None or last > best_pos):
            return Reference(last, f"{ctx.old}'s last known position",
                             f"the last known position of {ctx.old}, {fmt_lsn(last)} ({ctx.old} is down)")
    if best is None:
        return Reference(None, "nothing", f"nothing: {ctx.old} is down and no replica is reachable")
    return Reference(best_pos, f"the most advanced replica {best.node}",
                     f"the most advanced replica, {best.node} at {fmt_lsn(best_pos)} ({ctx.old} is down: WAL it "
                     "wrote but never sent is not counted)")


def _candidate(ctx: _Context, n: NodeSnapshot, *, ref: Reference, max_lag: int) -> Candidate:
    topo = ctx.topo
    spec = topo.node(n.node)
    old_region = topo.node(ctx.old).region
    blockers: list[str] = []
    risks: list[str] = []
    upstream = configured_upstream(topo, n)
    if not n.reachable:
        state = _down_state(n)
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
        if _position(n) is None:
            blockers.append("has received no WAL")
    pos = _position(n) if n.reachable and n.in_recovery else None
    lag = None if pos is None or ref.lsn is None else max(0, ref.lsn - pos)
    if not blockers:
        if lag is not None and lag > max_lag:
            extra = f" (cascaded behind {upstream})" if upstream and upstream != ctx.old else ""
            risks.append(f"lags {fmt_bytes(lag)} behind {ref.who}{extra}, more than --max-lag {fmt_bytes(max_lag)}")
        if spec.failover_priority == 0:
            risks.append("failover_priority 0: never promoted unless forced")
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
        blockers=tuple(blockers), risks=tuple(risks),
    )


def _sync_risks(ctx: _Context, cands: list[Candidate]) -> list[Candidate]:
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


def _rank_key(c: Candidate) -> tuple[object, ...]:
    return (
        bool(c.blockers), bool(c.risks), c.sync not in ("", "sync", "quorum", "potential", "listed"),
        -(c.timeline or 0), -(c.receive_lsn if c.receive_lsn is not None else -1),
        -(c.replay_lsn if c.replay_lsn is not None else -1), -c.priority, c.cascaded, c.rtt_ms, c.node,
    )


def _why(ctx: _Context, chosen: Candidate, ranking: list[Candidate]) -> list[str]:
    others = [c for c in ranking if c.node != chosen.node]
    why = []
    if chosen.sync and chosen.sync != "async":
        why.append(f"{chosen.node} is a synchronous standby ({ctx.sync.text() if ctx.sync else ''})")
    why.append(f"{chosen.node} has the most WAL: received {fmt_lsn(chosen.receive_lsn)}, replayed "
               f"{fmt_lsn(chosen.replay_lsn)}, lag {fmt_bytes(chosen.lag_bytes)}")
    ties = [c for c in others if c.eligible and c.receive_lsn == chosen.receive_lsn
            and c.replay_lsn == chosen.replay_lsn]
    if ties:
        why.append(f"tie on WAL with {', '.join(c.node for c in ties)}: " + _tie_break(ctx, chosen, ties[0]))
    return why


def _tie_break(ctx: _Context, chosen: Candidate, other: Candidate) -> str:
    if chosen.priority != other.priority:
        return f"higher failover_priority ({chosen.priority} > {other.node}'s {other.priority})"
    if chosen.cascaded != other.cascaded:
        return f"a direct standby ({other.node} is cascaded behind {other.upstream})"
    if chosen.rtt_ms != other.rtt_ms:
        return (f"nearer {ctx.old}'s region ({chosen.region}, {chosen.rtt_ms:g} ms round trip; {other.region}, "
                f"{other.rtt_ms:g} ms)")
    return "first by name"


def _replica_moves(ctx: _Context, cand: str, *, switchover: bool) -> list[ReplicaMove]:
    topo, snap = ctx.topo, ctx.snap
    cand_pos = _position(snap.nodes[cand])
    file_primary = topo.clusters[ctx.cluster].primary_name
    moves: dict[str, ReplicaMove] = {}
    for n in snap.cluster_nodes(ctx.cluster):
        if n.node in (cand, ctx.old):
            continue
        up = configured_upstream(topo, n)
        if not n.reachable:
            moves[n.node] = ReplicaMove(n.node, "down", None,
                                        f"{_down_state(n)}: `pgtopo rejoin` points it at {cand} when it is back")
            continue
        pos = _position(n)
        if not ctx.old_alive and pos is not None and cand_pos is not None and pos > cand_pos:
            moves[n.node] = ReplicaMove(n.node, "rejoin", None,
                                        f"ahead of {cand} by {fmt_bytes(pos - cand_pos)}: it cannot follow the new "
                                        "timeline; run `pgtopo rejoin` for it after the failover")
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
    out = [moves[n] for n in topo.clusters[ctx.cluster].nodes if n in moves]
    if switchover:
        out.insert(0, ReplicaMove(ctx.old, "demote", cand, "the old primary becomes a replica of the new one"))
    return out


def _subscriber_moves(ctx: _Context, cand: str, primaries: dict[str, str], *, switchover: bool) -> list[SubscriberMove]:
    topo, snap = ctx.topo, ctx.snap
    cand_slots = {s.name: s for s in snap.nodes[cand].slots}
    out = []
    for cname, cl in topo.clusters.items():
        for sname, sub in cl.subscriptions.items():
            if sub.publisher != ctx.cluster:
                continue
            pub = topo.clusters[sub.publisher].publications[sub.publication]
            db = sub.database or pub.database
            node = primaries.get(cname, cl.primary_name)
            ns = snap.nodes.get(node)
            state = next((s for s in ns.subscriptions if s.name == sname), None) if ns else None
            slot = (state.slot_name if state and state.slot_name else sname)
            if ns is None or not ns.reachable:
                out.append(SubscriberMove(sname, cname, node, db, slot, "unreachable",
                                          f"{node} is down: move the subscription by hand when it is back"))
                continue
            if state is None:
                out.append(SubscriberMove(sname, cname, node, db, slot, "unreachable",
                                          f"no subscription {sname} on {node}"))
                continue
            s = cand_slots.get(slot)
            synced = s is not None and s.slot_type == "logical" and s.synced and s.failover
            if synced and s is not None and not s.temporary:
                out.append(SubscriberMove(sname, cname, node, db, slot, "move",
                                          f"failover slot {slot} is synced on {cand}: continues with no gap"))
                continue
            if synced and switchover:
                out.append(SubscriberMove(sname, cname, node, db, slot, "move",
                                          f"failover slot {slot} on {cand} is not sync-ready yet: the switchover waits "
                                          "for it", ready=False))
                continue
            if synced:
                why = f"slot {slot} on {cand} is not sync-ready yet (temporary: promotion drops it)"
            elif topo.postgres.version < 17:
                why = f"PostgreSQL {topo.postgres.version} has no failover slots"
            elif s is None:
                why = f"no slot {slot} on {cand}" + ("" if state.failover else " (the subscription has failover = false)")
            else:
                why = f"slot {slot} on {cand} is not a synced failover slot"
            out.append(SubscriberMove(sname, cname, node, db, slot, "resync", why))
    return out


def _finish(ctx: _Context, *, mode: str, cand: Candidate, ranking: list[Candidate], why: list[str], ref: Reference,
            max_lag: int, forced: bool, primaries: dict[str, str], warnings: list[str]) -> Plan:
    topo, snap = ctx.topo, ctx.snap
    old_state, old_container, fence = _old_primary_state(ctx.old_snap)
    replicas = _replica_moves(ctx, cand.node, switchover=mode == "switchover")
    direct = [m.node for m in replicas if m.upstream == cand.node and m.action in ("repoint", "stay", "demote")]
    sync_after = intended_sync(topo, ctx.cluster, primary=cand.node, available=set(direct))
    file_sync = topo.clusters[ctx.cluster].synchronous
    if file_sync is not None and sync_after is None:
        warnings.append(f"no synchronous standby left for {cand.node}: cluster {ctx.cluster} runs asynchronously "
                        "until a standby rejoins")
    elif file_sync is not None and sync_after is not None and len(sync_after.standbys) < len(file_sync.standbys):
        warnings.append(f"synchronous_standby_names on {cand.node} keeps only the standbys that will stream from it: "
                        f"{sync_after.text()}")
    publishing = topo.postgres.version >= 17 and render.publishes(topo, ctx.cluster)
    sss = tuple(slot_name(n) for n in direct) if publishing else ()
    keep = {slot_name(m.node) for m in replicas if m.upstream == cand.node}
    keep |= {slot_name(m.node) for m in replicas if m.action == "down"
             and configured_upstream(topo, snap.nodes[m.node]) == cand.node}
    stale = tuple(s.name for s in snap.nodes[cand.node].slots
                  if s.slot_type == "physical" and not s.active and s.name not in keep)
    for m in replicas:
        if m.action == "rejoin":
            warnings.append(f"{m.node} {m.reason}")
    subs = _subscriber_moves(ctx, cand.node, primaries, switchover=mode == "switchover")
    for s in subs:
        if s.action == "resync":
            warnings.append(f"subscription {s.subscription} on {s.node} will be RE-SYNCHRONISED: {s.reason}; its tables "
                            "are truncated and copied again")
        elif s.action == "unreachable":
            warnings.append(f"subscription {s.subscription}: {s.reason}")
    at_risk = max(0, ref.lsn - (cand.receive_lsn or 0)) if ref.lsn is not None else 0
    return Plan(
        mode=mode, cluster=ctx.cluster, old_primary=ctx.old, old_state=old_state, old_container=old_container,
        fence=fence, candidate=cand.node, ranking=tuple(ranking), why=tuple(why), reference_lsn=ref.lsn,
        reference=ref.description, max_lag=max_lag, forced=forced, at_risk_bytes=at_risk, timeline=cand.timeline,
        replicas=tuple(replicas), subscribers=tuple(subs), sync_before=ctx.sync, sync_after=sync_after,
        synchronized_standby_slots=sss, slot_sync_standbys=tuple(direct) if publishing else (),
        stale_slots=stale, warnings=tuple(warnings),
    )


def _global_checks(ctx: _Context) -> None:
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
                  primaries: dict[str, str] | None = None, recorded_sync: SyncConfig | None = None) -> Plan:
    """Choose the node to promote, or refuse (InputError) when none is safe.

    ``primaries`` is cluster -> current primary (the state's, after earlier failovers);
    ``old_primary_last_lsn`` is (LSN, timeline) of the old primary last time it was seen, used
    when it is unreachable now; ``recorded_sync`` is its synchronous setting as last applied.
    """
    if max_lag < 0:
        raise InputError(f"--max-lag {max_lag}: must be 0 or more bytes")
    cluster = choose_cluster(topo, cluster=cluster, to=to)
    primaries = {c: (primaries or {}).get(c, cl.primary_name) for c, cl in topo.clusters.items()}
    old = primaries[cluster]
    ctx = _context(topo, snap, cluster, old, recorded_sync)
    if to == old:
        raise InputError(f"--to {to}: it is the current primary of cluster {cluster}")
    _global_checks(ctx)
    ref = _reference(ctx, old_primary_last_lsn)
    cands = [_candidate(ctx, n, ref=ref, max_lag=max_lag)
             for n in snap.cluster_nodes(cluster) if n.node != old]
    ranking = sorted(_sync_risks(ctx, cands), key=_rank_key)
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
        why = _why(ctx, chosen, ranking)
    if chosen.risks:
        at_risk = max(0, (ref.lsn or 0) - (chosen.receive_lsn or 0))
        warnings.insert(0, f"--force: promoting {chosen.node} although {'; '.join(chosen.risks)}; data at risk: "
                           f"{fmt_bytes(at_risk)} ({at_risk} bytes) of WAL behind {ref.who}")
    return _finish(ctx, mode="failover", cand=chosen, ranking=ranking, why=why, ref=ref,
                   max_lag=max_lag, forced=bool(chosen.risks), primaries=primaries, warnings=warnings)


def plan_switchover(topo: Topology, snap: Snapshot, *, cluster: str | None, to: str,
                    primaries: dict[str, str] | None = None) -> Plan:
    """A planned change of primary with zero loss: the old primary must be up and writable."""
    cluster = choose_cluster(topo, cluster=cluster, to=to)
    primaries = {c: (primaries or {}).get(c, cl.primary_name) for c, cl in topo.clusters.items()}
    old = primaries[cluster]
    if to == old:
        raise InputError(f"--to {to}: it is already the primary of cluster {cluster}")
    ctx = _context(topo, snap, cluster, old, None)
    _global_checks(ctx)
    if not ctx.old_alive:
        state, _c, _f = _old_primary_state(ctx.old_snap)
        raise InputError(f"switchover needs a running primary: {old} is {state}; use `pgtopo failover`")
    ref = _reference(ctx, None)
    cands = [_candidate(ctx, n, ref=ref, max_lag=1 << 62)
             for n in snap.cluster_nodes(cluster) if n.node != old]
    ranking = sorted(cands, key=_rank_key)
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

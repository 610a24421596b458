"""`failover`, `switchover` and `rejoin` of a cluster Patroni keeps alive: through its REST API.

pgtopo never promotes, fences, rewinds or re-points a Patroni member itself: it asks Patroni
(``POST /failover``, ``/switchover``, ``/reinitialize``) and waits until ``GET /cluster`` shows
the result, then measures it from the client's side (the new leader accepts a write). Patroni's
own checks apply (``maximum_lag_on_failover``, ``nofailover``, synchronous mode); pgtopo's
ranking only chooses the candidate when ``--to`` is not given and is printed with the plan.
The decisions (`decide`) are pure functions of Patroni's view and pgtopo's ranking.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import psycopg

from pgtopo.errors import InputError, OperationFailed, PgtopoError, first_line
from pgtopo.ha import failover
from pgtopo.ha.candidates import Candidate
from pgtopo.model.patroni import synchronous_count
from pgtopo.model.topology import Topology
from pgtopo.observe import snapshot
from pgtopo.patroni import api
from pgtopo.patroni.views import ClusterView, Member, counted_synchronous
from pgtopo.postgres import connect
from pgtopo.postgres.lsn import fmt_bytes, format_lsn
from pgtopo.progress import Progress
from pgtopo.runtime import gateway, state
from pgtopo.runtime.waiting import poll, wait_for

SNAPSHOT_TIMEOUT_S = 5.0
LEADER_TIMEOUT_S = 60.0  # Patroni has answered: the new leader shows in the DCS within a loop or two
WRITE_TIMEOUT_S = 30.0
FOLLOW_TIMEOUT_S = 90.0  # the other members stream on the new timeline (a rewind and restart each)
REJOIN_TIMEOUT_S = 180.0  # Patroni starts, rewinds (or clones with --reinit) and streams


def managed(topo: Topology, cluster: str) -> bool:
    return topo.clusters[cluster].ha == "patroni"


# -- the decision (pure) ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class ManagedPlan:
    mode: str  # failover | switchover
    cluster: str
    leader: str | None  # Patroni's leader now (None: no member holds the lock)
    leader_timeline: int | None
    candidate: str
    ranking: tuple[Candidate, ...]
    why: tuple[str, ...]
    warnings: tuple[str, ...] = ()

    def lines(self) -> list[str]:
        call = (f"POST /failover candidate={self.candidate}" if self.mode == "failover"
                else f"POST /switchover leader={self.leader} candidate={self.candidate}")
        out = [f"{self.mode} of cluster {self.cluster} (ha: patroni): {self.leader or 'no leader'} -> {self.candidate}"]
        out.extend(f"  why: {w}" for w in self.why)
        out.append(f"  Patroni decides: {call}; its own checks apply (maximum_lag_on_failover, nofailover, "
                   "synchronous mode), it fences the old leader and rewinds or re-points the other members")
        out.extend(f"  warning: {w}" for w in self.warnings)
        return out

    def ranking_rows(self) -> list[list[str]]:
        return [[("-> " if c.node == self.candidate else "") + c.node, c.region, c.state,
                 "-" if c.timeline is None else str(c.timeline), format_lsn(c.receive_lsn), format_lsn(c.replay_lsn),
                 fmt_bytes(c.lag_bytes), c.sync or "-", str(c.priority), c.upstream or "-", c.verdict]
                for c in self.ranking]


def _member(view: ClusterView, node: str, *, option: str) -> Member:
    m = view.member(node)
    if m is None:
        raise InputError(f"{option} {node}: not a member Patroni knows in cluster {view.scope} "
                         f"(members: {', '.join(view.names()) or 'none'})")
    return m


def decide(*, mode: str, cluster: str, view: ClusterView, to: str | None, ranked: failover.Plan | None,
           refusal: str | None, leader_reachable: bool = True, recorded: str | None = None) -> ManagedPlan:
    """What to ask Patroni. ``ranked`` is pgtopo's own failover plan (None with ``refusal``: why
    pgtopo would not promote anyone); it chooses the candidate when ``to`` is None.
    ``leader_reachable``: whether pgtopo reaches the PostgreSQL of Patroni's leader (a crashed
    leader stays listed until its key expires, ``ttl``); ``recorded``: the primary pgtopo last
    recorded for the cluster (Patroni may have failed over by itself since)."""
    leader = view.leader
    warnings: list[str] = []
    if len(view.leaders) > 1:
        raise InputError(f"cluster {cluster}: Patroni lists several leaders ({', '.join(m.name for m in view.leaders)})")
    if mode == "switchover":
        if to is None:
            raise InputError("switchover needs --to NODE")
        if leader is None or not leader.healthy:
            what = "no leader" if leader is None else f"leader {leader.name} {leader.state}"
            raise InputError(f"switchover needs a running leader: Patroni reports {what}; use `pgtopo failover`")
        target = _member(view, to, option="--to")
        if target.name == leader.name:
            raise InputError(f"--to {to}: it is already the leader of cluster {cluster}")
        if target.state != "streaming":
            raise InputError(f"--to {to}: Patroni reports it {target.state}, not streaming: a switchover waits for "
                             "a replica that has the leader's last WAL")
        why = [f"chosen with --to {to}; Patroni stops {leader.name} cleanly and promotes {to}: no loss"]
        return ManagedPlan(mode=mode, cluster=cluster, leader=leader.name, leader_timeline=leader.timeline,
                           candidate=to, ranking=ranked.ranking if ranked else (), why=tuple(why))
    if to is not None:
        chosen = _member(view, to, option="--to")
        if leader is not None and chosen.name == leader.name and leader.healthy:
            raise InputError(f"--to {to}: it is the current leader of cluster {cluster}")
        why = [f"chosen with --to {to}"]
        if refusal:
            warnings.append(f"pgtopo would not promote {to} itself ({refusal}); Patroni's checks decide")
        elif ranked is not None and ranked.candidate != to:
            warnings.append(f"pgtopo's ranking prefers {ranked.candidate}")
    else:
        if ranked is None:
            raise InputError(f"no candidate to ask Patroni for in cluster {cluster}: {refusal or 'no ranking'}",
                             details=["--to NODE asks Patroni for that member anyway"])
        chosen = _member(view, ranked.candidate, option="candidate")
        why = list(ranked.why)
    if chosen.tags.get("nofailover") is True:
        raise InputError(f"{chosen.name} is tagged nofailover: Patroni never promotes it")
    if (mode == "failover" and leader is not None and leader.healthy and leader_reachable and recorded is not None
            and recorded != leader.name):
        warnings.append(f"Patroni already made {leader.name} the leader (timeline {leader.timeline}; pgtopo last "
                        f"recorded {recorded}): this is one more failover")
    if leader is not None and leader.healthy and leader_reachable:
        warnings.append(f"{leader.name} is a running leader: Patroni demotes it first (for a planned change use "
                        "`pgtopo switchover`)")
    elif leader is not None and not leader_reachable:
        warnings.append(f"Patroni still lists {leader.name} as leader but its PostgreSQL does not answer: Patroni "
                        "acts once its leader key expires (ttl)")
    return ManagedPlan(mode=mode, cluster=cluster, leader=leader.name if leader else None,
                       leader_timeline=leader.timeline if leader else None, candidate=chosen.name,
                       ranking=ranked.ranking if ranked else (), why=tuple(why), warnings=tuple(warnings))


def took_over(view: ClusterView, *, candidate: str, old_timeline: int | None) -> Member | None:
    """The candidate, once Patroni shows it leading and running on a newer timeline than before."""
    m = view.leader
    if m is None or m.name != candidate or not m.healthy or m.timeline is None:
        return None
    return m if old_timeline is None or m.timeline > old_timeline else None


def lagging(view: ClusterView, *, timeline: int) -> list[Member]:
    """The members not (yet) streaming on ``timeline``."""
    return [m for m in view.members if not m.is_leader and (m.state != "streaming" or m.timeline != timeline)]


# -- acting --------------------------------------------------------------------------------------------

@dataclass
class ManagedOutcome:
    plan: ManagedPlan
    answer: str = ""  # what Patroni answered the POST
    timeline: int | None = None
    recovery_s: float = 0.0  # command start (less the confirmation) -> first write on the new leader
    steps: list[tuple[str, float]] = field(default_factory=list)
    members: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _view(topo: Topology, cluster: str, password: str) -> ClusterView:
    return api.first_answer(topo.name, topo.clusters[cluster].nodes, password=password)[1]


def plan_live(topo: Topology, *, mode: str, cluster: str | None, to: str | None,
              max_lag: int = failover.DEFAULT_MAX_LAG, force: bool = False) -> ManagedPlan:
    c = failover.choose_cluster(topo, cluster=cluster, to=to)
    view = _view(topo, c, api.rest_password(topo.name))
    ranked: failover.Plan | None = None
    refusal: str | None = None
    leader = view.leader
    primaries = {**state.current_primaries(topo), **({c: leader.name} if leader else {})}
    members = topo.clusters[c].nodes
    snap = snapshot.collect(topo, nodes=failover.scope(topo, c, primaries), timeout=SNAPSHOT_TIMEOUT_S, light=True,
                            subscriptions_only=[n for n in failover.subscriber_nodes(topo, c, primaries)
                                                if n not in members])
    try:
        ranked = failover.plan_failover(topo, snap, cluster=c, to=to if mode == "failover" else None,
                                        max_lag=max_lag, force=force, primaries=primaries)
    except InputError as exc:
        refusal = "; ".join(exc.lines())
    old = snap.nodes.get(leader.name) if leader else None
    return decide(mode=mode, cluster=c, view=view, to=to, ranked=ranked, refusal=refusal,
                  leader_reachable=old is None or old.reachable, recorded=state.current_primaries(topo)[c])


def _writable(topo: Topology, node: str) -> str | None:
    """None once ``node`` commits a transaction that writes, else why not."""
    try:
        with connect.connect(topo.name, node, autocommit=False) as conn:
            conn.execute("SELECT pg_current_xact_id()")
        return None
    except (psycopg.Error, PgtopoError) as exc:
        return first_line(exc)


def execute(topo: Topology, plan: ManagedPlan, *, started: float, progress: Progress) -> ManagedOutcome:
    """Ask Patroni, then wait until its view and PostgreSQL agree that the candidate leads."""
    out = ManagedOutcome(plan=plan)
    password = api.rest_password(topo.name)

    def step(name: str) -> None:
        out.steps.append((name, time.monotonic() - started))

    ep = api.endpoint(topo.name, plan.candidate, password=password)
    if plan.mode == "switchover":
        assert plan.leader is not None
        progress(plan.candidate, f"POST /switchover: {plan.leader} -> {plan.candidate} (Patroni decides)")
        out.answer = api.switchover(ep, leader=plan.leader, candidate=plan.candidate)
    else:
        progress(plan.candidate, f"POST /failover: candidate {plan.candidate} (Patroni decides)")
        out.answer = api.failover(ep, candidate=plan.candidate)
    step(f"Patroni answered: {out.answer}")
    seen = ""

    def leading() -> Member | None:
        nonlocal seen
        try:
            view = api.cluster(ep)
        except OperationFailed as exc:
            seen = exc.message
            return None
        seen = ", ".join(f"{m.name} {m.role} {m.state} TL {m.timeline}" for m in view.members)
        return took_over(view, candidate=plan.candidate, old_timeline=plan.leader_timeline)

    leader = wait_for(leading, timeout=LEADER_TIMEOUT_S, what=f"Patroni to show {plan.candidate} leading on a new "
                      "timeline", step="GET /cluster", node=plan.candidate, last_seen=lambda: seen)
    out.timeline = leader.timeline
    step(f"/cluster: {plan.candidate} leader, running, timeline {leader.timeline}")
    why_not = ""

    def write() -> bool:
        nonlocal why_not
        why_not = _writable(topo, plan.candidate) or ""
        return not why_not

    wait_for(write, timeout=WRITE_TIMEOUT_S, what="a write to be accepted", step="first write", node=plan.candidate,
             interval=0.05, last_seen=lambda: why_not)
    out.recovery_s = time.monotonic() - started
    step(f"first write accepted on {plan.candidate}")
    state.update(topo.name, lambda rt: rt.model_copy(update={"primaries": {**rt.primaries_of(topo),
                                                                           plan.cluster: plan.candidate}}))
    _follow(topo, plan, out, ep=ep, timeline=leader.timeline or 0, progress=progress)
    step("members followed" if not out.warnings else "stopped waiting for members")
    return out


def _follow(topo: Topology, plan: ManagedPlan, out: ManagedOutcome, *, ep: api.Endpoint, timeline: int,
            progress: Progress) -> None:
    progress(plan.candidate, f"waiting for the other members to stream on timeline {timeline}")
    last: list[ClusterView] = []

    def followed() -> bool:
        try:
            last[:] = [api.cluster(ep)]
        except OperationFailed:
            return False
        return not lagging(last[0], timeline=timeline)

    done = poll(followed, timeout=FOLLOW_TIMEOUT_S, interval=0.5)
    view = last[0] if last else None
    if view is None:
        out.warnings.append("Patroni's view of the other members could not be read")
        return
    for node in topo.clusters[plan.cluster].nodes:
        if view.member(node) is None:
            out.members.append(f"{node}: not registered in Patroni (its Patroni does not run or cannot reach the DCS)")
    for m in view.members:
        if not m.is_leader:
            out.members.append(f"{m.name}: {m.role}, {m.state}, timeline {m.timeline if m.timeline is not None else '-'}"
                               + (f", lag {fmt_bytes(m.lag)}" if m.lag is not None else ""))
    if not done:
        late = ", ".join(f"{m.name} ({m.state})" for m in lagging(view, timeline=timeline))
        out.warnings.append(f"not streaming on timeline {timeline} after {FOLLOW_TIMEOUT_S:.0f} s: {late}; Patroni "
                            f"keeps trying (`pgtopo rejoin {{file}} NODE` waits for one, --reinit clones it afresh)")


# -- rejoin ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ManagedRejoin:
    node: str
    leader: str
    method: str
    timeline: int | None
    seconds: float
    started_container: bool
    role: str = "replica"  # Patroni's: replica | sync_standby | quorum_standby


def rejoined(view: ClusterView, node: str, *, sync_count: int | None = None) -> Member | None:
    """``node`` once Patroni shows it streaming on its leader's timeline and, when it may be a
    synchronous standby (``sync_count``: how many the cluster keeps), once Patroni counts it as one
    or already has that many others. Until then a crash of the leader finds no synchronous
    candidate and Patroni promotes nobody: the leader adds a rejoined member on a later loop."""
    m, leader = view.member(node), view.leader
    if m is None or leader is None or m.is_leader or m.state != "streaming" or m.timeline != leader.timeline:
        return None
    if sync_count is not None and not counted_synchronous(view.members, node, count=sync_count):
        return None
    return m


def rejoin(topo: Topology, node: str, *, reinit: bool, progress: Progress) -> ManagedRejoin:
    """Wait until Patroni has brought ``node`` back as a replica (it rewinds a former leader itself);
    with ``reinit`` ask it to clone the member afresh. A stopped container is started first:
    Patroni runs inside it."""
    cluster = topo.cluster_of(node)
    started = time.monotonic()
    password = api.rest_password(topo.name)
    c = gateway.find(topo.name, node)
    if c is None:
        raise OperationFailed("no container: the node is not deployed (`pgtopo up`)", node=node, step="rejoin")
    restarted = False
    if gateway.status(c) != "running":
        progress(node, "starting its container: Patroni rejoins it (pg_rewind when needed)")
        gateway.start(c)
        restarted = True
    view = _view(topo, cluster, password)
    if view.leader is not None and view.leader.name == node and view.leader.healthy:
        raise InputError(f"{node} is the leader of cluster {cluster}: nothing to rejoin")
    sync_count = synchronous_count(topo, node)
    if not reinit and not restarted and rejoined(view, node, sync_count=sync_count) is not None:
        me = view.member(node)
        return ManagedRejoin(node=node, leader=view.leader.name if view.leader else "-", method="already streaming",
                             timeline=view.leader.timeline if view.leader else None, seconds=0.0,
                             started_container=False, role=me.role if me else "replica")
    ep = wait_for(lambda: _answering(topo.name, node, password), timeout=60, what="Patroni's REST API",
                  step="rejoin", node=node, container=c)
    before: str | None = None
    if reinit:
        before = api.member_status(ep).postmaster_start_time
        progress(node, "POST /reinitialize: Patroni clones it afresh from the leader")
        api.reinitialize(ep, force=True)
    seen = ""

    def back() -> Member | None:
        nonlocal seen
        try:
            v = _view(topo, cluster, password)
            # After a reinitialisation: only once PostgreSQL was started again (a new postmaster).
            again = not reinit or api.member_status(ep).postmaster_start_time not in (before, None)
        except OperationFailed as exc:
            seen = exc.message
            return None
        me = v.member(node)
        seen = f"{node}: {me.role} {me.state} TL {me.timeline}" if me else f"{node} not registered"
        return rejoined(v, node, sync_count=sync_count) if again else None

    progress(node, "waiting for Patroni to show it streaming from the leader"
             + (" and counted as a synchronous standby" if sync_count else ""))
    what = "Patroni to rejoin it as a streaming replica" + (" and a synchronous standby" if sync_count else "")
    m = wait_for(back, timeout=REJOIN_TIMEOUT_S, what=what, step="rejoin",
                 node=node, container=c, interval=0.5, last_seen=lambda: seen)
    final = _view(topo, cluster, password)
    return ManagedRejoin(node=node, leader=final.leader.name if final.leader else "-",
                         method="reinitialised by Patroni" if reinit else "rejoined by Patroni",
                         timeline=m.timeline, role=m.role, seconds=time.monotonic() - started, started_container=restarted)


def _answering(topology: str, node: str, password: str) -> api.Endpoint | None:
    try:
        ep = api.endpoint(topology, node, password=password)
        api.member_status(ep)
        return ep
    except OperationFailed:
        return None

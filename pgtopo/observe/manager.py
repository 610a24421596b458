"""The HA manager's view, for `status` and `verify`: Patroni's members and the etcd quorum.

For each ``ha: patroni`` cluster, ``GET /cluster`` from the first member that answers (leader,
member state, lag, timeline, pending restart, tags, a scheduled switchover) and, for the
topology, each etcd member's health and whether they have quorum (``pgtopo.patroni.etcd``).
``assess`` (pure) sets that beside what PostgreSQL itself says in the snapshot and lists where
they disagree: Patroni calls a member leader while its PostgreSQL is in recovery, a member
PostgreSQL lets write is not Patroni's leader, a node of the file Patroni does not know.
``checks`` are verify's checks of the manager's health: the DCS has quorum, exactly one leader,
every etcd member healthy, every member running or streaming, as many members as the file has nodes.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from pgtopo.errors import OperationFailed
from pgtopo.model.topology import Topology
from pgtopo.observe.health_checks import Check
from pgtopo.observe.snapshot import Snapshot
from pgtopo.patroni import api, etcd
from pgtopo.patroni.etcd import DcsView
from pgtopo.patroni.views import ClusterView


@dataclass(frozen=True)
class ManagedCluster:
    """What one cluster's Patroni said (``view``), or why nobody answered (``error``)."""

    cluster: str
    answered_by: str | None
    view: ClusterView | None
    error: str | None = None


@dataclass(frozen=True)
class MemberRow:
    cluster: str
    member: str
    role: str  # Patroni's: leader, replica, sync_standby ...; "-" when Patroni does not list it
    state: str
    timeline: int | None
    lag_bytes: int | None
    pending_restart: tuple[str, ...]  # the parameters waiting for a restart (("?",) when Patroni names none)
    tags: str
    postgres: str  # what PostgreSQL says: primary | replica | down
    agrees: bool
    note: str


@dataclass(frozen=True)
class Finding:
    severity: str  # error | warning | info
    subject: str
    message: str


@dataclass(frozen=True)
class ManagerReport:
    clusters: tuple[ManagedCluster, ...]
    members: tuple[MemberRow, ...]
    dcs: DcsView | None
    findings: tuple[Finding, ...]

    def leaders(self) -> dict[str, str]:
        """Cluster -> Patroni's leader, for the clusters that have exactly one."""
        out = {}
        for c in self.clusters:
            if c.view is not None and len(c.view.leaders) == 1:
                out[c.cluster] = c.view.leaders[0].name
        return out

    def to_json(self) -> dict[str, Any]:
        dcs = None
        if self.dcs is not None:
            dcs = {"quorum": self.dcs.has_quorum, "majority": self.dcs.majority, "leader": self.dcs.leader,
                   "members": [{"member": m.name, "region": m.region, "container": m.container, "healthy": m.healthy,
                                "leader": m.is_leader, "raft_term": m.status.raft_term if m.status else None,
                                "error": m.error or None} for m in self.dcs.members]}
        clusters = []
        for c in self.clusters:
            s = c.view.scheduled_switchover if c.view else None
            clusters.append({
                "cluster": c.cluster, "answered_by": c.answered_by, "error": c.error,
                "leader": c.view.leader.name if c.view and c.view.leader else None,
                "scheduled_switchover": None if s is None else {"at": s.at, "from": s.from_member, "to": s.to_member},
                "members": [{**r.__dict__, "pending_restart": list(r.pending_restart)}
                            for r in self.members if r.cluster == c.cluster],
            })
        return {"clusters": clusters, "dcs": dcs}


def assess(topo: Topology, snap: Snapshot, clusters: tuple[ManagedCluster, ...], dcs: DcsView | None) -> ManagerReport:
    rows: list[MemberRow] = []
    found: list[Finding] = []
    if dcs is not None:
        if not dcs.has_quorum:
            found.append(Finding("error", "dcs", f"etcd has NO QUORUM: {dcs.summary()}; Patroni cannot renew or take "
                                                 "the leader lock (its leaders demote themselves)"))
        for e in dcs.members:
            if not e.healthy:
                found.append(Finding("warning", e.name, f"etcd member {e.name} ({e.region}) unhealthy: {e.error}"))
    for mc in clusters:
        if mc.view is None:
            found.append(Finding("error", mc.cluster, f"cluster {mc.cluster}: no Patroni member answered: {mc.error}"))
            continue
        view = mc.view
        leaders = view.leaders
        if not leaders:
            found.append(Finding("error", mc.cluster, f"cluster {mc.cluster}: Patroni reports no leader"))
        elif len(leaders) > 1:
            found.append(Finding("error", mc.cluster, f"cluster {mc.cluster}: Patroni reports several leaders: "
                                                      f"{', '.join(m.name for m in leaders)}"))
        if view.scheduled_switchover is not None:
            s = view.scheduled_switchover
            found.append(Finding("info", mc.cluster, f"cluster {mc.cluster}: switchover {s.from_member or '?'} -> "
                                                     f"{s.to_member or '?'} scheduled at {s.at}"))
        for node in topo.clusters[mc.cluster].nodes:
            rows.append(_row(mc.cluster, node, view, snap, found))
        for m in view.members:
            if m.name not in topo.clusters[mc.cluster].nodes:
                found.append(Finding("warning", mc.cluster, f"Patroni lists {m.name}, which is no node of cluster "
                                                            f"{mc.cluster} in the file"))
    return ManagerReport(clusters=clusters, members=tuple(rows), dcs=dcs, findings=tuple(found))


def _row(cluster: str, node: str, view: ClusterView, snap: Snapshot, found: list[Finding]) -> MemberRow:
    ns = snap.nodes.get(node)
    pg = ns.role if ns is not None else "down"
    m = view.member(node)
    if m is None:
        found.append(Finding("warning", node, f"{node} is not registered in Patroni (cluster {cluster}): its Patroni "
                                              "does not run or cannot reach the DCS"))
        return MemberRow(cluster=cluster, member=node, role="-", state="not registered", timeline=None, lag_bytes=None,
                         pending_restart=(), tags="-", postgres=pg, agrees=pg == "down", note="not registered")
    note = ""
    if m.is_leader and pg == "replica":
        note = f"Patroni says {node} leads, but PostgreSQL on {node} is in recovery"
    elif not m.is_leader and pg == "primary":
        note = f"PostgreSQL on {node} accepts writes, but Patroni lists it as {m.role} ({m.state})"
    elif m.healthy and pg == "down":
        note = f"Patroni says {node} is {m.state}, but pgtopo cannot reach its PostgreSQL ({ns.error if ns else '-'})"
    if note:
        found.append(Finding("error", node, note))
    elif not m.healthy:
        found.append(Finding("warning", node, f"Patroni reports {node} {m.role}, {m.state}"))
    if m.pending_restart:
        why = ", ".join(m.pending_restart_reason) or "a parameter"
        found.append(Finding("info", node, f"{node} waits for a restart ({why}): `POST /restart` through Patroni"))
    return MemberRow(cluster=cluster, member=node, role=m.role, state=m.state, timeline=m.timeline, lag_bytes=m.lag,
                     pending_restart=m.pending_restart_reason or (("?",) if m.pending_restart else ()),
                     tags=m.tags_text(), postgres=pg, agrees=not note, note=note)


def checks(topo: Topology, report: ManagerReport) -> list[Check]:
    """verify's checks of the HA manager."""
    out: list[Check] = []
    if report.dcs is not None:
        out.append(Check("dcs-quorum", "dcs", report.dcs.has_quorum, report.dcs.summary()))
        for e in report.dcs.members:
            leads = ", the raft leader" if e.is_leader else ""
            out.append(Check("dcs-member", e.name, e.healthy,
                             f"healthy{leads}, term {e.status.raft_term}" if e.healthy and e.status else
                             f"etcd member in {e.region}: {e.error}"))
    for mc in report.clusters:
        if mc.view is None:
            out.append(Check("patroni-leader", mc.cluster, False, f"no Patroni member answered: {mc.error}"))
            continue
        leaders = mc.view.leaders
        running = [m for m in leaders if m.healthy]
        out.append(Check("patroni-leader", mc.cluster, len(leaders) == 1 and len(running) == 1,
                         f"leader {leaders[0].name} ({leaders[0].state}, timeline {leaders[0].timeline})"
                         if len(leaders) == 1 else f"{len(leaders)} leaders"
                         + (f": {', '.join(m.name for m in leaders)}" if leaders else "")))
        want = len(topo.clusters[mc.cluster].nodes)
        out.append(Check("patroni-members", mc.cluster, len(mc.view.members) == want,
                         f"{len(mc.view.members)} members registered, the file has {want} nodes"
                         + _missing(topo, mc)))
        for m in mc.view.members:
            out.append(Check("patroni-member", m.name, m.healthy, f"{m.role}, {m.state}, timeline {m.timeline}"))
        for r in report.members:
            if r.cluster == mc.cluster and not r.agrees:
                out.append(Check("patroni-agrees", r.member, False, r.note))
    return out


def _missing(topo: Topology, mc: ManagedCluster) -> str:
    assert mc.view is not None
    missing = [n for n in topo.clusters[mc.cluster].nodes if mc.view.member(n) is None]
    return f" (missing: {', '.join(missing)})" if missing else ""


# -- live -----------------------------------------------------------------------------------------

def _ask(topo: Topology, cluster: str, password: str) -> ManagedCluster:
    try:
        who, view = api.first_answer(topo.name, topo.clusters[cluster].nodes, password=password)
        return ManagedCluster(cluster=cluster, answered_by=who, view=view)
    except OperationFailed as exc:
        return ManagedCluster(cluster=cluster, answered_by=None, view=None, error=exc.message)


def collect(topo: Topology) -> tuple[tuple[ManagedCluster, ...], DcsView | None]:
    """Every Patroni cluster's view and the DCS's health, asked at once (empty for a topology
    without ``ha: patroni``)."""
    managed = [c for c, cl in topo.clusters.items() if cl.ha == "patroni"]
    if not managed:
        return (), None
    password = api.rest_password(topo.name)
    with ThreadPoolExecutor(max_workers=len(managed) + 1) as pool:
        dcs_future = pool.submit(etcd.dcs_view, topo)
        views = tuple(pool.map(lambda c: _ask(topo, c, password), managed))
        return views, dcs_future.result()


def primaries(base: Mapping[str, str], report: ManagerReport) -> dict[str, str]:
    """The primaries pgtopo expects: Patroni's leader for a Patroni cluster (it fails over by
    itself, without pgtopo recording it), else what pgtopo recorded."""
    return {**base, **report.leaders()}

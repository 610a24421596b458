"""The DCS: each etcd member's health as it sees itself, and whether the members have quorum.

Each member is asked about itself through ``docker exec`` in its own container
(``etcdctl --endpoints=http://127.0.0.1:2379 endpoint status|health -w json``), so the answer
needs no address of the lab's mesh and a member cut off by a partition answers too: ``endpoint
health`` is a linearizable read, which succeeds only when the member is part of a quorum.
Parsing and the quorum decision are pure (tested on recorded etcdctl output).
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pgtopo.errors import PgtopoError
from pgtopo.model import patroni as model
from pgtopo.model.topology import DcsMember, Topology
from pgtopo.runtime import gateway

if TYPE_CHECKING:
    from docker.models.containers import Container

DCS_KIND = "dcs"
COMMAND_TIMEOUT = "2s"  # etcdctl's own limit per call: a member that does not answer in 2 s is not healthy


@dataclass(frozen=True)
class EndpointStatus:
    """``endpoint status`` of one member about itself."""

    member_id: int
    leader_id: int | None  # None when the member knows no leader ("etcdserver: no leader")
    raft_term: int
    version: str
    errors: tuple[str, ...]

    @property
    def is_leader(self) -> bool:
        return self.leader_id is not None and self.leader_id == self.member_id


@dataclass(frozen=True)
class DcsMemberHealth:
    name: str
    region: str
    container: str  # running, exited, missing ...
    healthy: bool  # answered a linearizable read: part of a quorum
    status: EndpointStatus | None  # None when it did not answer
    error: str  # why it is not healthy ("" when it is)

    @property
    def is_leader(self) -> bool:
        return self.status is not None and self.status.is_leader


@dataclass(frozen=True)
class DcsView:
    members: tuple[DcsMemberHealth, ...]

    @property
    def majority(self) -> int:
        return len(self.members) // 2 + 1

    @property
    def healthy(self) -> list[DcsMemberHealth]:
        return [m for m in self.members if m.healthy]

    @property
    def has_quorum(self) -> bool:
        return bool(self.members) and len(self.healthy) >= self.majority

    @property
    def leader(self) -> str | None:
        return next((m.name for m in self.members if m.healthy and m.is_leader), None)

    def summary(self) -> str:
        verdict = "quorum" if self.has_quorum else "NO QUORUM"
        return f"{len(self.healthy)}/{len(self.members)} etcd members healthy (majority {self.majority}): {verdict}"


def _load(text: str) -> object:
    try:
        return json.loads(text)
    except ValueError:
        return None


def parse_status(text: str) -> EndpointStatus | None:
    """The first entry of ``etcdctl endpoint status -w json``; None when there is none or it is
    not of the expected shape (a member that did not answer prints ``[]`` and an error)."""
    data = _load(text)
    if not isinstance(data, list) or not data or not isinstance(data[0], dict):
        return None
    status = data[0].get("Status")
    if not isinstance(status, dict):
        return None
    header = status.get("header")
    member_id = header.get("member_id") if isinstance(header, dict) else None
    leader = status.get("leader")
    term = status.get("raftTerm")
    errors = status.get("errors", [])
    if not isinstance(member_id, int) or not isinstance(term, int) or not isinstance(errors, list):
        return None
    return EndpointStatus(member_id=member_id, leader_id=leader if isinstance(leader, int) and leader else None,
                          raft_term=term, version=str(status.get("version", "")),
                          errors=tuple(str(e) for e in errors))


def parse_health(text: str) -> tuple[bool, str]:
    """``etcdctl endpoint health -w json`` of one endpoint: (healthy, error)."""
    data = _load(text)
    if not isinstance(data, list) or not data or not isinstance(data[0], dict):
        return False, "no answer"
    entry = data[0]
    healthy = entry.get("health") is True
    return healthy, "" if healthy else str(entry.get("error") or "unhealthy")


def member_health(*, name: str, region: str, container: str, status_out: str | None,
                  health_out: str | None) -> DcsMemberHealth:
    """One member from what its etcdctl printed (None: not asked, its container does not run)."""
    if status_out is None or health_out is None:
        return DcsMemberHealth(name=name, region=region, container=container, healthy=False, status=None,
                               error=f"container {container}")
    status = parse_status(status_out)
    healthy, error = parse_health(health_out)
    if healthy and status is not None and status.errors:
        healthy, error = False, "; ".join(status.errors)
    if not healthy and status is not None and status.errors:
        error = "; ".join(status.errors)
    return DcsMemberHealth(name=name, region=region, container=container, healthy=healthy, status=status,
                           error=error)


def _etcdctl(c: Container, *args: str) -> str:
    res = gateway.exec_in(c, ["etcdctl", f"--endpoints=http://127.0.0.1:{model.ETCD_CLIENT_PORT}",
                              f"--command-timeout={COMMAND_TIMEOUT}", *args, "-w", "json"], user="root")
    return res.stdout


def dcs_view(topo: Topology) -> DcsView:
    """Every etcd member of the topology, asked about itself (all at once: a member cut off takes
    etcdctl's whole timeout to say so)."""
    found = {c.labels.get(gateway.LABEL_NODE, ""): c for c in gateway.containers(topo.name, kind=DCS_KIND)}
    members = topo.dcs_members()

    def one(m: DcsMember) -> DcsMemberHealth:
        c = found.get(m.name)
        status = gateway.status(c) if c is not None else "missing"
        if c is None or status != "running":
            return member_health(name=m.name, region=m.region, container=status, status_out=None, health_out=None)
        status_out: str | None
        health_out: str | None
        try:
            status_out, health_out = _etcdctl(c, "endpoint", "status"), _etcdctl(c, "endpoint", "health")
        except PgtopoError:  # stopped or paused since it was listed: a member that does not answer
            status_out = health_out = None
        return member_health(name=m.name, region=m.region, container=status,
                             status_out=status_out, health_out=health_out)

    if not members:
        return DcsView(members=())
    with ThreadPoolExecutor(max_workers=len(members)) as pool:
        return DcsView(members=tuple(pool.map(one, members)))

"""Patroni's view beside PostgreSQL's (pure): recorded /cluster answers of Patroni 4.0.7 and etcd
3.5.16 against snapshots; status's findings and verify's checks of the manager."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pgtopo.model.topology import Topology
from pgtopo.observe.manager import ManagedCluster, assess, checks, primaries
from pgtopo.observe.snapshot import Snapshot
from pgtopo.patroni.etcd import DcsView, member_health
from pgtopo.patroni.views import parse_cluster
from tests.support.snapshots import down, primary, replica, snapshot
from tests.support.topologies import topology_of

DATA = Path(__file__).parents[1] / "patroni" / "data"
TEXT = """
name: t-unit-patroni
regions: {r1: {}, r2: {}, r3: {}}
latency:
  - {between: [r1, r2], rtt_ms: 20}
  - {between: [r1, r3], rtt_ms: 20}
  - {between: [r2, r3], rtt_ms: 20}
clusters:
  main:
    ha: patroni
    nodes:
      pg1: {region: r1, role: primary}
      pg2: {region: r2, upstream: pg1}
"""


@pytest.fixture(scope="module")
def topo(tmp_path_factory: pytest.TempPathFactory) -> Topology:
    return topology_of(tmp_path_factory.mktemp("patroni"), TEXT)


def managed(name: str) -> tuple[ManagedCluster, ...]:
    view = parse_cluster(json.loads((DATA / name).read_text()))
    return (ManagedCluster(cluster="main", answered_by="pg1", view=view),)


def dcs(*, down_members: int) -> DcsView:
    ok = {"status_out": (DATA / "etcd_one_down_status_2379.json").read_text(),
          "health_out": (DATA / "etcd_one_down_health_2379.json").read_text()}
    gone: dict[str, str | None] = {"status_out": None, "health_out": None}
    return DcsView(members=tuple(
        member_health(name=f"etcd-r{i}", region=f"r{i}", container="exited" if i <= down_members else "running",
                      **(gone if i <= down_members else ok)) for i in (1, 2, 3)))


def healthy_snap(topo: Topology) -> Snapshot:
    return snapshot({"pg1": primary("pg1", "r1"), "pg2": replica("pg2", "r2", upstream="pg1")}, topology=topo.name)


def test_healthy_patroni_cluster(topo: Topology) -> None:
    r = assess(topo, healthy_snap(topo), managed("cluster_two.json"), dcs(down_members=0))
    assert r.findings == ()
    assert [(m.member, m.role, m.state, m.postgres, m.agrees) for m in r.members] == [
        ("pg1", "leader", "running", "primary", True), ("pg2", "replica", "streaming", "replica", True)]
    assert r.leaders() == {"main": "pg1"}
    assert {c.check: c.passed for c in checks(topo, r)} == {"dcs-quorum": True, "dcs-member": True,
                                                          "patroni-leader": True, "patroni-members": True,
                                                          "patroni-member": True}
    j = r.to_json()
    assert j["dcs"]["quorum"] is True and j["clusters"][0]["leader"] == "pg1"
    assert j["clusters"][0]["members"][1]["lag_bytes"] == 0


def test_patroni_says_leader_but_postgres_is_in_recovery(topo: Topology) -> None:
    # Patroni's DCS view still shows pg2 leading while pg2 demoted itself (recorded without quorum).
    snap = snapshot({"pg1": replica("pg1", "r1", upstream=None), "pg2": replica("pg2", "r2", upstream=None)},
                    topology=topo.name)
    view = parse_cluster(json.loads((DATA / "cluster_no_quorum_later.json").read_text()))
    r = assess(topo, snap, (ManagedCluster(cluster="main", answered_by="pg2", view=view),), dcs(down_members=2))
    messages = [(f.severity, f.message) for f in r.findings]
    assert ("error", "Patroni says pg2 leads, but PostgreSQL on pg2 is in recovery") in messages
    assert messages[0][0] == "error" and messages[0][1].startswith("etcd has NO QUORUM: 1/3 etcd members healthy")
    failed = {(c.check, c.subject) for c in checks(topo, r) if not c.passed}
    assert failed == {("dcs-quorum", "dcs"), ("dcs-member", "etcd-r1"), ("dcs-member", "etcd-r2"),
                      ("patroni-agrees", "pg2")}


def test_a_writable_member_patroni_calls_replica(topo: Topology) -> None:
    snap = snapshot({"pg1": primary("pg1", "r1"), "pg2": primary("pg2", "r2")}, topology=topo.name)
    r = assess(topo, snap, managed("cluster_two.json"), None)
    assert [f.message for f in r.findings] == [
        "PostgreSQL on pg2 accepts writes, but Patroni lists it as replica (streaming)"]


def test_a_crashed_member_not_registered_any_more(topo: Topology) -> None:
    snap = snapshot({"pg1": down("pg1", "r1"), "pg2": primary("pg2", "r2")}, topology=topo.name)
    r = assess(topo, snap, managed("cluster_after_crash.json"), dcs(down_members=1))
    assert [(f.severity, f.subject) for f in r.findings] == [("warning", "etcd-r1"), ("warning", "pg1")]
    assert r.members[0].state == "not registered" and r.members[0].agrees
    result = {(c.check, c.subject): c for c in checks(topo, r)}
    assert result[("dcs-quorum", "dcs")].passed
    assert result[("dcs-member", "etcd-r1")].reason == "etcd member in r1: container exited"
    assert result[("dcs-member", "etcd-r2")].passed and result[("dcs-member", "etcd-r2")].reason.startswith("healthy")
    assert not result[("patroni-members", "main")].passed
    assert result[("patroni-members", "main")].reason == "1 members registered, the file has 2 nodes (missing: pg1)"
    assert primaries({"main": "pg1"}, r) == {"main": "pg2"}


def test_no_leader_and_nobody_answering(topo: Topology) -> None:
    r = assess(topo, healthy_snap(topo), managed("cluster_starting.json"), None)
    assert ("error", "cluster main: Patroni reports no leader") in [(f.severity, f.message) for f in r.findings]
    assert not {c.check: c.passed for c in checks(topo, r)}["patroni-leader"]
    silent = (ManagedCluster(cluster="main", answered_by=None, view=None, error="no member's REST API answered"),)
    r = assess(topo, healthy_snap(topo), silent, None)
    assert [f.message for f in r.findings] == ["cluster main: no Patroni member answered: no member's REST API answered"]
    assert [(c.check, c.passed) for c in checks(topo, r)] == [("patroni-leader", False)]


def test_pending_restart_and_scheduled_switchover_are_shown(topo: Topology) -> None:
    r = assess(topo, healthy_snap(topo), managed("cluster_pending_restart.json"), None)
    assert r.members[0].pending_restart == ("max_connections",)
    assert ("info", "pg1 waits for a restart (max_connections): `POST /restart` through Patroni") in [
        (f.severity, f.message) for f in r.findings]
    r = assess(topo, healthy_snap(topo), managed("cluster_scheduled.json"), None)
    assert [f.message for f in r.findings] == ["cluster main: switchover pg1 -> pg2 scheduled at 2027-01-01T00:00:00+00:00"]
    assert r.to_json()["clusters"][0]["scheduled_switchover"] == {"at": "2027-01-01T00:00:00+00:00", "from": "pg1",
                                                                  "to": "pg2"}

"""`failover --resume` decided on hand-built snapshots: what is missing for the cluster to follow its primary."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from pgtopo.errors import InputError
from pgtopo.ha import resume as R
from pgtopo.model.topology import Topology
from pgtopo.observe.snapshot import NodeSnapshot, Slot, Snapshot
from tests.support.snapshots import SYNCED, down, primary, replica, snapshot, subscription
from tests.support.topologies import SAAS, topology_of

PRIMARIES = {"main": "pg-eu", "billing": "pg-billing"}
# pg-eu, once promoted, holds the failover slot as an ordinary one.
PROMOTED_SLOT = dataclasses.replace(SYNCED, synced=False, active=True)


@pytest.fixture
def saas(tmp_path: Path) -> Topology:
    return topology_of(tmp_path, SAAS)


def after_failover(topo: Topology, *, sub_to: str = "pg-eu", worker: bool = True, slots: tuple[Slot, ...] =
                   (PROMOTED_SLOT,), **nodes: NodeSnapshot) -> Snapshot:
    """pg-eu promoted (timeline 2), pg-us fenced and down, pg-eu2 and pg-us2 streaming from pg-eu, billing
    subscribed to ``sub_to``."""
    conninfo = f"host=pgtopo-relay port={topo.relay_port('ap-south', sub_to)} user=replicator"
    default = {
        "pg-us": down("pg-us", "us-east"),
        "pg-eu": primary("pg-eu", "eu-west", timeline=2, slots=slots),
        "pg-eu2": replica("pg-eu2", "eu-west", upstream="pg-eu", timeline=2),
        "pg-us2": replica("pg-us2", "us-east", upstream="pg-eu", timeline=2),
        "pg-billing": primary("pg-billing", "ap-south", cluster="billing",
                              subscriptions=(subscription(conninfo=conninfo, worker_running=worker),)),
    }
    default.update({k.replace("_", "-"): v for k, v in nodes.items()})
    return snapshot(default, topology="t-unit")


def plan(topo: Topology, snap: Snapshot) -> R.ResumePlan:
    return R.plan_resume(topo, snap, cluster="main", primary="pg-eu", primaries=PRIMARIES, fenced=frozenset({"pg-us"}))


def test_nothing_to_do_when_everyone_follows(saas: Topology) -> None:
    p = plan(saas, after_failover(saas))
    assert [(r.node, r.action) for r in p.replicas] == [("pg-us", "left"), ("pg-eu2", "ok"), ("pg-us2", "ok")]
    assert p.replicas[0].reason == "fenced: `pgtopo rejoin` brings it back"
    assert [(s.subscription, s.action, s.reason) for s in p.subscribers] == [
        ("inventory_sub", "ok", "uses slot inventory_sub on pg-eu (worker running)")]


def test_a_replica_that_does_not_stream_is_rejoined_unless_a_partition_keeps_it_away(saas: Topology) -> None:
    waiting = replica("pg-us2", "us-east", upstream=None, timeline=1,
                      settings={"primary_conninfo": f"host=pgtopo-relay port={saas.relay_port('us-east', 'pg-eu')}"})
    p = plan(saas, after_failover(saas, pg_us2=waiting))
    r = {x.node: x for x in p.replicas}["pg-us2"]
    assert (r.action, r.reason) == ("rejoin", "not streaming (waiting on timeline 1, primary on 2)")
    p = plan(saas, dataclasses.replace(after_failover(saas, pg_us2=waiting), partitioned=frozenset({"us-east"})))
    r = {x.node: x for x in p.replicas}["pg-us2"]
    assert (r.action, r.reason, r.cut_by) == ("wait", "cut off from pg-eu by the partition of region us-east: streams "
                                              "once that heals", ("us-east",))
    # Streaming, but on the old timeline: it has to be rejoined too.
    p = plan(saas, after_failover(saas, pg_eu2=replica("pg-eu2", "eu-west", upstream="pg-eu", timeline=1)))
    assert {x.node: x.action for x in p.replicas}["pg-eu2"] == "rejoin"


def test_subscriptions_that_do_not_follow_are_moved_or_resynchronised(saas: Topology) -> None:
    # Still pointing at the old primary: moved onto the failover slot.
    s = plan(saas, after_failover(saas, sub_to="pg-us")).subscribers[0]
    assert (s.action, s.reason, s.node, s.slot) == ("move", "points at pg-us; failover slot inventory_sub is on pg-eu",
                                                    "pg-billing", "inventory_sub")
    # Pointing at the primary but its worker is gone (it hung on the old one): moved again.
    s = plan(saas, after_failover(saas, worker=False)).subscribers[0]
    assert (s.action, s.reason) == ("move", "its worker is not running; failover slot inventory_sub is on pg-eu")
    # No usable slot on the primary: re-synchronised.
    s = plan(saas, after_failover(saas, sub_to="pg-us", slots=())).subscribers[0]
    assert (s.action, s.reason) == ("resync", "no usable failover slot inventory_sub on pg-eu")
    # Behind a partition: moved all the same, connects once it heals.
    snap = dataclasses.replace(after_failover(saas, sub_to="pg-us"), partitioned=frozenset({"ap-south"}))
    s = plan(saas, snap).subscribers[0]
    assert (s.action, s.cut_by) == ("move", ("ap-south",))
    assert s.waits == ("pg-billing is cut off from pg-eu by the partition of region ap-south: the subscription "
                       "connects once that heals")
    # Its node is down, or the subscription is not there.
    s = plan(saas, after_failover(saas, pg_billing=down("pg-billing", "ap-south", cluster="billing"))).subscribers[0]
    assert (s.action, s.reason) == ("unreachable", "pg-billing is down: resume again when it is back")
    s = plan(saas, after_failover(saas, pg_billing=primary("pg-billing", "ap-south", cluster="billing"))).subscribers[0]
    assert (s.action, s.reason) == ("missing", "no subscription inventory_sub on pg-billing: `pgtopo up` creates it")


def test_resume_needs_a_writable_primary(saas: Topology) -> None:
    with pytest.raises(InputError, match=r"the primary of cluster main, pg-eu, is not writable: nothing to resume "
                                         r"around \(`pgtopo failover` first\)"):
        plan(saas, after_failover(saas, pg_eu=replica("pg-eu", "eu-west", upstream=None)))
    with pytest.raises(InputError, match="pg-eu, is not running"):
        plan(saas, after_failover(saas, pg_eu=down("pg-eu", "eu-west")))

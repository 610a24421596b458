"""A drill starts only from a whole topology (pure: a snapshot and the state)."""

from __future__ import annotations

from pgtopo.drill import preflight, spec, targets
from pgtopo.model.loader import load
from pgtopo.runtime.state import FenceRecord, LinkOverride, RuntimeState
from tests.support.snapshots import change, down, downstream, primary, replica, snapshot, subscription
from tests.support.topologies import GLOBAL_SAAS, TOPOLOGIES

SAAS = load(GLOBAL_SAAS)
TARGET = targets.check(spec.parse({"drill": "t", "topology": "x", "duration": 20, "expect": {"split_brain": False}}),
                       SAAS)
WHOLE = {
    "pg-us": primary("pg-us", "us-east"),
    "pg-eu": replica("pg-eu", "eu-west", upstream="pg-us"),
    "pg-billing": primary("pg-billing", "ap-south", cluster="billing", subscriptions=(subscription(),)),
}


def found(nodes: dict = WHOLE, rt: RuntimeState | None = None) -> list[str]:  # type: ignore[type-arg]
    return preflight.problems(SAAS, snapshot(nodes, topology="global-saas"), rt or RuntimeState(), TARGET)


def test_a_whole_topology_has_no_problem() -> None:
    assert found() == []


def test_what_is_broken_is_listed_with_its_remedy() -> None:
    nodes = change(WHOLE, "pg-eu", receiver_status="waiting", upstream=None)
    nodes = change(nodes, "pg-billing", subscriptions=(subscription(worker_running=False),))
    rt = RuntimeState(partitioned=("us-east",), links={"eu-west|us-east": LinkOverride(rtt_ms=400)})
    assert found(nodes, rt) == [
        "pg-eu does not stream (waiting)",
        "subscription inventory_sub on pg-billing is not working",
        "partitioned: us-east: `pgtopo heal FILE`",
        "latency overridden on eu-west <-> us-east: `pgtopo latency reset FILE`",
    ]


def test_a_failed_over_topology_is_whole_when_the_state_knows_its_primary() -> None:
    moved = {**WHOLE, "pg-us": replica("pg-us", "us-east", upstream="pg-eu", timeline=2),
             "pg-eu": primary("pg-eu", "eu-west", timeline=2)}
    assert found(moved, RuntimeState(primaries={"main": "pg-eu"})) == []
    assert found(moved) == ["cluster main: writable pg-eu, the state's primary is pg-us"]


def test_a_dead_or_fenced_node() -> None:
    nodes = {**WHOLE, "pg-us": down("pg-us", "us-east")}
    rt = RuntimeState(fenced={"pg-us": FenceRecord(method="stopped", detail="x", at="t")})
    assert found(nodes, rt) == ["cluster main: writable nothing, the state's primary is pg-us",
                                "pg-us is down (container exited): `pgtopo rejoin FILE pg-us`"]
    assert found(WHOLE, rt) == ["pg-us is fenced: `pgtopo rejoin FILE pg-us`"]


def test_a_primary_that_moved_without_pgtopo_is_the_one_given() -> None:
    # A Patroni cluster's leader moves by itself: the drill passes the member that accepts writes.
    moved = {**WHOLE, "pg-us": replica("pg-us", "us-east", upstream="pg-eu", timeline=2),
             "pg-eu": primary("pg-eu", "eu-west", timeline=2)}
    snap = snapshot(moved, topology="global-saas")
    assert preflight.problems(SAAS, snap, RuntimeState(), TARGET, primaries={"main": "pg-eu", "billing": "pg-billing"}) == []


def test_a_patroni_leader_that_does_not_count_its_rejoined_member_yet() -> None:
    # After pg-us2 took over, the file's primary pg-us rejoined and streams, but Patroni adds it to
    # the synchronous standbys on a later loop: a crash now would find no synchronous candidate.
    topo = load(TOPOLOGIES / "global-saas-patroni.yaml")
    target = targets.check(spec.parse({"drill": "t", "topology": "x", "duration": 20,
                                       "expect": {"split_brain": False}}), topo)

    def nodes(us_sync: str) -> dict:  # type: ignore[type-arg]
        return {
            "pg-us2": primary("pg-us2", "us-east", timeline=2,
                              downstream=(downstream("pg-us", sync=us_sync), downstream("pg-eu"))),
            "pg-us": replica("pg-us", "us-east", upstream="pg-us2", timeline=2),
            "pg-eu": replica("pg-eu", "eu-west", upstream="pg-us2", timeline=2),
            "pg-billing": primary("pg-billing", "ap-south", cluster="billing", subscriptions=(subscription(),)),
        }

    where = {"main": "pg-us2", "billing": "pg-billing"}
    snap = snapshot(nodes("async"), topology=topo.name)
    assert preflight.problems(topo, snap, RuntimeState(), target, primaries=where) == [
        "cluster main: Patroni counts 0 synchronous standby(s) of pg-us2, 1 could be (pg-us): it adds a rejoined "
        "member on a later loop; wait a loop (loop_wait) and run the drill again"]
    snap = snapshot(nodes("quorum"), topology=topo.name)
    assert preflight.problems(topo, snap, RuntimeState(), target, primaries=where) == []

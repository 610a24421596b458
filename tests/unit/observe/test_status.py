"""`status.assess` on hand-built snapshots: rows, marks and the exact problems. No Docker."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pgtopo.observe import status
from pgtopo.observe.snapshot import NodeSnapshot, Slot
from pgtopo.observe.status import Problem
from tests.support.global_saas import (
    CONNINFO_US,
    EU_TO_US,
    FILE_PRIMARIES,
    FOUR,
    GLOBAL,
    healthy,
    snap,
    standby,
    writable,
)
from tests.support.snapshots import change, down, downstream, subscription


def assess(nodes: dict[str, NodeSnapshot], *, primaries: dict[str, str] | None = None,
           **kw: Any) -> status.Assessment:
    return status.assess(GLOBAL, snap(nodes), primaries=primaries or FILE_PRIMARIES, **kw)


def row(a: status.Assessment, node: str) -> status.NodeRow:
    return next(n for n in a.nodes if n.node == node)


# -- healthy --------------------------------------------------------------------------------------

def test_healthy_rows_and_no_problems() -> None:
    a = assess(healthy())
    assert a.problems == ()
    assert a.ok and a.split_brain == ()
    us, eu, billing = (row(a, n) for n in ("pg-us", "pg-eu", "pg-billing"))
    assert (us.role, us.mark, us.state, us.current_lsn, us.upstream) == ("primary", "", "running", "0/3000000", None)
    assert (eu.role, eu.mark, eu.state, eu.upstream, eu.expected_upstream) == (
        "replica", "", "streaming", "pg-us", "pg-us")
    assert (eu.lag_bytes, eu.lag_seconds, eu.sync_state, eu.sync_priority) == (0, 0.0, "async", 0)
    assert (eu.received_lsn, eu.replayed_lsn, eu.timeline) == ("0/3000000", "0/3000000", 1)
    assert billing.role == "primary"
    [sub] = a.subscriptions
    assert (sub.node, sub.publisher, sub.worker, sub.tables_ready, sub.tables_total, sub.lag_bytes) == (
        "pg-billing", "pg-us", "running", 2, 2, 0)
    assert [(s.node, s.slot, s.active, s.synced) for s in a.slots] == [
        ("pg-us", "inventory_sub", True, False), ("pg-us", "pg_eu", True, False), ("pg-eu", "inventory_sub", False, True)]


def test_lag_comes_from_the_upstream_row_of_the_node() -> None:
    nodes = change(healthy(), "pg-us", downstream=(downstream("pg-eu", lag=4096, replay_lag=0.25, sync="sync",
                                                              prio=1),))
    eu = row(assess(nodes), "pg-eu")
    assert (eu.lag_bytes, eu.lag_seconds, eu.sync_state, eu.sync_priority) == (4096, 0.25, "sync", 1)


# -- what differs from the file -------------------------------------------------------------------

def test_down_node_is_marked_unreachable() -> None:
    a = assess(change(healthy(), "pg-eu", reachable=False, container="exited", error="container exited"))
    eu = row(a, "pg-eu")
    assert (eu.role, eu.mark, eu.state) == ("down", "?", "container exited")
    errors = [p for p in a.problems if p.severity == "error"]
    assert errors[0] == Problem("error", "pg-eu", "pg-eu is down: container exited")
    assert not a.ok


def test_standby_down_holds_back_failover_slots() -> None:
    nodes = healthy()
    nodes["pg-eu"] = down("pg-eu", "eu-west")
    nodes = change(nodes, "pg-us", slots=(
        Slot("inventory_sub", "logical", True, 56, "reserved", "production", True, False),
        Slot("pg_eu", "physical", False, 0, "reserved", None, False, False)))
    a = assess(nodes)
    assert [p for p in a.problems if p.subject == "pg-us"] == [Problem(
        "error", "pg-us", "pg-us: logical replication held back: synchronized_standby_slots waits for pg_eu "
                          "(missing or inactive), so failover slot(s) inventory_sub get no changes")]
    assert row(a, "pg-us").mark == "!"


def test_replica_not_streaming_names_where_primary_conninfo_points() -> None:
    wrong = CONNINFO_US.replace(f"port={EU_TO_US}", f"port={GLOBAL.relay_port('eu-west', 'pg-billing')}")
    a = assess(change(healthy(), "pg-eu", receiver_status=None, upstream=None, upstream_raw=None,
                      settings={"cluster_name": "pg-eu", "primary_conninfo": wrong, "primary_slot_name": "pg_eu"}))
    eu = row(a, "pg-eu")
    assert (eu.mark, eu.state) == ("!", "not streaming")
    assert eu.reasons == ("not streaming (WAL receiver not running); primary_conninfo points at pg-billing, "
                          "expected pg-us",)
    assert Problem("error", "pg-eu", "pg-eu: " + eu.reasons[0]) in a.problems


def test_replica_streaming_from_unexpected_upstream() -> None:
    topo = FOUR
    nodes = {
        "pg-use": writable("pg-use", "us-east", downstream=(downstream("pg-use2"), downstream("pg-usw"),
                                                            downstream("pg-euw"), downstream("pg-euc"))),
        "pg-use2": standby("pg-use2", "us-east", upstream="pg-use"),
        "pg-usw": standby("pg-usw", "us-west", upstream="pg-use"),
        "pg-euw": standby("pg-euw", "eu-west", upstream="pg-use"),
        "pg-euc": standby("pg-euc", "eu-central", upstream="pg-use"),
    }
    a = status.assess(topo, snap(nodes, topo), primaries={"main": "pg-use"})
    assert [p for p in a.problems if p.severity == "error"] == [
        Problem("error", "pg-euc", "pg-euc: streams from pg-use, expected pg-euw")]
    assert row(a, "pg-euc").mark == "!"


def test_split_brain_is_an_error_and_names_both_nodes() -> None:
    nodes = change(healthy(), "pg-eu", in_recovery=False, receiver_status=None, upstream=None, current_lsn="0/3000200")
    a = assess(nodes)
    assert a.split_brain == ("main",)
    assert a.problems[0] == Problem(
        "error", "main", "SPLIT BRAIN in cluster main: 2 writable nodes (pg-us, pg-eu); pgtopo expects only pg-us")
    eu = row(a, "pg-eu")
    assert (eu.role, eu.mark, eu.reasons) == ("standalone", "!", ("writable while pg-us is the primary (split brain)",))
    assert row(a, "pg-us").role == "primary"
    assert not a.ok


def test_role_changed_by_a_recorded_failover_is_marked_but_not_an_error() -> None:
    nodes = healthy()
    nodes["pg-eu"] = writable("pg-eu", "eu-west", downstream=(downstream("pg-us"),),
                              settings={"cluster_name": "pg-eu", "primary_conninfo": CONNINFO_US})
    nodes["pg-us"] = standby("pg-us", "us-east", upstream="pg-eu")
    a = assess(nodes, primaries={"main": "pg-eu", "billing": "pg-billing"})
    assert a.ok
    assert (row(a, "pg-eu").mark, row(a, "pg-eu").reasons) == ("!", ("replica in the file, primary since a failover",))
    assert (row(a, "pg-us").expected_upstream, row(a, "pg-us").reasons) == (
        "pg-eu", ("primary in the file, replica since a failover",))
    # The subscription still points at the old primary: status says where it should point.
    assert a.subscriptions[0].publisher == "pg-eu"


def test_promotion_outside_pgtopo() -> None:
    nodes = healthy()
    nodes["pg-us"] = down("pg-us", "us-east")
    nodes["pg-eu"] = writable("pg-eu", "eu-west")
    a = assess(nodes)
    assert Problem("error", "pg-eu", "pg-eu: writable, but pgtopo expects pg-us as the primary (promoted outside "
                                     "pgtopo?)") in a.problems
    assert a.split_brain == ()


def test_other_system_identifier() -> None:
    a = assess(change(healthy(), "pg-eu", system_identifier="9999"))
    assert Problem("error", "pg-eu", "pg-eu: system identifier 9999 differs from pg-us's 7001: not a copy of the "
                                     "primary") in a.problems


def test_timeline_behind_is_a_warning() -> None:
    a = assess(change(healthy(), "pg-us", timeline=2))
    assert [p for p in a.problems if p.subject == "pg-eu"] == [
        Problem("warning", "pg-eu", "pg-eu: timeline 1, the primary pg-us is on 2")]
    assert a.ok


# -- slots and subscriptions -------------------------------------------------------------------------

def test_inactive_slot_retaining_wal() -> None:
    nodes = healthy()
    stale = Slot("stale", "physical", False, 80 * 1024 * 1024, "extended", None, False, False)
    nodes = change(nodes, "pg-us", slots=(*nodes["pg-us"].slots, stale))
    a = assess(nodes)
    assert [p for p in a.problems if p.subject == "pg-us/stale"] == [
        Problem("warning", "pg-us/stale", "inactive slot stale on pg-us retains 83886080 bytes of WAL")]
    assert not [p for p in assess(nodes, max_retained=100 * 1024 * 1024).problems if p.subject == "pg-us/stale"]


def test_lost_slot_is_an_error_and_synced_standby_slot_is_not_flagged() -> None:
    nodes = healthy()
    lost = Slot("gone", "logical", False, None, "lost", "production", False, False)
    nodes = change(nodes, "pg-us", slots=(*nodes["pg-us"].slots, lost))
    nodes = change(nodes, "pg-eu", slots=(Slot("inventory_sub", "logical", False, 1 << 30, "reserved", "production",
                                                True, True),))
    a = assess(nodes)
    assert [p for p in a.problems if "/" in p.subject] == [
        Problem("error", "pg-us/gone", "slot gone on pg-us lost WAL it needed")]


def test_missing_subscription() -> None:
    a = assess(change(healthy(), "pg-billing", subscriptions=()))
    assert a.subscriptions == ()
    assert a.problems == (Problem("error", "inventory_sub",
                                  "subscription inventory_sub is missing on pg-billing (database production)"),)


def test_broken_subscriptions() -> None:
    sub = subscription(enabled=False, worker_running=False, tables_ready=1, apply_errors=3,
                       last_error='duplicate key value violates unique constraint "products_pkey"')
    a = assess(change(healthy(), "pg-billing", subscriptions=(sub,)))
    tail = ': duplicate key value violates unique constraint "products_pkey"'
    assert a.problems == (
        Problem("error", "inventory_sub", f"subscription inventory_sub on pg-billing is disabled{tail}"),
        Problem("warning", "inventory_sub", "subscription inventory_sub on pg-billing: 1/2 tables ready"),
        Problem("warning", "inventory_sub", "subscription inventory_sub on pg-billing: 3 apply and 0 sync errors "
                                            f"since its statistics were reset{tail}"),
    )
    assert a.subscriptions[0].worker == "disabled"
    stopped = assess(change(healthy(), "pg-billing", subscriptions=(subscription(worker_running=False),)))
    assert stopped.problems == (
        Problem("error", "inventory_sub", "subscription inventory_sub on pg-billing: apply worker not running"),)


def test_subscriptions_seen_on_a_standby_are_ignored() -> None:
    # pg_subscription is a shared catalog: a physical standby shows its primary's subscriptions.
    nodes = change(healthy(), "pg-eu", subscriptions=(subscription(name="copy", worker_running=False),))
    a = assess(nodes)
    assert a.problems == () and [s.node for s in a.subscriptions] == ["pg-billing"]


# -- latency -----------------------------------------------------------------------------------------

def test_latency_rows_tolerance_and_overrides() -> None:
    latency = {("us-east", "eu-west"): 95.0, ("us-east", "ap-south"): 260.0, ("eu-west", "ap-south"): None}
    a = assess(healthy(), latency=latency)
    assert [(r.a, r.b, r.declared_ms, r.expected_ms, r.measured_ms, r.ok) for r in a.links] == [
        ("us-east", "eu-west", 80.0, 80.0, 95.0, True),  # within 20 %
        ("us-east", "ap-south", 200.0, 200.0, 260.0, False),
        ("eu-west", "ap-south", 120.0, 120.0, None, False),
    ]
    assert a.problems == (
        Problem("warning", "us-east<->ap-south", "measured RTT 260 ms us-east <-> ap-south, expected 200 ms"),
        Problem("warning", "eu-west<->ap-south", "could not measure the latency eu-west <-> ap-south (relay down, "
                                                 "partition, or no node reachable)"),
    )
    assert a.ok  # latency is a warning, data still flows
    over = assess(healthy(), latency=latency, rtt_overrides={"ap-south|us-east": 250.0})
    assert over.links[1].ok and over.links[1].expected_ms == 250.0


@pytest.mark.parametrize(("expected", "measured", "ok"), [
    (80, 90, True), (80, 96, True), (80, 97, False), (20, 29, True), (20, 31, False), (0, 10, True)])
def test_latency_ok_is_20_percent_or_10_ms(expected: float, measured: float, ok: bool) -> None:
    assert status.latency_ok(expected, measured) is ok


def test_json_schema_is_stable() -> None:
    data = assess(healthy(), latency={("us-east", "eu-west"): 81.0}).to_json()
    json.dumps(data)
    assert list(data) == ["schema_version", "topology", "taken_at", "ok", "split_brain", "primaries", "nodes", "slots",
                          "subscriptions", "latency", "problems"]
    assert data["taken_at"] == "2023-11-14T22:13:20+00:00"
    assert list(data["nodes"][1]) == [
        "node", "cluster", "region", "role", "file_role", "expected_role", "mark", "state", "timeline",
        "system_identifier", "current_lsn", "received_lsn", "replayed_lsn", "upstream", "expected_upstream",
        "lag_bytes", "lag_seconds", "sync_state", "sync_priority", "reasons"]
    assert list(data["slots"][0]) == ["node", "slot", "type", "database", "active", "retained_bytes", "wal_status",
                                      "failover", "synced"]
    assert list(data["subscriptions"][0]) == [
        "node", "subscription", "database", "publications", "publisher", "enabled", "worker", "tables_ready",
        "tables_total", "lag_bytes", "lag_seconds", "apply_errors", "sync_errors", "last_error"]
    assert data["latency"][0] == {"regions": ["us-east", "eu-west"], "declared_rtt_seconds": 0.08,
                                  "expected_rtt_seconds": 0.08, "measured_rtt_seconds": 0.081, "ok": True}

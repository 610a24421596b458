"""`status.assess` on hand-built snapshots: rows, marks and the exact problems. No Docker."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from pgtopo.model.loader import load
from pgtopo.model.topology import Topology
from pgtopo.network import probe
from pgtopo.network.relay import RELAY_SCRIPT_PATH
from pgtopo.observe import expectations, status
from pgtopo.observe.snapshot import Downstream, NodeSnapshot, Slot, Snapshot, SubscriptionState
from pgtopo.observe.status import Problem
from pgtopo.runtime import gateway, state
from pgtopo.runtime.gateway import ExecResult

REPO = Path(__file__).resolve().parents[2]
GLOBAL_PATH = REPO / "topologies" / "global-saas.yaml"
GLOBAL = load(GLOBAL_PATH)
FOUR = load(REPO / "topologies" / "four-regions.yaml")
FILE_PRIMARIES = {"main": "pg-us", "billing": "pg-billing"}
EU_TO_US = GLOBAL.relay_port("eu-west", "pg-us")
AP_TO_US = GLOBAL.relay_port("ap-south", "pg-us")
CONNINFO_US = (f"host=pgtopo-relay port={EU_TO_US} user=replicator dbname=postgres application_name=pg-eu "
               "passfile=/etc/pgtopo/pgpass connect_timeout=5")


def downstream(name: str, *, lag: int = 0, replay_lag: float | None = None, sync: str = "async",
               prio: int = 0) -> Downstream:
    return Downstream(application_name=name, state="streaming", sent_lsn="0/3000100", write_lsn="0/3000100",
                      flush_lsn="0/3000100", replay_lsn="0/3000100", lag_bytes=lag, write_lag_s=None,
                      flush_lag_s=None, replay_lag_s=replay_lag, sync_state=sync, sync_priority=prio)


def subscription(**kw: Any) -> SubscriptionState:
    base: dict[str, Any] = dict(
        name="inventory_sub", database="production", enabled=True, publications=("inventory_pub", "pgtopo_probe"),
        conninfo=f"host=pgtopo-relay port={AP_TO_US}", slot_name="inventory_sub", failover=True, worker_running=True,
        tables_ready=2, tables_total=2, received_lsn="0/3000100", latest_end_time_lag_s=1.0, apply_errors=0,
        sync_errors=0, last_error=None)
    base.update(kw)
    return SubscriptionState(**base)


def primary(node: str, cluster: str, region: str, **kw: Any) -> NodeSnapshot:
    base: dict[str, Any] = dict(node=node, cluster=cluster, region=region, container="running", reachable=True,
                                in_recovery=False, system_identifier="7001", timeline=1, current_lsn="0/3000100",
                                settings={"cluster_name": node, "primary_conninfo": "", "primary_slot_name": ""})
    base.update(kw)
    return NodeSnapshot(**base)


def replica(node: str, cluster: str, region: str, *, upstream: str | None, **kw: Any) -> NodeSnapshot:
    base: dict[str, Any] = dict(node=node, cluster=cluster, region=region, container="running", reachable=True,
                                in_recovery=True, system_identifier="7001", timeline=1, receive_lsn="0/3000100",
                                replay_lsn="0/3000100", receiver_status="streaming" if upstream else None,
                                upstream=upstream, upstream_raw=f"pgtopo-relay:{EU_TO_US}" if upstream else None,
                                receiver_slot=node.replace("-", "_"),
                                settings={"cluster_name": node, "primary_conninfo": CONNINFO_US,
                                          "primary_slot_name": node.replace("-", "_")})
    base.update(kw)
    return NodeSnapshot(**base)


def down(node: str, cluster: str, region: str, why: str = "container exited") -> NodeSnapshot:
    return NodeSnapshot(node=node, cluster=cluster, region=region, container="exited", reachable=False, error=why)


def healthy() -> dict[str, NodeSnapshot]:
    """global-saas as `up` leaves it."""
    return {
        "pg-us": primary(
            "pg-us", "main", "us-east", downstream=(downstream("inventory_sub"), downstream("pg-eu")),
            slots=(Slot("inventory_sub", "logical", True, 56, "reserved", "production", True, False),
                   Slot("pg_eu", "physical", True, 0, "reserved", None, False, False)),
            settings={"cluster_name": "pg-us", "primary_conninfo": "", "primary_slot_name": "",
                      "synchronized_standby_slots": "pg_eu"}),
        "pg-eu": replica("pg-eu", "main", "eu-west", upstream="pg-us",
                         slots=(Slot("inventory_sub", "logical", False, 56, "reserved", "production", True, True),)),
        "pg-billing": primary("pg-billing", "billing", "ap-south", system_identifier="7002", current_lsn="0/1B00000",
                              subscriptions=(subscription(),)),
    }


def snap(nodes: dict[str, NodeSnapshot], topo: Topology = GLOBAL) -> Snapshot:
    return Snapshot(topology=topo.name, taken_at=1_700_000_000.0, nodes=nodes)


def change(nodes: dict[str, NodeSnapshot], name: str, **kw: Any) -> dict[str, NodeSnapshot]:
    return {**nodes, name: dataclasses.replace(nodes[name], **kw)}


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
    assert (us.role, us.mark, us.state, us.current_lsn, us.upstream) == ("primary", "", "running", "0/3000100", None)
    assert (eu.role, eu.mark, eu.state, eu.upstream, eu.expected_upstream) == (
        "replica", "", "streaming", "pg-us", "pg-us")
    assert (eu.lag_bytes, eu.lag_seconds, eu.sync_state, eu.sync_priority) == (0, 0.0, "async", 0)
    assert (eu.received_lsn, eu.replayed_lsn, eu.timeline) == ("0/3000100", "0/3000100", 1)
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
    nodes["pg-eu"] = down("pg-eu", "main", "eu-west")
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
        "pg-use": primary("pg-use", "main", "us-east", downstream=(downstream("pg-use2"), downstream("pg-usw"),
                                                                    downstream("pg-euw"), downstream("pg-euc"))),
        "pg-use2": replica("pg-use2", "main", "us-east", upstream="pg-use"),
        "pg-usw": replica("pg-usw", "main", "us-west", upstream="pg-use"),
        "pg-euw": replica("pg-euw", "main", "eu-west", upstream="pg-use"),
        "pg-euc": replica("pg-euc", "main", "eu-central", upstream="pg-use"),
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
    nodes["pg-eu"] = primary("pg-eu", "main", "eu-west", downstream=(downstream("pg-us"),),
                             settings={"cluster_name": "pg-eu", "primary_conninfo": CONNINFO_US})
    nodes["pg-us"] = replica("pg-us", "main", "us-east", upstream="pg-eu")
    a = assess(nodes, primaries={"main": "pg-eu", "billing": "pg-billing"})
    assert a.ok
    assert (row(a, "pg-eu").mark, row(a, "pg-eu").reasons) == ("!", ("replica in the file, primary since a failover",))
    assert (row(a, "pg-us").expected_upstream, row(a, "pg-us").reasons) == (
        "pg-eu", ("primary in the file, replica since a failover",))
    # The subscription still points at the old primary: status says where it should point.
    assert a.subscriptions[0].publisher == "pg-eu"


def test_promotion_outside_pgtopo() -> None:
    nodes = healthy()
    nodes["pg-us"] = down("pg-us", "main", "us-east")
    nodes["pg-eu"] = primary("pg-eu", "main", "eu-west")
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


# -- expectations --------------------------------------------------------------------------------------

def test_expected_upstream_follows_failovers() -> None:
    file = {"main": "pg-use"}
    assert [expectations.expected_upstream(FOUR, n, file) for n in ("pg-use", "pg-use2", "pg-euw", "pg-euc")] == [
        None, "pg-use", "pg-use", "pg-euw"]
    moved = {"main": "pg-euw"}
    assert [expectations.expected_upstream(FOUR, n, moved) for n in ("pg-use", "pg-use2", "pg-euw", "pg-euc")] == [
        "pg-euw", "pg-euw", None, "pg-euw"]
    assert expectations.failed_over(FOUR, moved) == {"main"}


def test_configured_upstream() -> None:
    ns = replica("pg-eu", "main", "eu-west", upstream="pg-us")
    assert expectations.configured_upstream(GLOBAL, ns) == "pg-us"
    assert expectations.configured_upstream(GLOBAL, dataclasses.replace(ns, settings={"primary_conninfo": "host="})) is None
    assert expectations.configured_upstream(GLOBAL, dataclasses.replace(ns, settings={})) is None


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


# -- measure_latency with a small fake relay -------------------------------------------------------------

class FakeContainer:
    def __init__(self) -> None:
        self.labels: dict[str, str] = {}


def test_measure_latency_falls_back_to_the_other_direction(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PGTOPO_STATE_DIR", str(tmp_path))
    topo = GLOBAL
    answers = {  # port -> median; pg-eu (eu-west) is down: probes towards it fail
        topo.relay_port("us-east", "pg-eu"): None, topo.relay_port("eu-west", "pg-us"): 82.0,
        topo.relay_port("us-east", "pg-billing"): 201.0, topo.relay_port("eu-west", "pg-billing"): 121.0,
    }
    calls: list[int] = []

    def exec_in(_c: object, cmd: list[str], *, user: str = "postgres",
                environment: dict[str, str] | None = None) -> ExecResult:
        assert cmd[:3] == ["python3", RELAY_SCRIPT_PATH, "probe"] and user == "root"
        assert cmd[cmd.index("--host") + 1] == "127.0.0.1" and cmd[cmd.index("--count") + 1] == "3"
        port = int(cmd[cmd.index("--port") + 1])
        calls.append(port)
        ms = answers.get(port)
        if ms is None:
            return ExecResult(1, "", "probe: closed before answering")
        return ExecResult(0, json.dumps({"samples_ms": [ms - 1, ms, ms + 5], "median_ms": ms, "min_ms": ms - 1}), "")

    monkeypatch.setattr(gateway, "containers", lambda _t, kind=None: [FakeContainer()] if kind == "relay" else [])
    monkeypatch.setattr(gateway, "status", lambda _c: "running")
    monkeypatch.setattr(gateway, "exec_in", exec_in)
    assert probe.measure_latency(topo) == {
        ("us-east", "eu-west"): 82.0, ("us-east", "ap-south"): 201.0, ("eu-west", "ap-south"): 121.0}
    assert sorted(calls) == sorted([*answers])

    # A partitioned region is not probed at all (the relay would blackhole the probe).
    state.update(topo.name, lambda rt: rt.model_copy(update={"partitioned": ("ap-south",)}))
    calls.clear()
    assert probe.measure_latency(topo) == {
        ("us-east", "eu-west"): 82.0, ("us-east", "ap-south"): None, ("eu-west", "ap-south"): None}
    assert sorted(calls) == sorted([topo.relay_port("us-east", "pg-eu"), topo.relay_port("eu-west", "pg-us")])

    monkeypatch.setattr(gateway, "containers", lambda _t, kind=None: [])
    assert probe.measure_latency(topo) == dict.fromkeys(topo.region_pairs())


def test_probe_timeout_grows_with_the_round_trip(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PGTOPO_STATE_DIR", str(tmp_path))
    state.update(GLOBAL.name, lambda rt: rt.model_copy(
        update={"links": {"eu-west|us-east": state.LinkOverride(rtt_ms=3000, jitter_ms=0)}}))
    timeouts: dict[int, str] = {}

    def exec_in(_c: object, cmd: list[str], *, user: str = "postgres",
                environment: dict[str, str] | None = None) -> ExecResult:
        timeouts[int(cmd[cmd.index("--port") + 1])] = cmd[cmd.index("--timeout") + 1]
        return ExecResult(1, "", "probe: timed out")

    monkeypatch.setattr(gateway, "containers", lambda _t, kind=None: [FakeContainer()] if kind == "relay" else [])
    monkeypatch.setattr(gateway, "status", lambda _c: "running")
    monkeypatch.setattr(gateway, "exec_in", exec_in)
    probe.measure_latency(GLOBAL)
    assert timeouts[GLOBAL.relay_port("us-east", "pg-eu")] == "8"  # 2 s + twice the 3 s set at run time
    assert timeouts[GLOBAL.relay_port("us-east", "pg-billing")] == "2.4"  # 2 s + twice the declared 200 ms


# -- command-line input errors (exit 2 before anything is contacted) ------------------------------------

@pytest.mark.parametrize(("args", "message"), [
    (["status", str(GLOBAL_PATH), "3"], "error: SECONDS is the refresh interval of --watch: give --watch too"),
    (["status", str(GLOBAL_PATH), "--watch", "0"], "error: the refresh interval must be positive (got 0)"),
    (["verify", str(GLOBAL_PATH), "--max-retained", "lots"],
     "error: --max-retained: 'lots' is not a size (examples: 64MiB, 1GB, 1048576)"),
    (["verify", str(GLOBAL_PATH), "--timeout", "0"], "error: --timeout must be a positive number of seconds (got 0)"),
])
def test_bad_arguments_exit_2(args: list[str], message: str) -> None:
    from typer.testing import CliRunner

    from pgtopo.cli.main import app

    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2, res.output
    assert res.output.strip() == message

"""The pure parts of `verify`: checks on hand-built snapshots, configuration, probe plans, edges."""

from __future__ import annotations

import dataclasses

import pytest

from pgtopo.cli.observe import _parse_size
from pgtopo.errors import InputError
from pgtopo.model import render
from pgtopo.observe import config_drift, health_checks, verify
from pgtopo.observe.expectations import DEFAULT_MAX_RETAINED
from pgtopo.observe.health_checks import Check
from pgtopo.observe.snapshot import NodeSnapshot, Slot
from pgtopo.observe.verify import Edge, ProbePlan, Target

from .test_status import (
    FILE_PRIMARIES,
    FOUR,
    GLOBAL,
    GLOBAL_PATH,
    change,
    down,
    healthy,
    snap,
    subscription,
)


def checks(nodes: dict[str, NodeSnapshot], *, max_retained: int = DEFAULT_MAX_RETAINED) -> list[Check]:
    return health_checks.snapshot_checks(GLOBAL, snap(nodes), primaries=FILE_PRIMARIES, max_retained=max_retained)


def failed(found: list[Check]) -> list[tuple[str, str, str]]:
    return [(c.check, c.subject, c.reason) for c in found if not c.passed]


def test_healthy_snapshot_passes_every_check() -> None:
    found = checks(healthy())
    assert failed(found) == []
    assert [(c.check, c.subject) for c in found] == [
        ("reachable", "pg-us"), ("reachable", "pg-eu"), ("reachable", "pg-billing"),
        ("primary", "main"), ("identity", "main"), ("timeline", "main"), ("primary", "billing"),
        ("upstream", "pg-eu"),
        ("slot", "pg-us/inventory_sub"), ("slot", "pg-us/pg_eu"), ("standby-slots", "pg-us"),
        ("slot", "pg-eu/inventory_sub"),
        ("subscription", "inventory_sub"),
    ]


def test_down_replica() -> None:
    nodes = healthy()
    nodes["pg-eu"] = down("pg-eu", "main", "eu-west")
    nodes = change(nodes, "pg-us", slots=(
        Slot("inventory_sub", "logical", True, 56, "reserved", "production", True, False),
        Slot("pg_eu", "physical", False, 0, "reserved", None, False, False)))
    assert failed(checks(nodes)) == [
        ("reachable", "pg-eu", "down: container exited"),
        ("upstream", "pg-eu", "down, expected to stream from pg-us"),
        ("standby-slots", "pg-us", "failover slot(s) inventory_sub get no changes: synchronized_standby_slots waits "
                                   "for pg_eu (missing or inactive)"),
    ]


def test_identity_and_timeline_must_match() -> None:
    nodes = change(healthy(), "pg-eu", system_identifier="9999", timeline=2)
    assert failed(checks(nodes)) == [
        ("identity", "main", "system identifiers differ: pg-us 7001, pg-eu 9999"),
        ("timeline", "main", "timelines differ: pg-us 1, pg-eu 2"),
    ]


def test_split_brain_and_wrong_upstream() -> None:
    split = change(healthy(), "pg-eu", in_recovery=False, receiver_status=None, upstream=None)
    assert failed(checks(split)) == [
        ("primary", "main", "split brain: pg-us, pg-eu are all writable"),
        ("upstream", "pg-eu", "writable, expected to be a replica of pg-us"),
    ]
    wrong = change(healthy(), "pg-eu", receiver_status=None, upstream=None,
                   settings={"primary_conninfo": f"host=pgtopo-relay port={GLOBAL.relay_port('eu-west', 'pg-billing')}"})
    assert failed(checks(wrong)) == [
        ("upstream", "pg-eu", "not streaming (WAL receiver not running), expected from pg-us; primary_conninfo "
                              "points at pg-billing"),
    ]


def test_inactive_slot_over_the_limit_fails_naming_it() -> None:
    nodes = healthy()
    stale = Slot("stale", "physical", False, 3 * 1048576, "reserved", None, False, False)
    nodes = change(nodes, "pg-us", slots=(*nodes["pg-us"].slots, stale))
    assert failed(checks(nodes, max_retained=1048576)) == [
        ("slot", "pg-us/stale", "inactive physical slot retains 3.0 MiB of WAL (limit 1.0 MiB, wal_status reserved)")]
    assert failed(checks(nodes)) == []  # 64 MiB by default


def test_subscription_missing_or_broken() -> None:
    assert failed(checks(change(healthy(), "pg-billing", subscriptions=()))) == [
        ("subscription", "inventory_sub", "missing on pg-billing (database production, publication inventory_pub of "
                                          "main)")]
    broken = change(healthy(), "pg-billing", subscriptions=(subscription(tables_ready=1, sync_errors=2),))
    assert failed(checks(broken)) == [
        ("subscription", "inventory_sub", "subscription inventory_sub on pg-billing: 1/2 tables ready; subscription "
                                          "inventory_sub on pg-billing: 0 apply and 2 sync errors since its statistics "
                                          "were reset")]


# -- configuration ------------------------------------------------------------------------------------

def rendered() -> dict[str, dict[str, str]]:
    return {n: render.render_node(GLOBAL, node=n, topo_path=GLOBAL_PATH).files for n in GLOBAL.node_names()}


def live_settings(node: str) -> dict[str, str]:
    want = config_drift.parse_conf(rendered()[node]["postgresql.conf"])
    live = {k: want[k] for k in config_drift.LIVE_SETTINGS if k in want}
    live.setdefault("primary_conninfo", "")
    live.setdefault("primary_slot_name", "")
    if not want.get("primary_conninfo"):
        live["primary_slot_name"] = ""
    live["config_file"] = "/etc/pgtopo/postgresql.conf"
    return live


def configured() -> dict[str, NodeSnapshot]:
    return {n: dataclasses.replace(ns, settings=live_settings(n)) for n, ns in healthy().items()}


def config(nodes: dict[str, NodeSnapshot], on_disk: dict[str, dict[str, str | None]],
           primaries: dict[str, str] = FILE_PRIMARIES) -> list[Check]:
    return config_drift.config_checks(GLOBAL, snap(nodes), primaries=primaries, rendered=rendered(), on_disk=on_disk)


def test_parse_conf() -> None:
    text = "# c\nwal_level = 'logical'   # why\nport = 5432\nx = 'it''s # not a comment'\n\nFoo=on\n"
    assert config_drift.parse_conf(text) == {"wal_level": "logical", "port": "5432", "x": "it's # not a comment",
                                       "foo": "on"}


def test_config_as_rendered_passes_even_from_another_file_name() -> None:
    files: dict[str, dict[str, str | None]] = {
        n: {k: v.replace("global-saas.yaml", "copy.yaml") for k, v in f.items()} for n, f in rendered().items()}
    found = config(configured(), files)
    assert failed(found) == []
    assert [(c.check, c.subject) for c in found][:3] == [
        ("config", "pg-us/postgresql.conf"), ("config", "pg-us/pg_hba.conf"), ("settings", "pg-us")]


def test_config_differences_are_named() -> None:
    files: dict[str, dict[str, str | None]] = {n: dict(f) for n, f in rendered().items()}
    files["pg-us"]["postgresql.conf"] = (files["pg-us"]["postgresql.conf"] or "").replace(
        "wal_level = 'logical'", "wal_level = 'replica'") + "work_mem = '64MB'\n"
    files["pg-us"]["pg_hba.conf"] = (files["pg-us"]["pg_hba.conf"] or "") + "host all all 0.0.0.0/0 trust\n"
    files["pg-billing"] = {"postgresql.conf": None, "pg_hba.conf": None}
    nodes = configured()
    nodes = change(nodes, "pg-eu", settings={**nodes["pg-eu"].settings, "cluster_name": "pg-us",
                                             "primary_conninfo": "host=pg-billing port=5432"},
                   pending_restart=("shared_buffers",))
    assert failed(config(nodes, files)) == [
        ("config", "pg-us/postgresql.conf", "wal_level = 'replica', rendered 'logical'; "
                                            "work_mem = '64MB', rendered '(unset)'"),
        ("config", "pg-us/pg_hba.conf", "differs from the rendered file"),
        ("settings", "pg-eu", "cluster_name = 'pg-us', rendered 'pg-eu'; primary_conninfo points at pg-billing, "
                              "rendered: pg-us; changed on disk, waiting for a restart: shared_buffers"),
        ("config", "pg-billing/postgresql.conf", "cannot read /etc/pgtopo/postgresql.conf"),
        ("config", "pg-billing/pg_hba.conf", "cannot read /etc/pgtopo/pg_hba.conf"),
    ]


def test_failover_settings_are_not_flagged_after_a_failover() -> None:
    nodes = configured()
    # After a failover to pg-eu, ALTER SYSTEM moved pg-us under pg-eu and cleared pg-eu's conninfo.
    nodes = change(nodes, "pg-eu", settings={**nodes["pg-eu"].settings, "primary_conninfo": "",
                                             "synchronized_standby_slots": "pg_us", "sync_replication_slots": "off"})
    nodes = change(nodes, "pg-us", settings={**nodes["pg-us"].settings, "primary_conninfo": "host=pg-eu",
                                             "primary_slot_name": "pg_us", "synchronized_standby_slots": ""})
    files: dict[str, dict[str, str | None]] = {n: dict(f) for n, f in rendered().items()}
    moved = {"main": "pg-eu", "billing": "pg-billing"}
    assert [c.subject for c in config(nodes, files, moved) if not c.passed] == []
    assert [c.subject for c in config(nodes, files) if not c.passed] == ["pg-us", "pg-eu"]


# -- probes ----------------------------------------------------------------------------------------------

def test_plan_global_saas() -> None:
    assert verify.plan_probes(GLOBAL, FILE_PRIMARIES) == [
        ProbePlan("main", "pg-us", "production", (
            Target("pg-eu", "production", "physical", "pg-us"),
            Target("pg-billing", "production", "logical", "pg-us", "inventory_sub"))),
        ProbePlan("billing", "pg-billing", "production", ()),
    ]


def test_plan_orders_cascades_after_their_upstream_and_follows_failovers() -> None:
    [plan] = verify.plan_probes(FOUR, {"main": "pg-use"})
    assert [(t.node, t.via) for t in plan.targets] == [
        ("pg-use2", "pg-use"), ("pg-usw", "pg-use"), ("pg-euw", "pg-use"), ("pg-euc", "pg-euw")]
    [moved] = verify.plan_probes(FOUR, {"main": "pg-euw"})
    assert moved.source == "pg-euw"
    assert [(t.node, t.via) for t in moved.targets] == [
        ("pg-use", "pg-euw"), ("pg-use2", "pg-euw"), ("pg-usw", "pg-euw"), ("pg-euc", "pg-euw")]


def test_edges_measure_each_hop_of_a_cascade() -> None:
    [plan] = verify.plan_probes(FOUR, {"main": "pg-use"})
    seen = {("pg-use2", "app"): 0.002, ("pg-usw", "app"): 0.031, ("pg-euw", "app"): 0.045, ("pg-euc", "app"): None}
    edges = verify.edges_from(FOUR, plan, seen=seen, errors={}, timeout=10)
    assert [(e.source, e.target, e.declared_rtt_ms, e.passed) for e in edges] == [
        ("pg-use", "pg-use2", 0.0, True), ("pg-use", "pg-usw", 60.0, True), ("pg-use", "pg-euw", 80.0, True),
        ("pg-euw", "pg-euc", 20.0, False)]
    assert edges[2].reason == "visible after 45 ms"
    assert edges[3].reason == "not visible on pg-euc after 10 s"
    seen[("pg-euc", "app")] = 0.057
    last = verify.edges_from(FOUR, plan, seen=seen, errors={}, timeout=10)[3]
    assert last.propagation_s == pytest.approx(0.012) and last.since_commit_s == 0.057
    assert last.reason == "visible after 57 ms (12 ms after pg-euw)"
    seen[("pg-euw", "app")] = None
    seen[("pg-euc", "app")] = None
    errors = {("pg-euw", "app"): "pg-euw is down: container exited"}
    cut = verify.edges_from(FOUR, plan, seen=seen, errors=errors, timeout=10)
    assert [e.reason for e in cut[2:]] == [
        "pg-euw is down: container exited",
        "not visible on pg-euc after 10 s (its upstream pg-euw did not get it either)"]


def test_report_json_and_exit_decision() -> None:
    edge = Edge(kind="physical", source="pg-us", target="pg-eu", database="production", subscription=None,
                declared_rtt_ms=80.0, propagation_s=0.04321, since_commit_s=0.04321, passed=True, reason="ok")
    ok = verify.VerifyReport(topology="t", checks=(Check("reachable", "pg-us", True, "writable, timeline 1"),),
                       edges=(edge,))
    assert ok.ok and (ok.passed, ok.failed) == (2, 0)
    data = ok.to_json()
    assert list(data) == ["schema_version", "topology", "ok", "summary", "checks", "edges"]
    assert data["edges"][0] == {"kind": "physical", "source": "pg-us", "target": "pg-eu", "database": "production",
                                "subscription": None, "declared_rtt_seconds": 0.08, "propagation_seconds": 0.0432,
                                "since_commit_seconds": 0.0432, "passed": True, "reason": "ok"}
    assert data["checks"] == [{"check": "reachable", "subject": "pg-us", "passed": True,
                               "reason": "writable, timeline 1"}]
    bad = dataclasses.replace(ok, edges=(dataclasses.replace(edge, passed=False),))
    assert not bad.ok and bad.to_json()["summary"] == {"passed": 1, "failed": 1}


@pytest.mark.parametrize(("text", "size"), [("64MiB", 64 << 20), ("1GB", 1 << 30), ("1048576", 1 << 20),
                                            ("16 kB", 16 << 10), ("0", 0)])
def test_parse_size(text: str, size: int) -> None:
    assert _parse_size(text) == size


@pytest.mark.parametrize("text", ["", "lots", "-1MB", "5TB"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(InputError, match="--max-retained"):
        _parse_size(text)



def _with_sub_errors(apply_errors: int) -> dict[str, NodeSnapshot]:
    return change(healthy(), "pg-billing", subscriptions=(subscription(apply_errors=apply_errors),))


def test_errors_counted_before_this_run_do_not_fail() -> None:
    before, after = snap(_with_sub_errors(2)), snap(_with_sub_errors(2))
    found = health_checks.snapshot_checks(GLOBAL, after, primaries=FILE_PRIMARIES, before=before)
    sub = next(c for c in found if c.check == "subscription")
    assert sub.passed
    assert sub.reason.endswith("(no new error during this run; 2 apply and 0 sync errors earlier)")


def test_errors_during_this_run_fail() -> None:
    before, after = snap(_with_sub_errors(2)), snap(_with_sub_errors(3))
    found = health_checks.snapshot_checks(GLOBAL, after, primaries=FILE_PRIMARIES, before=before)
    sub = next(c for c in found if c.check == "subscription")
    assert not sub.passed
    assert "3 apply and 0 sync errors" in sub.reason

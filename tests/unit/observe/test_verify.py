"""The pure parts of `verify`: probe plans, edges measured hop by hop, the report and its exit decision."""

from __future__ import annotations

import dataclasses

import pytest

from pgtopo.observe import verify
from pgtopo.observe.health_checks import Check
from pgtopo.observe.verify import Edge, ProbePlan, Target
from tests.support.global_saas import FILE_PRIMARIES, FOUR, GLOBAL


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

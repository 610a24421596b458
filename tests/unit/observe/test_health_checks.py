"""`health_checks.snapshot_checks` on hand-built snapshots: what verify checks, with the exact reasons."""

from __future__ import annotations

from pgtopo.observe import health_checks
from pgtopo.observe.expectations import DEFAULT_MAX_RETAINED
from pgtopo.observe.health_checks import Check
from pgtopo.observe.snapshot import NodeSnapshot, Slot
from tests.support.checks import failed
from tests.support.global_saas import FILE_PRIMARIES, GLOBAL, healthy, snap
from tests.support.snapshots import change, down, subscription


def checks(nodes: dict[str, NodeSnapshot], *, max_retained: int = DEFAULT_MAX_RETAINED) -> list[Check]:
    return health_checks.snapshot_checks(GLOBAL, snap(nodes), primaries=FILE_PRIMARIES, max_retained=max_retained)


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
    nodes["pg-eu"] = down("pg-eu", "eu-west")
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

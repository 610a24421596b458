"""A drill's names checked against its topology (pure), and what it targets."""

from __future__ import annotations

from typing import Any

import pytest

from pgtopo.drill import spec, targets
from pgtopo.drill.targets import Subscriber
from pgtopo.errors import ValidationFailed
from pgtopo.model.loader import load
from tests.support.topologies import FOUR_REGIONS, GLOBAL_SAAS

SAAS = load(GLOBAL_SAAS)
BASE: dict[str, Any] = {"drill": "t", "topology": "t.yaml", "duration": "30s", "expect": {"split_brain": False}}


def problems(topo: Any = SAAS, **changes: Any) -> list[str]:
    return targets.problems(spec.parse({**BASE, **changes}), topo)


def test_the_reference_topology_target() -> None:
    t = targets.check(spec.parse(BASE), SAAS)
    assert (t.cluster, t.database) == ("main", "production")
    assert t.subscribers == (Subscriber("inventory_sub", "billing", "production"),)


def test_role_words_and_real_names_are_accepted() -> None:
    steps = [{"kill": "primary"}, {"pause": "replica"}, {"unpause": None}, {"partition": "us-east"},
             {"heal": "pg-us"}, {"failover": {"to": "pg-eu"}}, {"rejoin": "old-primary"},
             {"wait-until": {"streaming": "pg-us"}}, {"latency": {"between": ["us-east", "eu-west"], "rtt": "1s"}}]
    assert problems(steps=steps) == []


def test_role_words_of_another_cluster() -> None:
    assert spec.role_word("primary@billing") == ("primary", "billing")
    assert spec.role_word("old-primary") == ("old-primary", None)
    assert spec.role_word("pg-us") is None and spec.role_word("primary@") is None
    assert problems(steps=[{"kill": "primary@billing"}, {"failover": {"cluster": "billing"}},
                           {"rejoin": "old-primary@billing"}, {"wait-until": {"streaming": "replica@main"}}]) == []
    assert problems(steps=[{"kill": "primary@nope"}, {"partition": "replica@mars"}]) == [
        "steps.0.kill: unknown cluster 'nope' in 'primary@nope' (known: main, billing)",
        "steps.1.partition: unknown cluster 'mars' in 'replica@mars' (known: main, billing)",
    ]


def test_unknown_names() -> None:
    assert problems(steps=[
        {"kill": "pg-xx"}, {"partition": "mars"}, {"failover": {"to": "pg-billing"}},
        {"latency": {"between": ["us-east", "us-east"], "rtt": "1s"}},
        {"switchover": {"cluster": "nope"}}, {"wait-until": {"writable": "pg-zz"}},
    ], workload={"ledger": {"regions": ["us-east", "moon", "us-east"]}, "readers": [{"region": "venus"}]}) == [
        "workload.ledger.regions.1: unknown region 'moon' (known: us-east, eu-west, ap-south)",
        "workload.ledger.regions.2: us-east is listed twice (one writer per region)",
        "workload.readers.0.region: unknown region 'venus' (known: us-east, eu-west, ap-south)",
        "steps.0.kill: unknown node 'pg-xx' (known: pg-us, pg-eu, pg-billing; or primary, replica, old-primary)",
        "steps.1.partition: unknown region or node 'mars' (regions: us-east, eu-west, ap-south; nodes: pg-us, pg-eu, "
        "pg-billing)",
        "steps.2.failover.to: pg-billing is not in cluster main (it is in cluster billing)",
        "steps.3.latency.between: a link joins two different regions (got 'us-east' twice)",
        "steps.4.switchover.cluster: unknown cluster 'nope' (known: main, billing)",
        "steps.5.wait-until.writable: unknown node 'pg-zz' (known: pg-us, pg-eu, pg-billing; or primary, replica, "
        "old-primary)",
    ]


def test_the_timeline_runs_in_order_within_the_duration() -> None:
    assert problems(steps=[{"at": "10s", "kill": "primary"}, {"at": "5s", "failover": None},
                           {"at": "31s", "rejoin": "old-primary"}]) == [
        "steps.1.at: 5s is before an earlier step's 10s (steps run in order)",
        "steps.2.at: 31s is after the end of the drill (duration 30s)",
    ]


def test_expectations_need_what_they_measure() -> None:
    assert problems(workload={"ledger": None, "readers": [{"region": "eu-west", "strategy": "lsn"}]},
                    expect={"write_unavailable": "5s", "stale_reads": {"time-window": 0}, "bank_violations": 0}) == [
        "expect: write_unavailable and error_window measure the ledger writers: workload.ledger is off",
        "expect.stale_reads.time-window: no reader uses strategy time-window (used: lsn)",
        "expect.bank_violations: there is no workload.bank",
    ]
    assert problems(expect={"stale_reads": 0}) == ["expect.stale_reads: no workload.readers to read anything"]
    assert problems(workload={"ledger": {"regions": ["us-east"]}}, expect={"error_window": {"eu-west": "1s"}}) == [
        "expect.error_window.eu-west: no ledger writer in region eu-west (writers: us-east)"]


def test_logical_completeness_needs_a_subscriber() -> None:
    four = load(FOUR_REGIONS)
    assert problems(four, expect={"logical_complete": True}) == [
        "expect.logical_complete: no subscription receives cluster main's database app"]
    assert problems(expect={"logical_complete": True}) == []


def test_unknown_cluster_and_database() -> None:
    assert problems(cluster="nope") == ["cluster: unknown cluster 'nope' (known: main, billing)"]
    assert problems(database="crm") == ["database: cluster main has no database 'crm' (known: production)"]
    with pytest.raises(ValidationFailed) as exc:
        targets.check(spec.parse({**BASE, "cluster": "nope"}), SAAS)
    assert exc.value.problems == ["cluster: unknown cluster 'nope' (known: main, billing)"]


def test_a_cluster_without_replicas_can_be_named() -> None:
    t = targets.check(spec.parse({**BASE, "cluster": "billing"}), SAAS)
    assert (t.cluster, t.database, t.subscribers) == ("billing", "production", ())

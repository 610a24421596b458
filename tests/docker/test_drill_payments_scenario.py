"""One scenario, in file order: the shipped drills of payments.yaml on one copy of it (``dr-pay``).

payments has a single synchronous standby (FIRST 1) and a subscriber cluster, reporting, with a
standby of its own. The drills name nodes through ``primary``, ``replica`` and their ``@reporting``
forms, so each runs on whatever layout the previous one left:

1. stuck-sync-standby: the only synchronous standby paused 6 s: no commit is acknowledged while it
   is stuck, every writer recovers after the unpause, nothing is lost; the same events judged
   with what a quorum achieves (error window under a second) FAIL;
2. subscriber-failover: reporting's primary killed, reporting failed over: its subscription
   carries on from its slot, every row of the publisher reaches the new subscriber once;
3. lagging-subscriber-failover: reporting failed over to a standby that lacks seconds of the old
   primary's WAL: the subscription is re-synchronised, and still every row arrives once.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pgtopo.drill import runner
from pgtopo.drill.runner import DrillResult
from pgtopo.drill.spec import Expect
from pgtopo.drill.verdict import judge
from pgtopo.lifecycle import deploy
from pgtopo.model.loader import load
from pgtopo.runtime import state
from tests.support.docker import copy_topology
from tests.support.topologies import TOPOLOGIES

DRILLS = TOPOLOGIES / "drills"
NAME = "dr-pay"


@pytest.fixture(scope="module")
def payments(tmp_path_factory: pytest.TempPathFactory, state_env: Path) -> Iterator[Path]:
    path = copy_topology(tmp_path_factory.mktemp(NAME), "payments.yaml", name=NAME)
    try:
        deploy.up(load(path), topo_path=path, progress=lambda s, m: None)
        yield path
    finally:
        deploy.down(NAME, volumes=True)


def run(drill: Path, topology: Path, tmp: Path) -> DrillResult:
    result = runner.run(drill, topology=topology, report_dir=tmp / drill.stem)
    print("\n".join(f"{c.key:18} {c.subject:36} {c.measured:32} {c.expected:12} {c.result}"
                    for c in result.verdict.checks))
    print("steps:", [s.detail for s in result.log.steps], "notes:", result.log.notes, "wall", round(result.wall_s, 1))
    return result


def test_a_stuck_synchronous_standby_stops_every_commit_until_it_is_unpaused(payments: Path, tmp_path: Path) -> None:
    r = run(DRILLS / "stuck-sync-standby.yaml", payments, tmp_path)
    v = r.verdict
    assert v.passed, v.failed
    pause, unpause = r.log.steps[0], r.log.steps[1]
    assert pause.action == "pause" and unpause.action == "unpause"
    # While pay-b was frozen (give its last in-flight commits half a second), no write was acknowledged ...
    during = [a for a in r.log.attempts if a.outcome == "ok" and pause.end + 0.5 < a.end < unpause.start]
    assert during == []
    # ... yet the primary stayed writable throughout, and every writer committed again after the unpause.
    assert v.check("split_brain").measured == "no"
    assert all(any(a.workload == w.writer and a.outcome == "ok" and a.start > unpause.end for a in r.log.attempts)
               for w in v.writers)
    assert all(w.error_window_at is not None and w.error_window_at <= unpause.start for w in v.writers)
    assert v.check("acked_lost").measured == "0 commit(s), 0 B of WAL"
    # What a quorum of two gives (stuck-sync-quorum: commits never stop) is not what FIRST 1 gives.
    quorum = judge(r.log, Expect(error_window=1.0))
    assert [c.subject for c in quorum.failed] == sorted(w.writer for w in v.writers)


def test_a_subscriber_cluster_fails_over_and_its_subscription_carries_on(payments: Path, tmp_path: Path) -> None:
    before = state.current_primaries(load(payments))["reporting"]
    r = run(DRILLS / "subscriber-failover.yaml", payments, tmp_path)
    v = r.verdict
    assert v.passed, v.failed
    after = state.current_primaries(load(payments))["reporting"]
    assert after != before
    failover = r.log.steps[1]
    assert f"subscription payments_sub on {after}: " in failover.detail
    (logical,) = v.logical
    assert logical.node == after and logical.complete and logical.received == logical.expected > 500


def test_a_lagging_subscriber_standby_is_re_synchronised(payments: Path, tmp_path: Path) -> None:
    r = run(DRILLS / "lagging-subscriber-failover.yaml", payments, tmp_path)
    v = r.verdict
    assert v.passed, v.failed
    failover = r.log.steps[3]
    assert failover.action == "failover"
    new = state.current_primaries(load(payments))["reporting"]
    # The standby lacked the old primary's last seconds: continuing from the slot would have skipped
    # rows; pgtopo copied the tables again instead, and the subscriber has every row once.
    assert f"subscription payments_sub on {new}: resynced" in failover.detail
    (logical,) = v.logical
    assert logical.complete and logical.missing == logical.duplicates == 0

"""One scenario, in file order: the shipped drill patroni-primary-crash, twice, on one copy of
global-saas-patroni (``dr-gsp``): Patroni, not pgtopo, fails the cluster over.

The drill SIGKILLs the leader under the ledger writers, the bank and the subscriber's checker, has
no `failover` step, waits until a member accepts writes, then starts the killed member again
(Patroni rejoins it). Each run must show: a new leader on a newer timeline chosen by Patroni,
every acknowledged commit kept (quorum commit, ANY 1), no moment with two writable members, and
every row of the published table on the subscriber exactly once (no gap, no duplicate) through
the automatic failover. The second run kills the leader the first one left, which needs the
file's primary to be a synchronous candidate after its rejoin (it is not `nosync`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pgtopo.drill import runner
from pgtopo.drill.runner import DrillResult
from pgtopo.lifecycle import deploy
from pgtopo.model.loader import load
from tests.support.docker import copy_topology
from tests.support.patroni_lab import patroni_view
from tests.support.topologies import TOPOLOGIES

DRILL = TOPOLOGIES / "drills" / "patroni-primary-crash.yaml"
NAME = "dr-gsp"


@pytest.fixture(scope="module")
def topology(tmp_path_factory: pytest.TempPathFactory, state_env: Path) -> Iterator[Path]:
    path = copy_topology(tmp_path_factory.mktemp(NAME), "global-saas-patroni.yaml", name=NAME)
    try:
        deploy.up(load(path), topo_path=path, progress=lambda s, m: None)
        yield path
    finally:
        deploy.down(NAME, volumes=True)


def crash_the_leader(topology: Path, tmp: Path) -> tuple[DrillResult, str, str]:
    topo = load(topology)
    before = patroni_view(topo, "main").leader
    assert before is not None and before.timeline is not None
    r = runner.run(DRILL, topology=topology, report_dir=tmp / "report")
    print("\n".join(f"{c.key:18} {c.subject:36} {c.measured:32} {c.expected:12} {c.result}" for c in r.verdict.checks))
    print("steps:", [s.detail for s in r.log.steps], "notes:", r.log.notes)
    after = patroni_view(topo, "main").leader
    assert after is not None and after.timeline is not None
    assert after.name != before.name and after.timeline > before.timeline, (before, after)
    v = r.verdict
    assert v.passed, v.failed
    assert [s.action for s in r.log.steps] == ["kill", "wait-until", "rejoin"]  # nobody ran `failover`
    assert before.name in r.log.steps[0].detail
    assert v.check("acked_lost").measured == "0 commit(s), 0 B of WAL"
    assert v.check("split_brain").measured == "no"
    assert v.check("logical_complete").measured == "complete"
    # Every writer committed again, on the new leader's timeline, after the kill.
    kill = r.log.steps[0]
    for w in v.writers:
        assert any(a.workload == w.writer and a.outcome == "ok" and a.start > kill.end
                   and (a.timeline or 0) >= after.timeline for a in r.log.attempts), w.writer
    return r, before.name, after.name


def test_patroni_promotes_a_synchronous_standby_with_nothing_lost(topology: Path, tmp_path: Path) -> None:
    crash_the_leader(topology, tmp_path)


def test_the_leader_the_first_crash_left_fails_over_too(topology: Path, tmp_path: Path) -> None:
    _r, killed, promoted = crash_the_leader(topology, tmp_path)
    # The first run promoted pg-us2 (the only listed synchronous standby); killing it now needs
    # the rejoined file primary as the synchronous candidate.
    assert (killed, promoted) == ("pg-us2", "pg-us")

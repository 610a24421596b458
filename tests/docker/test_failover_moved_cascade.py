"""A cascade a failover moved is asked with the direct replicas by the next failover, with real containers.

One region; pg-a primary, pg-b its replica, pg-c behind pg-b (a cascade). A switchover makes pg-b
primary (pg-c stays behind it); ``kill pg-b`` and ``failover --yes`` re-point pg-c to the new
primary, pg-a, and record it (``RuntimeState.moved``); pg-b rejoins, as a replica of pg-a, and pg-c
stays on pg-a. When pg-a fails next, pg-b does not list pg-c among its standbys: the plan asks pg-c
with pg-b in one round instead of finding it missing and asking it in a second one.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pgtopo.ha import failover, promotion
from pgtopo.model.topology import Topology
from pgtopo.observe import snapshot
from pgtopo.runtime import state
from tests.support.docker import all_streaming, cli, up_from_text, wait_for

TOPOLOGY = """
name: fo-moved
postgres:
  version: 17
regions:
  r1: {}
clusters:
  main:
    nodes:
      pg-a: {region: r1, role: primary}
      pg-b: {region: r1, upstream: pg-a}
      pg-c: {region: r1, upstream: pg-b, failover_priority: 50}
"""


@pytest.fixture(scope="module")
def moved(tmp_path_factory: pytest.TempPathFactory, state_env: Path) -> Iterator[tuple[Topology, Path]]:
    with up_from_text(tmp_path_factory.mktemp("fo-moved"), TOPOLOGY, file="moved.yaml") as up:
        yield up


def test_a_moved_cascade_is_recorded_and_asked_in_the_first_round(moved: tuple[Topology, Path]) -> None:
    topo, path = moved
    f = str(path)
    code, out = cli("switchover", f, "--to", "pg-b", "--yes")
    assert code == 0, out
    wait_for(lambda: all_streaming(topo, "main"), what="every replica streaming after the switchover")
    assert state.load(topo.name).moved == {}  # pg-c streams from pg-b, as the file says

    code, out = cli("kill", f, "pg-b")
    assert code == 0, out
    code, out = cli("failover", f, "--yes")
    assert code == 0, out
    assert state.current_primaries(topo)["main"] == "pg-a", out
    assert "pg-c: streaming on timeline 3 from pg-a (repoint" in out, out
    assert state.load(topo.name).moved == {"pg-c": "pg-a"}

    code, out = cli("rejoin", f, "pg-b")
    assert code == 0, out
    wait_for(lambda: all_streaming(topo, "main"), what="every replica streaming after the rejoin")
    snap = snapshot.collect(topo)
    assert (snap.nodes["pg-b"].upstream, snap.nodes["pg-c"].upstream) == ("pg-a", "pg-a")
    assert state.load(topo.name).moved == {"pg-c": "pg-a"}  # pg-b is a direct replica: never "moved"

    code, out = cli("kill", f, "pg-a")
    assert code == 0, out
    rounds: list[list[str]] = []

    def counted(t: Topology, **kw: Any) -> snapshot.Snapshot:
        rounds.append(sorted(kw["nodes"]))
        return snapshot.collect(t, **kw)

    plan = promotion.plan_live(topo, mode="failover", cluster="main", to=None, collect=counted, unattended=True)
    assert rounds == [["pg-a", "pg-b", "pg-c"]]
    assert plan.not_asked == () and {c.node for c in plan.ranking} == {"pg-b", "pg-c"}
    # Without the record, pg-c would be left for after the promotion behind pg-b, found missing from
    # pg-b's standbys, and asked alone in a second round.
    assert failover.deferrable(topo, "main", "pg-a") == {"pg-c": "pg-b"}

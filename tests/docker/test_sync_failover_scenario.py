"""One scenario, in file order: failovers of a synchronous cluster (``ANY 1 (pg-b, pg-c)``) with real containers.

The tests share one topology (``t-failsync``, one region: pg-a primary, pg-b and pg-c its
synchronous standbys; module-scoped, bringing it up is expensive) and each starts where the
previous one left it:
1. pg-a killed while pg-c is down: failover refuses (pg-b may lack commits only pg-c
   acknowledged), then pg-a and pg-c are started again;
2. ``kill`` the primary then ``failover``: no acknowledged commit lost; ``rejoin pg-a``;
3. the new primary paused: ``failover`` fences it off every network; ``rejoin`` it;
4. ``kill`` and ``failover`` once more, on the later timeline the two failovers before left.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pgtopo.lifecycle import deploy
from pgtopo.model.loader import load
from pgtopo.model.topology import Topology
from pgtopo.observe import snapshot
from pgtopo.postgres import connect
from pgtopo.runtime import gateway, state
from tests.support.docker import Writer, all_streaming, cli, ids, layout, unchanged, wait_for

SYNC_TOPOLOGY = """
name: t-failsync
postgres:
  version: 17
regions:
  dc1: {}
clusters:
  main:
    databases:
      app:
        schema: |
          CREATE TABLE products (
              id bigint PRIMARY KEY,
              sku text NOT NULL,
              name text NOT NULL,
              price_cents integer NOT NULL
          );
    synchronous:
      method: any
      count: 1
      standbys: [pg-b, pg-c]
    nodes:
      pg-a:
        region: dc1
        role: primary
      pg-b:
        region: dc1
        upstream: pg-a
      pg-c:
        region: dc1
        upstream: pg-a
"""


@pytest.fixture(scope="module")
def sync(tmp_path_factory: pytest.TempPathFactory, state_env: Path) -> Iterator[tuple[Topology, Path]]:
    path = tmp_path_factory.mktemp("t-failsync") / "failsync.yaml"
    path.write_text(SYNC_TOPOLOGY)
    topo = load(path)
    try:
        deploy.up(topo, topo_path=path, progress=lambda s, m: None)
        yield topo, path
    finally:
        deploy.down(topo.name, volumes=True)


def test_sync_refusal_when_a_sync_standby_is_missing(sync: tuple[Topology, Path]) -> None:
    """ANY 1 (pg-b, pg-c): with pg-a dead and pg-c down, pg-b may lack commits only pg-c acknowledged."""
    topo, path = sync
    primaries = state.current_primaries(topo)
    c = gateway.find(topo.name, "pg-c")
    a = gateway.find(topo.name, "pg-a")
    assert c is not None and a is not None
    gateway.stop(c)
    try:
        code, out = cli("kill", str(path), "pg-a")
        assert code == 0, out
        before = layout(topo)
        code, out = cli("failover", str(path), "--yes")
        assert code == 2, out
        assert "error: no safe candidate in cluster main" in out
        assert ('pg-b: unsafe: pg-c (synchronous) unavailable: acknowledged commits may exist only there '
                '(ANY 1 ("pg-b", "pg-c") needs 2 of 2 seen)') in out, out
        assert "pg-c: no: down (container exited)" in out
        unchanged(topo, before, primaries)
        code, out = cli("failover", str(path), "--yes", "--to", "pg-b")
        assert code == 2, out
        assert "error: --to pg-b: not safe to promote: pg-c (synchronous) unavailable" in out
        unchanged(topo, before, primaries)
    finally:
        gateway.start(a)
        gateway.start(c)
    wait_for(lambda: all_streaming(topo, "main"), timeout=60, what="pg-a back, pg-b and pg-c streaming")


def test_sync_failover_loses_nothing_and_rejoins(sync: tuple[Topology, Path]) -> None:
    topo, path = sync
    writer = Writer(topo, cluster="main", db="app", start_id=1)
    writer.start()
    try:
        wait_for(lambda: len(writer.acked) > 300, what="the writer to get going")
        code, out = cli("kill", str(path), "pg-a")
        assert code == 0, out
        code, out = cli("failover", str(path), "--yes")
        print(out)
        assert code == 0, out
        n = len(writer.acked)
        wait_for(lambda: len(writer.acked) > n + 200, what="writes on the new primary")
    finally:
        writer.stop()
    new = state.current_primaries(topo)["main"]
    other = ({"pg-b", "pg-c"} - {new}).pop()
    snap = snapshot.collect(topo)
    assert snap.writable("main") == [new]
    assert snap.nodes[other].upstream == new and snap.nodes[other].receiver_status == "streaming"
    assert snap.nodes[new].settings["synchronous_standby_names"] == f'ANY 1 ("{other}")'
    on_new = ids(topo, new, "app")
    assert set(writer.acked) <= on_new, f"acknowledged commits lost: {sorted(set(writer.acked) - on_new)[:10]}"
    assert on_new <= set(writer.acked) | set(writer.unknown)

    code, out = cli("rejoin", str(path), "pg-a")
    assert code == 0, out
    wait_for(lambda: all_streaming(topo, "main"), what="every node streaming")
    snap = snapshot.collect(topo)
    assert snap.nodes[new].settings["synchronous_standby_names"] == f'ANY 1 ("{other}", "pg-a")'


def test_paused_primary_is_fenced_off_the_network_then_rejoins(sync: tuple[Topology, Path]) -> None:
    """A frozen primary cannot be stopped cleanly: it is cut off every network, then rejoined."""
    topo, path = sync
    old = state.current_primaries(topo)["main"]
    with connect.connect(topo.name, old, dbname="app") as conn:
        conn.execute("INSERT INTO products VALUES (-1, 'before-pause', 'marker', 0)")
    wait_for(lambda: all(-1 in ids_all(topo, n) for n in ("pg-a", "pg-b", "pg-c") if n != old), what="the marker row")
    c = gateway.find(topo.name, old)
    assert c is not None
    gateway.pause(c)
    code, out = cli("failover", str(path), "--yes")
    print(out)
    assert code == 0, out
    assert f"fenced {old}: disconnected (container paused, removed from t-failsync_dc1)" in out
    assert gateway.network_names(c) == []
    new = state.current_primaries(topo)["main"]
    assert new != old
    snap = snapshot.collect(topo)
    assert snap.writable("main") == [new]
    assert state.load(topo.name).fenced[old].method == "disconnected"

    code, out = cli("rejoin", str(path), old)
    print(out)
    assert code == 0, out
    assert gateway.network_names(c) == ["t-failsync_dc1"]
    wait_for(lambda: all_streaming(topo, "main"), what="every node streaming")
    snap = snapshot.collect(topo)
    assert snap.writable("main") == [new]
    assert snap.nodes[old].upstream == new
    assert -1 in ids_all(topo, new)


def ids_all(topo: Topology, node: str) -> set[int]:
    with connect.connect(topo.name, node, dbname="app") as conn:
        return {int(str(r[0])) for r in conn.execute("SELECT id FROM products").fetchall()}


def test_kill_failover_again_on_a_later_timeline(sync: tuple[Topology, Path]) -> None:
    """The replicas' WAL receivers stop with the primary: their timeline must still read as the live one
    (not their last restartpoint's), or every candidate would look 'behind the timeline'."""
    topo, path = sync
    old = state.current_primaries(topo)["main"]
    tl = snapshot.collect(topo).nodes[old].timeline
    assert tl is not None and tl >= 3
    code, out = cli("kill", str(path), old)
    assert code == 0, out
    code, out = cli("failover", str(path), "--yes")
    print(out)
    assert code == 0, out
    assert f"(timeline {tl + 1})" in out
    code, out = cli("rejoin", str(path), old)
    assert code == 0, out
    wait_for(lambda: all_streaming(topo, "main"), what="every node streaming")

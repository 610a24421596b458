"""One scenario, in file order: an asynchronous failover that really loses commits, then `rejoin --reclone`.

The tests share one topology (``fp-loss``, module-scoped): pg-x, the primary, in r1 and its
asynchronous replica pg-y in r2.

1. A writer inserts rows through the primary and records every acknowledged commit. The replica
   is cut off with ``partition r2`` just before pg-x is killed, so the commits acknowledged in
   between exist only on pg-x. After the heal, ``failover`` promotes pg-y and reports the loss
   read from pg-x's WAL: it is checked against the writer's ledger.
2. pg-x, whose WAL after the fork is gone from the new timeline, cannot be rewound once its own
   WAL is damaged: ``rejoin`` fails and names ``--reclone``, which copies it afresh.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from pgtopo.ha.standby import on_volume
from pgtopo.model.topology import Topology
from pgtopo.observe import snapshot
from pgtopo.postgres import connect, instance
from pgtopo.runtime import gateway, state
from tests.support.docker import Writer, all_streaming, cli, ids, up_from_text, wait_for

TOPOLOGY = """
name: fp-loss
postgres:
  version: 17
regions:
  r1: {}
  r2: {}
latency:
  - {between: [r1, r2], rtt_ms: 20}
clusters:
  main:
    databases:
      app:
        schema: |
          CREATE TABLE products (id bigint PRIMARY KEY, sku text NOT NULL, name text NOT NULL,
                                 price_cents integer NOT NULL);
    nodes:
      pg-x: {region: r1, role: primary}
      pg-y: {region: r2, upstream: pg-x}
"""


@pytest.fixture(scope="module")
def loss(tmp_path_factory: pytest.TempPathFactory, state_env: Path) -> Iterator[tuple[Topology, Path]]:
    with up_from_text(tmp_path_factory.mktemp("fp-loss"), TOPOLOGY, file="loss.yaml") as up:
        yield up


def reported_loss(output: str) -> tuple[int, int]:
    m = re.search(r"data lost: [\d.]+ \w+ \((\d+) bytes\) of WAL, (\d+) committed transaction\(s\) \(pg-x's WAL read "
                  r"from its volume", output)
    assert m, output
    return int(m.group(1)), int(m.group(2))


def test_asynchronous_failover_reports_the_commits_it_lost(loss: tuple[Topology, Path]) -> None:
    topo, path = loss
    f = str(path)
    # The loss counts every commit in pg-x's WAL after the fork: no autoanalyze may add its own.
    with connect.connect(topo.name, "pg-x", dbname="app") as conn:
        conn.execute("ALTER TABLE products SET (autovacuum_enabled = false)")
    writer = Writer(topo, cluster="main", db="app", start_id=1)
    writer.start()
    try:
        wait_for(lambda: len(writer.acked) > 300, what="the writer to get going")
        wait_for(lambda: writer.acked[-1] in ids(topo, "pg-y", "app"), what="pg-y to replicate the writer's rows")
        code, out = cli("partition", f, "r2")
        assert code == 0, out
        n = len(writer.acked)
        wait_for(lambda: len(writer.acked) > n + 200, what="commits acknowledged while pg-y is cut off")
        code, out = cli("kill", f, "pg-x")
        assert code == 0, out
        code, out = cli("heal", f)
        assert code == 0, out
        code, out = cli("failover", f, "--yes", "--max-lag", str(64 << 20))
        print(out)
        assert code == 0, out
        assert "pg-y is the primary of cluster main (timeline 2)" in out
        n = len(writer.acked)
        wait_for(lambda: len(writer.acked) > n + 100, what="writes on pg-y")
    finally:
        writer.stop()

    on_new = ids(topo, "pg-y", "app")
    acked, unknown = set(writer.acked), set(writer.unknown)
    missing = acked - on_new
    assert on_new <= acked | unknown, "rows nobody wrote"
    assert len(missing) >= 200, "the commits acknowledged while pg-y was cut off are lost"
    lost_bytes, lost_commits = reported_loss(out)
    # pg-x's WAL after the fork holds every lost acknowledged commit, and at most the few whose
    # acknowledgement the kill cut off (their outcome unknown to the writer) besides.
    assert len(missing) <= lost_commits <= len(missing) + len(unknown - on_new), (len(missing), lost_commits, unknown)
    assert lost_bytes > 0
    print(f"acknowledged and lost: {len(missing)}; outcome unknown: {len(unknown)}; reported: {lost_commits} commits, "
          f"{lost_bytes} bytes")
    assert state.load(topo.name).last_change is not None
    assert state.load(topo.name).last_change.lost_bytes == lost_bytes  # type: ignore[union-attr]


def test_rejoin_reclone_when_the_rewind_fails(loss: tuple[Topology, Path]) -> None:
    topo, path = loss
    f = str(path)
    c = gateway.find(topo.name, "pg-x")
    assert c is not None and gateway.status(c) == "exited"
    # pg_rewind needs pg-x's own WAL back to the last checkpoint before the fork (and crash recovery
    # first, since pg-x was killed): without its WAL segments it cannot be rewound.
    rc, text = on_volume(topo, c, ["sh", "-c", f"rm -f {instance.PGDATA}/pg_wal/0000*"], step="damage pg_wal")
    assert rc == 0, text
    code, out = cli("rejoin", f, "pg-x")
    print(out)
    assert code == 1, out
    assert "`pgtopo rejoin FILE pg-x --reclone` copies it afresh from pg-y" in out
    assert state.load(topo.name).fenced["pg-x"].detail.startswith("rejoin failed")

    code, out = cli("rejoin", f, "pg-x", "--reclone")
    print(out)
    assert code == 0, out
    assert "pg-x streams from pg-y (re-cloned: fresh copy from pg-y with pg_basebackup" in out
    wait_for(lambda: all_streaming(topo, "main"), what="pg-x streaming from pg-y")
    snap = snapshot.collect(topo)
    assert snap.nodes["pg-x"].upstream == "pg-y" and snap.nodes["pg-x"].timeline == 2
    assert "pg-x" not in state.load(topo.name).fenced
    wait_for(lambda: ids(topo, "pg-x", "app") == ids(topo, "pg-y", "app"), what="pg-x to hold pg-y's rows")

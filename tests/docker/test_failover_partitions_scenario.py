"""One scenario, in file order: failovers while a region is partitioned, with real containers.

The tests share one topology (``fp-partitions``, module-scoped) and each starts where the
previous one left it. Three regions: cluster main has its primary pg-a1 and the synchronous
standby pg-a2 in ra (``ANY 1 (pg-a2, pg-b1)``) and pg-b1 in rb; cluster subs (pg-c1, rc)
subscribes to main with a failover slot.

1. The issue's sequence: ``kill pg-a1``, ``failover`` (pg-a2, the in-region standby), then
   ``partition ra`` and ``failover`` again: pg-b1 is promoted, the old primary behind the
   partition is killed, and the subscriber follows pg-b1 at once, while ra is still cut off.
2. With the primary alive behind the partition and a standby beside it: the dry run picks the
   standby the other regions can reach and says why the other is a last resort; the failover
   fences the old primary, the subscriber follows while still partitioned, and the command
   exits 1, its last line naming what is not done and the command that finishes it; once the
   partition heals, ``failover --resume`` finishes it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pgtopo.model.topology import Topology
from pgtopo.observe import snapshot
from pgtopo.postgres import connect
from pgtopo.runtime import state
from tests.support.docker import all_streaming, cli, up_from_text, wait_for, wait_synced_slot

SCHEMA = """
        schema: |
          CREATE TABLE products (id bigint PRIMARY KEY, sku text NOT NULL, name text NOT NULL,
                                 price_cents integer NOT NULL);"""

TOPOLOGY = f"""
name: fp-partitions
postgres:
  version: 17
regions:
  ra: {{}}
  rb: {{}}
  rc: {{}}
latency:
  - {{between: [ra, rb], rtt_ms: 20}}
  - {{between: [ra, rc], rtt_ms: 20}}
  - {{between: [rb, rc], rtt_ms: 20}}
clusters:
  main:
    databases:
      app:{SCHEMA}
    synchronous: {{method: any, count: 1, standbys: [pg-a2, pg-b1]}}
    nodes:
      pg-a1: {{region: ra, role: primary}}
      pg-a2: {{region: ra, upstream: pg-a1, failover_priority: 100}}
      pg-b1: {{region: rb, upstream: pg-a1, failover_priority: 50}}
    publications:
      pub: {{database: app, tables: [products]}}
  subs:
    databases:
      app:{SCHEMA}
    nodes:
      pg-c1: {{region: rc, role: primary}}
    subscriptions:
      sub_c: {{publisher: main, publication: pub, failover: true}}
"""


@pytest.fixture(scope="module")
def part(tmp_path_factory: pytest.TempPathFactory, state_env: Path) -> Iterator[tuple[Topology, Path]]:
    with up_from_text(tmp_path_factory.mktemp("fp-partitions"), TOPOLOGY, file="partitions.yaml") as up:
        yield up


def insert(topo: Topology, node: str, row: int) -> None:
    with connect.connect(topo.name, node, dbname="app") as conn:
        conn.execute("INSERT INTO products VALUES (%s, %s, 'marker', 0)", (row, f"m-{row}"))


def has_row(topo: Topology, node: str, row: int) -> bool:
    with connect.connect(topo.name, node, dbname="app") as conn:
        return conn.execute("SELECT count(*) FROM products WHERE id = %s", (row,)).fetchone() == (1,)


def setting(topo: Topology, node: str, name: str) -> str:
    return snapshot.collect(topo, nodes=[node]).nodes[node].settings[name]


def test_second_failover_with_the_first_ones_region_partitioned(part: tuple[Topology, Path]) -> None:
    topo, path = part
    f = str(path)
    wait_synced_slot(topo, "pg-a2", "sub_c")
    wait_synced_slot(topo, "pg-b1", "sub_c")
    code, out = cli("kill", f, "pg-a1")
    assert code == 0, out
    code, out = cli("failover", f, "--yes")
    print(out)
    assert code == 0, out
    assert "-> pg-a2" in out and "pg-a2 is the primary of cluster main (timeline 2)" in out
    assert "subscription sub_c on pg-c1: moved" in out
    insert(topo, "pg-a2", 1)
    wait_for(lambda: has_row(topo, "pg-c1", 1), timeout=30, what="row 1 on pg-c1")
    wait_synced_slot(topo, "pg-b1", "sub_c")

    code, out = cli("partition", f, "ra")
    assert code == 0, out
    code, out = cli("failover", f, "--yes")
    print(out)
    # pg-a1 is down (it follows on `rejoin`): everything alive follows pg-b1, nothing is left undone.
    assert code == 0, out
    assert "-> pg-b1" in out and "pg-b1 is the primary of cluster main (timeline 3)" in out
    assert "fenced pg-a2: killed (container exited)" in out
    assert "subscription sub_c on pg-c1: moved: continues from failover slot sub_c on pg-b1" in out
    # The subscriber receives from the new primary while ra is still cut off.
    insert(topo, "pg-b1", 2)
    wait_for(lambda: has_row(topo, "pg-c1", 2), timeout=30, what="row 2 on pg-c1 while ra is partitioned")
    assert state.load(topo.name).partitioned == ("ra",)
    # No stale upstream on the new primary, and no standby behind the partition holds its failover slot back.
    assert [setting(topo, "pg-b1", s) for s in ("primary_conninfo", "primary_slot_name", "synchronized_standby_slots")
            ] == ["", "", ""]

    code, out = cli("heal", f)
    assert code == 0, out
    for node in ("pg-a2", "pg-a1"):
        code, out = cli("rejoin", f, node)
        print(out)
        assert code == 0, out
    wait_for(lambda: all_streaming(topo, "main"), what="every node of main streaming")
    assert setting(topo, "pg-b1", "synchronized_standby_slots") == "pg_a1, pg_a2"


def test_failover_with_the_old_primary_alive_behind_a_partition(part: tuple[Topology, Path]) -> None:
    topo, path = part
    f = str(path)
    # Back to the file's layout first: pg-a1 primary, pg-a2 beside it in ra, pg-b1 in rb.
    wait_synced_slot(topo, "pg-a1", "sub_c")
    code, out = cli("switchover", f, "--to", "pg-a1", "--yes")
    print(out)
    assert code == 0, out
    wait_for(lambda: all_streaming(topo, "main"), what="every node of main streaming")
    wait_synced_slot(topo, "pg-a2", "sub_c")
    wait_synced_slot(topo, "pg-b1", "sub_c")
    insert(topo, "pg-a1", 3)
    wait_for(lambda: has_row(topo, "pg-c1", 3), timeout=30, what="row 3 on pg-c1")

    code, out = cli("partition", f, "ra")
    assert code == 0, out
    code, out = cli("failover", f, "--dry-run")
    print(out)
    assert code == 0, out
    assert "-> pg-b1" in out
    assert "why: pg-b1 has the most WAL of the replicas the other regions can reach" in out or \
        "why: pg-b1 has the most WAL:" in out  # pg-a2 may or may not have received more by now
    assert "why: not pg-a2: cut off from the other regions by the partition of region ra, a last resort" in out
    assert "fence: kill pg-a1: pg-b1 is cut off from it" in out
    assert state.current_primaries(topo)["main"] == "pg-a1"

    code, out = cli("failover", f, "--yes")
    print(out)
    assert code == 1, out
    assert "pg-b1 is the primary of cluster main" in out
    assert "fenced pg-a1: killed (container exited)" in out
    assert "subscription sub_c on pg-c1: moved" in out
    lines = out.rstrip().splitlines()
    assert lines[-2] == "error: the failover of cluster main to pg-b1 is done only in part: 1 step(s) not done"
    assert lines[-1] == (f"not done: pg-a2 cannot follow pg-b1's timeline; once ra is healed (`pgtopo heal {f} ra`), "
                         f"finish with: pgtopo rejoin {f} pg-a2")
    insert(topo, "pg-b1", 4)
    wait_for(lambda: has_row(topo, "pg-c1", 4), timeout=30, what="row 4 on pg-c1 while ra is partitioned")
    assert setting(topo, "pg-b1", "synchronized_standby_slots") == ""

    # Resumed while ra is still cut off: still not done, and it says so.
    code, out = cli("failover", f, "--resume", "--yes")
    print(out)
    assert code == 1, out
    assert out.rstrip().splitlines()[-1] == (
        f"not done: pg-a2 cut off; once ra is healed (`pgtopo heal {f} ra`), finish with: pgtopo failover {f} "
        "--resume --cluster main")
    code, out = cli("heal", f)
    assert code == 0, out
    code, out = cli("failover", f, "--resume", "--yes")
    print(out)
    assert code == 0, out
    assert "pg-a2: pg_rewind, streams from pg-b1" in out or "pg-a2: no rewind needed, streams from pg-b1" in out
    assert "pg-a1: left (fenced: `pgtopo rejoin` brings it back)" in out
    code, out = cli("rejoin", f, "pg-a1")
    assert code == 0, out
    wait_for(lambda: all_streaming(topo, "main"), what="every node of main streaming")
    for row in (3, 4):
        assert has_row(topo, "pg-c1", row)

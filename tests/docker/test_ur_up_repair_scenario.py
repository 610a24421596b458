"""One scenario, in file order: `up` repairs what went wrong, and resumes after `down`.

A small topology written here (``ur-repair``: two regions, a primary pg-a, its replica pg-b in
the other region, a subscriber pg-s there), module-scoped because each `up` costs time:
1. the publisher's schema has an error: `up` fails at init.sql; the schema fixed in the file, the
   next `up` finishes the topology (no `down --volumes`); a publication missing on the publisher
   fails the subscription at once;
2. a setting PostgreSQL refuses at reload fails `up` (the setting and PostgreSQL's words); the node
   then cannot start; fixed in the file, `up` installs it and starts the node;
3. `down` then `up`: every node starts again on its data;
4. after a failover, `down` then `up`: the promoted node stays primary, the former one stays down
   until `rejoin`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import LiteralString

import pytest

from pgtopo.lifecycle import deploy
from pgtopo.model.loader import load
from pgtopo.observe import snapshot
from pgtopo.postgres import connect, instance
from pgtopo.runtime import gateway, state
from tests.support.docker import cli, wait_for

NAME = "ur-repair"
BROKEN = "          CREATE TABLE broken (x no_such_type);\n"
TOPOLOGY = f"""
name: {NAME}
regions: {{r1: {{}}, r2: {{}}}}
latency:
  - {{between: [r1, r2], rtt_ms: 10}}
clusters:
  main:
    databases:
      shop:
        schema: |
          CREATE TABLE items (id bigint PRIMARY KEY, name text NOT NULL);
{BROKEN}    nodes:
      pg-a: {{region: r1, role: primary}}
      pg-b:
        region: r2
        upstream: pg-a
        failover_priority: 100
    publications:
      items_pub: {{database: shop, tables: [items]}}
  sub:
    databases:
      shop: {{schema: "CREATE TABLE items (id bigint PRIMARY KEY, name text NOT NULL);"}}
    nodes:
      pg-s: {{region: r2, role: primary}}
    subscriptions:
      items_sub: {{publisher: main, publication: items_pub}}
"""


@pytest.fixture(scope="module")
def path(tmp_path_factory: pytest.TempPathFactory, state_env: Path) -> Iterator[Path]:
    deploy.down(NAME, volumes=True)
    p = tmp_path_factory.mktemp(NAME) / "repair.yaml"
    p.write_text(TOPOLOGY)
    try:
        yield p
    finally:
        deploy.down(NAME, volumes=True)
        assert not gateway.volumes(NAME)


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


def scalar(node: str, query: LiteralString, db: str = "shop", params: tuple[object, ...] = ()) -> object:
    with connect.connect(NAME, node, dbname=db) as conn:
        row = conn.execute(query, params).fetchone()
    return row[0] if row else None


def insert(node: str, i: int) -> None:
    with connect.connect(NAME, node, dbname="shop") as conn:
        conn.execute("INSERT INTO items VALUES (%s, 'x')", (i,))


def arrives(i: int, *nodes: str) -> None:
    for node in nodes:
        def there(node: str = node) -> bool:
            return scalar(node, "SELECT count(*) FROM items WHERE id = %s", params=(i,)) == 1

        wait_for(there, timeout=60, what=f"row {i} on {node}")


def markers(node: str) -> instance.Markers:
    c = gateway.find(NAME, node)
    assert c is not None
    return instance.markers(c)


def test_a_rerun_repairs_a_failed_schema(path: Path) -> None:
    code, out = cli("up", str(path))
    assert code == 1, out
    assert "node pg-a step 'init.sql'" in out and 'type "no_such_type" does not exist' in out
    # The primary runs, but its setup is not done; its replica and the subscription wait for it.
    a = markers("pg-a")
    assert (a.ready, a.released, a.done) == (True, True, False)
    assert gateway.find(NAME, "pg-b") is None
    # The schema ran in one transaction with pgtopo's own setup: nothing of it is left behind.
    assert scalar("pg-a", "SELECT to_regclass('public.items') IS NULL AND "
                          "NOT EXISTS (SELECT FROM pg_namespace WHERE nspname = 'pgtopo')") is True

    edit(path, BROKEN, "")
    code, out = cli("up", str(path))
    assert code == 0, out
    assert "its setup did not finish in an earlier `up`: running the rest again" in out
    assert markers("pg-a").done
    insert("pg-a", 1)
    arrives(1, "pg-b", "pg-s")
    code, out = cli("up", str(path))
    assert code == 0 and "is already up; nothing changed" in out, out

    # A publisher without its publication fails the subscription at once (not after the copy's timeout).
    with connect.connect(NAME, "pg-s", dbname="shop") as conn:
        conn.execute("DROP SUBSCRIPTION items_sub")
        conn.execute("TRUNCATE items")  # the next subscription copies the rows again
    with connect.connect(NAME, "pg-a", dbname="shop") as conn:
        conn.execute("DROP PUBLICATION items_pub")
    code, out = cli("up", str(path))
    assert code == 1, out
    assert "publication items_pub does not exist on pg-a in database shop" in out
    with connect.connect(NAME, "pg-a", dbname="shop") as conn:
        conn.execute("CREATE PUBLICATION items_pub FOR TABLE items")
    code, out = cli("up", str(path))
    assert code == 0, out
    insert("pg-a", 2)
    arrives(2, "pg-s")


def test_a_setting_postgres_refuses_fails_and_a_fixed_file_mends_the_node(path: Path) -> None:
    edit(path, "        failover_priority: 100\n", "        failover_priority: 100\n        settings:\n"
                                                  "          timezone: Mars/Olympus\n")
    # `validate` checks names, types, units, ranges and enums; a time zone name only the server knows.
    code, out = cli("up", str(path))
    assert code == 1, out
    assert "node pg-b step 'reload configuration'" in out
    assert "timezone = 'Mars/Olympus'" in out and 'invalid value for parameter "TimeZone"' in out
    assert scalar("pg-b", "SHOW timezone", db="postgres") != "Mars/Olympus"  # it kept the old value

    # At its next start PostgreSQL refuses the file: the container stops.
    b = gateway.find(NAME, "pg-b")
    assert b is not None
    gateway.stop(b, timeout=30)
    gateway.start(b)
    wait_for(lambda: gateway.status(b) == "exited", timeout=60, what="pg-b to stop")

    edit(path, "timezone: Mars/Olympus", "work_mem: 8MB")
    code, out = cli("up", str(path))
    assert code == 0, out
    assert "configuration changed in the file: installing it and starting the container" in out
    assert scalar("pg-b", "SHOW work_mem", db="postgres") == "8MB"
    insert("pg-a", 3)
    arrives(3, "pg-b")


def test_down_then_up_starts_every_node_on_its_data(path: Path) -> None:
    code, out = cli("down", str(path))
    assert code == 0, out
    assert not gateway.containers(NAME) and len(gateway.volumes(NAME)) == 3
    code, out = cli("up", str(path))
    assert code == 0, out
    assert "initdb" not in out and "pg_basebackup" not in out
    assert out.count("starting on the data its volume kept") == 3
    assert {n: scalar(n, "SELECT count(*) FROM items") for n in ("pg-a", "pg-b", "pg-s")} == {
        "pg-a": 3, "pg-b": 3, "pg-s": 3}
    insert("pg-a", 4)
    arrives(4, "pg-b", "pg-s")


def test_after_a_failover_down_then_up_keeps_the_promoted_primary(path: Path) -> None:
    topo = load(path)

    def slot_synced() -> bool:
        return bool(scalar("pg-b", "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'items_sub' "
                                   "AND synced AND NOT temporary", db="postgres"))

    wait_for(slot_synced, timeout=90, what="the failover slot synced to pg-b")
    assert cli("kill", str(path), "pg-a")[0] == 0
    code, out = cli("failover", str(path), "--yes")
    assert code == 0, out
    assert state.current_primaries(topo)["main"] == "pg-b"
    insert("pg-b", 5)
    arrives(5, "pg-s")

    assert cli("down", str(path))[0] == 0
    code, out = cli("up", str(path))
    assert code == 0, out
    # The failover's loss measurement took its start signal away; without it, pgtopo would see a
    # primary's data on a node that is not the primary, and leave it down all the same.
    assert "pg-a         left alone:" in out and "`pgtopo rejoin FILE pg-a` brings it back" in out
    snap = snapshot.collect(topo)
    assert snap.writable("main") == ["pg-b"]
    assert not snap.nodes["pg-a"].reachable
    insert("pg-b", 6)
    arrives(6, "pg-s")

    code, out = cli("rejoin", str(path), "pg-a")
    assert code == 0, out
    arrives(6, "pg-a")
    assert snapshot.collect(topo).nodes["pg-a"].upstream == "pg-b"

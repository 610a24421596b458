"""A new subscription's initial copy: skipped by `up` when every table is empty in its slot's
snapshot, run as the file says when a table has rows (and after an interrupted `up` left the slot,
whether the file asks for a copy or not);
a CREATE SUBSCRIPTION that fails after pgtopo made the slot leaves no slot behind.

How each path is told apart: a table the initial copy synchronised has the LSN where its
table-sync worker handed over in ``pg_subscription_rel.srsublsn``, and the subscriber logs that
worker; a table of a subscription created with ``copy_data = false`` has neither. Each test checks
both, on the path it expects and on the other.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pgtopo.errors import OperationFailed
from pgtopo.lifecycle import deploy
from pgtopo.model.loader import load
from pgtopo.postgres import connect, instance
from pgtopo.runtime import gateway
from tests.support.docker import up_from_text, wait_for

if TYPE_CHECKING:
    from docker.models.containers import Container

TOPOLOGY = """\
name: {name}
postgres: {{version: 17}}
regions:
  us-east: {{}}
  ap-south: {{}}
latency:
  - {{between: [us-east, ap-south], rtt_ms: 100}}
clusters:
  main:
    databases:
      production:
        schema: |
          CREATE TABLE products (id bigint PRIMARY KEY, sku text NOT NULL);
          {seed}
    nodes:
      pg-us: {{region: us-east, role: primary}}
{replica}    publications:
      inventory_pub: {{database: production, tables: [products]}}
  billing:
    databases:
      production:
        schema: |
          CREATE TABLE products (id bigint PRIMARY KEY, sku text NOT NULL);
    nodes:
      pg-billing: {{region: ap-south, role: primary}}
    subscriptions:
      inventory_sub: {{publisher: main, publication: inventory_pub}}
"""
SYNC_LOG = 'table synchronization worker for subscription "inventory_sub"'


def one(topology: str, node: str, query: str) -> object:
    with connect.connect(topology, node, dbname="production") as conn:
        row = conn.execute(query).fetchone()
        return row[0] if row else None


def rels(topology: str) -> list[tuple[str, str, bool]]:
    """Each table of inventory_sub on pg-billing: name, state, whether a table-sync set its LSN."""
    with connect.connect(topology, "pg-billing", dbname="production") as conn:
        return [(str(r[0]), str(r[1]), bool(r[2])) for r in conn.execute(
            "SELECT r.srrelid::regclass::text, r.srsubstate, r.srsublsn IS NOT NULL FROM pg_subscription_rel r "
            "JOIN pg_subscription s ON s.oid = r.srsubid WHERE s.subname = 'inventory_sub' ORDER BY 1").fetchall()]


def billing_log(topology: str) -> str:
    c = gateway.find(topology, "pg-billing")
    assert c is not None
    return str(c.logs().decode(errors="replace"))


def slot(topology: str) -> tuple[object, ...] | None:
    with connect.connect(topology, "pg-us", dbname="production") as conn:
        row = conn.execute("SELECT active, failover, two_phase, plugin FROM pg_replication_slots "
                           "WHERE slot_name = 'inventory_sub'").fetchone()
        return tuple(row) if row else None


def billing_ids(topology: str) -> set[int]:
    with connect.connect(topology, "pg-billing", dbname="production") as conn:
        return {int(str(r[0])) for r in conn.execute("SELECT id FROM products").fetchall()}


def test_empty_publisher_skips_the_copy_and_streams(tmp_path: Path, state_dir: Path) -> None:
    name = "sf-copy-skip"
    replica = "      pg-us2: {region: us-east, upstream: pg-us}\n"
    text = TOPOLOGY.format(name=name, seed="", replica=replica)
    with up_from_text(tmp_path, text) as (_topo, path):
        # The fast path: no table-sync worker ran, both tables were ready from the start, and the
        # apply worker streams from the slot pgtopo made, with the subscription's options.
        assert rels(name) == [("pgtopo.probe", "r", False), ("products", "r", False)]
        assert SYNC_LOG not in billing_log(name)
        assert slot(name) == (True, True, False, "pgoutput")  # failover: the publisher has a replica
        assert one(name, "pg-billing", "SELECT subslotname FROM pg_subscription") == "inventory_sub"

        # Rows written after `up` arrive (decoded from the slot, applied by the apply worker).
        with connect.connect(name, "pg-us", dbname="production") as conn:
            conn.execute("INSERT INTO products SELECT g, 'after-' || g FROM generate_series(1, 50) g")
        wait_for(lambda: billing_ids(name) == set(range(1, 51)), what="the 50 rows on pg-billing")

        # A slot left unused by an interrupted `up` (its subscription never created): the next
        # `up` drops it instead of failing on its name; the publisher now has rows, so it copies.
        with connect.connect(name, "pg-billing", dbname="production") as conn:
            conn.execute("ALTER SUBSCRIPTION inventory_sub DISABLE")
            conn.execute("ALTER SUBSCRIPTION inventory_sub SET (slot_name = NONE)")
            conn.execute("DROP SUBSCRIPTION inventory_sub")
            conn.execute("TRUNCATE products")
        wait_for(lambda: slot(name) is not None and slot(name)[0] is False,  # type: ignore[index]
                 what="the slot left inactive")
        said: list[str] = []
        deploy.up(load(path), topo_path=path, progress=lambda s, m: said.append(f"{s}: {m}"))
        assert "pg-us: dropped slot inventory_sub, left unused by an interrupted `up`" in said
        assert "pg-us: slot inventory_sub not kept, the initial copy runs: public.products has rows" in said
        assert billing_ids(name) == set(range(1, 51))  # copied before `up` returned
        assert [(t, s, lsn) for t, s, lsn in rels(name) if t == "products"] == [("products", "r", True)]
        assert SYNC_LOG in billing_log(name)
        assert slot(name) == (True, True, False, "pgoutput")


def test_rows_on_the_publisher_are_copied_before_up_returns(tmp_path: Path, state_dir: Path) -> None:
    name = "sf-copy-rows"
    rows = 3
    seed = f"INSERT INTO products SELECT g, 'seed-' || g FROM generate_series(1, {rows}) g;"
    with up_from_text(tmp_path, TOPOLOGY.format(name=name, seed=seed, replica="")) as (_topo, path):
        # The fallback: every seeded row is on the subscriber when `up` returns, copied by a
        # table-sync worker (its LSN recorded, its start logged); the probe table, empty, too.
        assert billing_ids(name) == set(range(1, rows + 1))
        assert rels(name) == [("pgtopo.probe", "r", True), ("products", "r", True)]
        assert SYNC_LOG in billing_log(name)
        assert slot(name) == (True, False, False, "pgoutput")  # no replica: no failover slot
        with connect.connect(name, "pg-us", dbname="production") as conn:
            conn.execute("INSERT INTO products VALUES (1000, 'after')")
        wait_for(lambda: 1000 in billing_ids(name), what="the row written after `up` on pg-billing")

        # A slot left unused by an interrupted `up`, and the file changed meanwhile to ask for no
        # copy: CREATE SUBSCRIPTION would make its own slot and fail on the name; `up` drops the
        # unused one first, and the subscription (no copy, no table-sync) streams.
        with connect.connect(name, "pg-billing", dbname="production") as conn:
            conn.execute("ALTER SUBSCRIPTION inventory_sub DISABLE")
            conn.execute("ALTER SUBSCRIPTION inventory_sub SET (slot_name = NONE)")
            conn.execute("DROP SUBSCRIPTION inventory_sub")
        wait_for(lambda: slot(name) is not None and slot(name)[0] is False,  # type: ignore[index]
                 what="the slot left inactive")
        path.write_text(path.read_text().replace("publication: inventory_pub}",
                                                 "publication: inventory_pub, copy_data: false}"))
        said: list[str] = []
        deploy.up(load(path), topo_path=path, progress=lambda s, m: said.append(f"{s}: {m}"))
        assert "pg-us: dropped slot inventory_sub, left unused by an interrupted `up`" in said
        assert [(t, s, lsn) for t, s, lsn in rels(name) if t == "products"] == [("products", "r", False)]
        assert slot(name) == (True, False, False, "pgoutput")
        with connect.connect(name, "pg-us", dbname="production") as conn:
            conn.execute("INSERT INTO products VALUES (2000, 'after the change')")
        wait_for(lambda: 2000 in billing_ids(name), what="the row written after the second `up` on pg-billing")


def test_a_failed_create_subscription_leaves_no_slot(tmp_path: Path, state_dir: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    name = "sf-copy-fail"
    path = tmp_path / "topology.yaml"
    path.write_text(TOPOLOGY.format(name=name, seed="", replica=""))
    topo = load(path)
    deploy.down(name, volumes=True)
    real = instance.psql

    def refusing(c: Container, query: str, **kw: Any) -> str:
        if query.startswith("CREATE SUBSCRIPTION"):
            # What pgtopo ran: the statement on its own slot (the fast path was taken).
            assert "create_slot = false, slot_name = 'inventory_sub'" in query, query
            assert slot(name) == (False, False, False, "pgoutput")  # pgtopo's, unused so far
            raise OperationFailed("refused for the test", node="pg-billing", step=kw.get("step", ""))
        return real(c, query, **kw)

    try:
        with monkeypatch.context() as mp:
            mp.setattr(instance, "psql", refusing)
            with pytest.raises(OperationFailed, match="refused for the test"):
                deploy.up(topo, topo_path=path, progress=lambda s, m: None)
        # The subscription does not exist, so its slot would only keep WAL: pgtopo dropped it.
        assert slot(name) is None
        # The next `up` creates the subscription (on a new slot of pgtopo's) and it streams.
        deploy.up(topo, topo_path=path, progress=lambda s, m: None)
        assert rels(name) == [("pgtopo.probe", "r", False), ("products", "r", False)]
        assert slot(name) == (True, False, False, "pgoutput")
        with connect.connect(name, "pg-us", dbname="production") as conn:
            conn.execute("INSERT INTO products VALUES (7, 'after')")
        wait_for(lambda: billing_ids(name) == {7}, what="the row on pg-billing")
    finally:
        deploy.down(name, volumes=True)

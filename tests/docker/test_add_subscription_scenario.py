"""One scenario, in file order: add-subscription and remove-subscription on real containers.

The tests share one topology (``t-addsub``, a copy of global-saas.yaml with 100 products and
1000 orders; module-scoped: bringing it up is expensive) and build on each other:
1. ``--dry-run`` prints the SQL and the file's diff and changes nothing;
2. every refusal changes nothing (objects made by hand are cleaned up afterwards);
3. orders to billing: creates ``orders_pg_billing_sub``, the second channel between main and billing;
4. a new region (sa-east) and cluster (pg-sa) added to the file and brought up; a filtered
   channel ``recent_orders_pg_sa_sub`` to it;
5. a failed initial copy to pg-sa is undone entirely;
6. removing inventory_sub hands the probe publication over to the channel of step 3, which is
   then removed too;
7. removing the channel of step 4 while pg-sa is cut off from pg-us names the slot left behind.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from pgtopo.cli.main import app
from pgtopo.lifecycle import deploy
from pgtopo.model.loader import load
from pgtopo.postgres import connect
from tests.support.docker import running, wait_for

pytestmark = pytest.mark.docker

NAME = "t-addsub"
ORDERS = 1000


def rows(node: str, query: str, params: tuple[Any, ...] = (), db: str = "production") -> list[tuple[Any, ...]]:
    with connect.connect(NAME, node, dbname=db) as conn:
        cur = conn.execute(query.encode(), params or None)
        return cur.fetchall() if cur.description else []


def count(node: str, query: str, db: str = "production") -> int:
    return int(rows(node, query, db=db)[0][0])


def run(*args: str) -> tuple[int, str]:
    """Exit code and output (stdout and stderr, interleaved)."""
    res = CliRunner().invoke(app, list(args))
    return res.exit_code, res.output


def run_stdout(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(app, list(args))
    return res.exit_code, res.stdout


def objects(*subscribers: str) -> dict[str, list[Any]]:
    """Everything add-subscription could create: publications and slots on the publisher,
    subscriptions and tables on the subscribers."""
    out: dict[str, list[Any]] = {
        "publications": rows("pg-us", "SELECT pubname FROM pg_publication ORDER BY 1"),
        "publication tables": rows("pg-us", "SELECT pubname, tablename FROM pg_publication_tables ORDER BY 1, 2"),
        "slots": rows("pg-us", "SELECT slot_name FROM pg_replication_slots ORDER BY 1"),
    }
    for node in subscribers:
        out[f"{node} subscriptions"] = rows(node, "SELECT subname FROM pg_subscription ORDER BY 1")
        out[f"{node} tables"] = rows(node, "SELECT table_schema, table_name FROM information_schema.tables "
                                           "WHERE table_schema IN ('public', 'pgtopo') ORDER BY 1, 2")
    return out


@pytest.fixture(scope="module")
def topo_path(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with running(tmp_path_factory.mktemp("addsub"), "global-saas.yaml", name=NAME) as path:
        with connect.connect(NAME, "pg-us", dbname="production") as conn:
            conn.execute("INSERT INTO products (sku, name, price_cents) "
                         "SELECT 'sku-' || g, 'product ' || g, g FROM generate_series(1, 100) g")
            conn.execute(f"INSERT INTO orders (product_id, quantity) "
                         f"SELECT 1 + g % 100, g FROM generate_series(1, {ORDERS}) g")
        yield path


def test_dry_run_prints_sql_and_diff_and_changes_nothing(topo_path: Path) -> None:
    before, text = objects("pg-billing"), topo_path.read_bytes()
    code, out = run_stdout("add-subscription", str(topo_path), "--subscriber", "pg-billing", "--publisher", "pg-us",
                           "--tables", "orders", "--dry-run")
    assert code == 0, out
    lines = out.splitlines()
    assert lines[:3] == ["-- on pg-us, database production:", "-- create publication orders_pub",
                         'CREATE PUBLICATION "orders_pub" FOR TABLE "orders";']
    assert "-- on pg-billing, database production:" in lines
    assert 'CREATE TABLE "orders" (' in lines
    assert any(line.startswith('CREATE SUBSCRIPTION "orders_pg_billing_sub" CONNECTION \'host=pgtopo-relay port=')
               and line.endswith('PUBLICATION "orders_pub" WITH (copy_data = true, failover = true);') for line in lines)
    assert f"+++ {topo_path} (edited)" in lines
    assert "+      orders_pg_billing_sub:" in lines
    assert "dry run: nothing changed" in out
    assert objects("pg-billing") == before
    assert topo_path.read_bytes() == text


def test_refusals_change_nothing(topo_path: Path) -> None:
    # Things a user may have made by hand, that add-subscription must not trip over or touch.
    rows("pg-us", "CREATE TABLE public.audit (id bigint PRIMARY KEY, what text); "
                  "CREATE PUBLICATION stray_pub FOR TABLE public.audit")
    rows("pg-billing", "CREATE SUBSCRIPTION handmade_sub CONNECTION 'host=nowhere' PUBLICATION x WITH (connect = false)")
    rows("pg-billing", "CREATE TABLE public.orders (id bigint PRIMARY KEY, product_id bigint, quantity text, created_at "
                       "timestamptz)")
    before, text = objects("pg-billing"), topo_path.read_bytes()
    base = ["add-subscription", str(topo_path), "--subscriber", "pg-billing", "--publisher", "pg-us"]
    cases = [
        ([*base, "--tables", "nope"], "--tables: unknown table 'nope' in database 'production' on pg-us"),
        ([*base, "--tables", "products", "--publication", "p2_pub", "--columns", "products:id,nope"],
         "--columns: table 'products' on pg-us has no column 'nope'"),
        ([*base, "--tables", "audit"], "the edited file would not be valid: clusters.main.publications.audit_pub.tables.0: "
                                       "table 'audit' is not created by the schema of 'production'"),
        ([*base, "--tables", "audit", "--publication", "stray_pub"],
         f"--publication: 'stray_pub' already exists on pg-us but not in {topo_path}: add it to the file, or choose "
         "another name"),
        ([*base, "--tables", "products", "--publication", "p2_pub", "--name", "handmade_sub"],
         "--name: a subscription 'handmade_sub' already exists on pg-billing"),
        ([*base, "--tables", "orders"], "table 'orders' on pg-billing cannot receive publication 'orders_pub' of pg-us: "
                                        "column 'quantity' is text there but integer on the publisher"),
        ([*base, "--tables", "products", "--publication", "p2_pub", "--row-filter", "products:price_cents >"],
         "pg-us: create publication p2_pub: syntax error at or near \")\""),
        ([*base, "--tables", "products", "--publication", "p2_pub", "--row-filter", "products:price_cents > 10"],
         "publishing table 'products' in 'p2_pub' would make UPDATE and DELETE on it fail on pg-us: cannot delete from "
         "table \"products\" (Column used in the publication WHERE expression is not part of the replica identity.)"),
        ([*base, "--tables", "products", "--publication", "p2_pub", "--columns", "products:sku,name"],
         "table 'products' on pg-billing cannot receive publication 'p2_pub' of pg-us: column 'id' is NOT NULL without "
         "a default and is not published"),
    ]
    for args, message in cases:
        for dry in ([], ["--dry-run"]):
            code, out = run(*args, *dry)
            assert (code, out.splitlines()) == (2, [f"error: {message}"]), args
            assert topo_path.read_bytes() == text
            assert objects("pg-billing") == before
    assert [p.name for p in topo_path.parent.iterdir() if p.name.startswith(".")] == []

    rows("pg-billing", "ALTER SUBSCRIPTION handmade_sub SET (slot_name = NONE)")
    rows("pg-billing", "DROP SUBSCRIPTION handmade_sub")
    rows("pg-billing", "DROP TABLE public.orders")
    rows("pg-us", "DROP PUBLICATION stray_pub; DROP TABLE public.audit")


def test_add_orders_to_billing(topo_path: Path) -> None:
    code, out = run("add-subscription", str(topo_path), "--subscriber", "pg-billing", "--publisher", "pg-us",
                    "--tables", "orders")
    assert code == 0, out
    print(out)
    assert re.search(rf"│ orders\s+│ {ORDERS}\s+│", out), out
    assert re.search(r"orders_pg_billing_sub on pg-billing \(database production\) receives publication orders_pub "
                     r"\(created\) from pg-us: 1 table ready in [0-9.]+ s, failover slot; .* updated", out), out
    assert count("pg-billing", "SELECT count(*) FROM orders") == ORDERS
    assert rows("pg-billing", "SELECT sum(quantity), max(id) FROM orders") == \
        rows("pg-us", "SELECT sum(quantity), max(id) FROM orders")

    # Later writes arrive, through the relay (200 ms round trip).
    rows("pg-us", "INSERT INTO orders (product_id, quantity) SELECT 1, 7 FROM generate_series(1, 25)")
    wait_for(lambda: count("pg-billing", "SELECT count(*) FROM orders") == ORDERS + 25, timeout=20,
             what="new orders on pg-billing")

    # A failover slot; the first channel between the two databases keeps the probe publication.
    assert rows("pg-us", "SELECT failover FROM pg_replication_slots WHERE slot_name = 'orders_pg_billing_sub'") == [(True,)]
    assert rows("pg-billing", "SELECT subpublications FROM pg_subscription WHERE subname = 'orders_pg_billing_sub'") == \
        [(["orders_pub"],)]

    # The file records the channel; a later `up` neither undoes nor duplicates it.
    topo = load(topo_path)
    assert topo.clusters["billing"].subscriptions["orders_pg_billing_sub"].publication == "orders_pub"
    assert [t.name for t in topo.clusters["main"].publications["orders_pub"].table_list()] == ["orders"]
    assert 'CREATE TABLE "orders"' in (topo.clusters["billing"].databases["production"].schema_sql or "")
    before = objects("pg-billing")
    result = deploy.up(topo, topo_path=topo_path, progress=lambda _s, _m: None)
    assert not result.created_any
    assert objects("pg-billing") == before
    code, out = run("verify", str(topo_path))
    assert code == 0, out
    assert re.search(r"PASS\s+subscription\s+orders_pg_billing_sub", out), out


SA = """\
  - between: [eu-west, ap-south]
    rtt_ms: 120
  - between: [sa-east, us-east]
    rtt_ms: 120
  - between: [sa-east, eu-west]
    rtt_ms: 190
  - between: [sa-east, ap-south]
    rtt_ms: 300
"""
ANALYTICS = """
  # Added by the test: a cluster in a new region, with a database and no schema yet.
  analytics:
    databases:
      production: {}
    nodes:
      pg-sa:
        region: sa-east
        role: primary
"""


def test_add_channel_to_a_new_node_in_a_new_region(topo_path: Path) -> None:
    text = topo_path.read_text()
    text = text.replace("  ap-south: {}\n", "  ap-south: {}\n  sa-east: {}\n")
    text = text.replace("  - between: [eu-west, ap-south]\n    rtt_ms: 120\n", SA)
    topo_path.write_text(text + ANALYTICS)
    result = deploy.up(load(topo_path), topo_path=topo_path, progress=lambda _s, _m: None)
    assert [s.node for s in result.summaries if s.created] == ["pg-sa"]

    code, out = run("add-subscription", str(topo_path), "--subscriber", "pg-sa", "--publisher", "pg-us",
                    "--tables", "orders", "--publication", "recent_orders_pub", "--row-filter", "orders:id > 500")
    assert code == 0, out
    print(out)
    expected = count("pg-us", "SELECT count(*) FROM orders WHERE id > 500")
    assert re.search(rf"│ orders\s+│ {expected}\s+│", out), out
    assert count("pg-sa", "SELECT count(*) FROM orders") == expected
    info = rows("pg-sa", "SELECT subconninfo, subpublications, subfailover FROM pg_subscription")
    assert len(info) == 1 and "host=pgtopo-relay" in info[0][0] and info[0][1:] == (["recent_orders_pub", "pgtopo_probe"], True)

    rows("pg-us", "INSERT INTO orders (product_id, quantity) SELECT 2, 3 FROM generate_series(1, 10)")
    wait_for(lambda: count("pg-sa", "SELECT count(*) FROM orders") == expected + 10, timeout=20,
             what="new orders on pg-sa")

    topo = load(topo_path)
    assert topo.clusters["analytics"].subscriptions["recent_orders_pg_sa_sub"].publication == "recent_orders_pub"
    assert topo.clusters["main"].publications["recent_orders_pub"].table_list()[0].where == "id > 500"
    assert "# Added by the test: a cluster in a new region" in topo_path.read_text()
    assert not deploy.up(topo, topo_path=topo_path, progress=lambda _s, _m: None).created_any


def test_failed_initial_copy_is_undone(topo_path: Path) -> None:
    # pg-sa already holds a products row with an id the publisher also has: the copy cannot finish.
    rows("pg-sa", "CREATE TABLE public.products (id bigint PRIMARY KEY, sku text NOT NULL, name text NOT NULL, "
                  "price_cents integer NOT NULL, stock integer NOT NULL, updated_at timestamptz NOT NULL)")
    rows("pg-sa", "INSERT INTO public.products VALUES (7, 'mine', 'mine', 1, 1, now())")
    before, text = objects("pg-sa"), topo_path.read_bytes()
    code, out = run("add-subscription", str(topo_path), "--subscriber", "pg-sa", "--publisher", "pg-us",
                    "--tables", "products", "--publication", "catalog_pub")
    assert code == 1, out
    assert "error: node pg-sa step 'initial copy of catalog_pg_sa_sub': 3 table copy and 0 apply errors" in out
    assert 'duplicate key value violates unique constraint "products_pkey"' in out
    assert "undone: create subscription catalog_pg_sa_sub, create publication catalog_pub" in out
    assert objects("pg-sa") == before
    assert topo_path.read_bytes() == text
    rows("pg-sa", "DROP TABLE public.products")


def test_remove_subscription_leaves_no_slot(topo_path: Path) -> None:
    sync_slots = "SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE 'pg\\_%\\_sync\\_%'"
    before, text = objects("pg-billing"), topo_path.read_bytes()
    code, out = run_stdout("remove-subscription", str(topo_path), "inventory_sub", "--dry-run")
    assert code == 0, out
    assert out.splitlines()[:5] == [
        "-- on pg-billing, database production:",
        "-- drop subscription inventory_sub",
        'DROP SUBSCRIPTION "inventory_sub";',
        "-- let orders_pg_billing_sub carry the probe publication from now on",
        'ALTER SUBSCRIPTION "orders_pg_billing_sub" ADD PUBLICATION "pgtopo_probe" WITH (copy_data = false);',
    ]
    assert "-      inventory_sub:" in out.splitlines()
    assert (objects("pg-billing"), topo_path.read_bytes()) == (before, text)

    # The probe carrier goes: the other channel between the same two databases takes the probes over.
    code, out = run("remove-subscription", str(topo_path), "inventory_sub")
    assert code == 0, out
    assert "subscription inventory_sub dropped on pg-billing; no slot left on pg-us" in out
    assert count("pg-us", "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'inventory_sub'") == 0
    assert count("pg-us", sync_slots) == 0
    assert rows("pg-billing", "SELECT subname, subpublications FROM pg_subscription") == \
        [("orders_pg_billing_sub", ["orders_pub", "pgtopo_probe"])]
    # `up` re-created the relay when sa-east was added: the channel's reconnect counted as an
    # apply error, which verify reports. Start its statistics afresh to look at the probes only.
    rows("pg-billing", "SELECT pg_stat_reset_subscription_stats(NULL)")
    code, out = run("verify", str(topo_path))
    assert code == 0, out
    assert re.search(r"PASS\s+edge\s+pg-us -> pg-billing .*orders_pg_billing_sub", out), out

    code, out = run("remove-subscription", str(topo_path), "orders_pg_billing_sub")
    assert code == 0, out
    assert "subscription orders_pg_billing_sub dropped on pg-billing; no slot left on pg-us" in out
    assert count("pg-us", "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'orders_pg_billing_sub'") == 0
    assert count("pg-us", sync_slots) == 0
    assert rows("pg-billing", "SELECT subname FROM pg_subscription") == []
    topo = load(topo_path)
    assert topo.clusters["billing"].subscriptions == {}
    assert "subscriptions:" not in topo_path.read_text().split("  billing:")[1].split("  analytics:")[0]
    # `up` does not bring either back.
    assert not deploy.up(topo, topo_path=topo_path, progress=lambda _s, _m: None).created_any
    assert rows("pg-billing", "SELECT subname FROM pg_subscription") == []


def test_remove_subscription_with_the_publisher_cut_off(topo_path: Path) -> None:
    code, out = run("partition", str(topo_path), "pg-sa")
    assert code == 0, out
    try:
        code, out = run("remove-subscription", str(topo_path), "recent_orders_pg_sa_sub")
    finally:
        assert run("heal", str(topo_path))[0] == 0
    assert code == 0, out
    assert ("pg-us could not be reached: its replication slot recent_orders_pg_sa_sub is still there and keeps WAL; "
            "once it is back, drop it by hand with SELECT pg_drop_replication_slot('recent_orders_pg_sa_sub')") in out
    assert rows("pg-sa", "SELECT subname FROM pg_subscription") == []
    assert "recent_orders_pg_sa_sub" not in load(topo_path).clusters["analytics"].subscriptions
    # The slot the user is told about is the one left; dropping it as told leaves none.
    wait_for(lambda: rows("pg-us", "SELECT active FROM pg_replication_slots WHERE slot_name = "
                                   "'recent_orders_pg_sa_sub'") == [(False,)], timeout=20, what="the walsender to go")
    rows("pg-us", "SELECT pg_drop_replication_slot('recent_orders_pg_sa_sub')")
    assert count("pg-us", "SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE 'recent%'") == 0

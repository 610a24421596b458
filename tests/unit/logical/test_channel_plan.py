"""`channel_plan.decide`: the plan of a new logical replication channel on a frozen snapshot, no database.

The intent comes from ``channel_request.read_intent`` on global-saas (pure as well); the snapshot
is what ``channels.read_snapshot`` would read from pg-us and pg-billing, written by hand.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from pgtopo.errors import InputError
from pgtopo.logical import channel_plan as P
from pgtopo.logical.channel_plan import Column, Step, Table
from pgtopo.logical.channel_request import AddRequest, Intent, read_intent
from pgtopo.model import render
from pgtopo.model.loader import load
from pgtopo.model.topology import Topology
from tests.support.global_saas import FILE_PRIMARIES, GLOBAL
from tests.support.topologies import GLOBAL_SAAS

TEXT = GLOBAL_SAAS.read_text()
BILLING_SCHEMA = GLOBAL.clusters["billing"].databases["production"].schema_sql

ORDERS = Table(name="orders", primary_key=("id",), rows=1000, columns=(
    Column("id", "bigint", not_null=True, has_default=True),
    Column("product_id", "bigint", not_null=True),
    Column("quantity", "integer", not_null=True),
    Column("created_at", "timestamp with time zone", not_null=True, has_default=True),
))
ORDERS_DDL = ('CREATE TABLE "orders" (\n    "id" bigint NOT NULL,\n    "product_id" bigint NOT NULL,\n'
              '    "quantity" integer NOT NULL,\n    "created_at" timestamp with time zone NOT NULL,\n'
              '    PRIMARY KEY ("id")\n)')
PRODUCT_COLUMNS = ("id", "sku", "name", "price_cents", "stock", "updated_at")
PRODUCTS = Table(name="products", primary_key=("id",), columns=tuple(
    Column(c, t, not_null=True, has_default=c in ("id", "stock", "updated_at"))
    for c, t in zip(PRODUCT_COLUMNS, ("bigint", "text", "text", "integer", "integer", "timestamp with time zone"),
                    strict=True)))
# billing's own products table (its schema in global-saas.yaml): no identity, no default on updated_at.
BILLING_PRODUCTS = dataclasses.replace(PRODUCTS, rows=100, columns=tuple(
    dataclasses.replace(c, has_default=c.name == "stock") for c in PRODUCTS.columns))


def snap(**kw: Any) -> P.ChannelState:
    """pg-us and pg-billing as global-saas runs them: no orders_pub yet, orders not on billing."""
    base: dict[str, Any] = dict(
        publisher_in_recovery=False, wal_level="logical", standby_slots="pg_eu", publication=None,
        publisher_tables={"orders": ORDERS, "products": PRODUCTS}, probe_publication=True, publisher_probe_table=True,
        slot_exists=False, subscriber_in_recovery=False, subscriber_tables={"products": BILLING_PRODUCTS},
        subscription_exists=False, subscriber_probe_table=True)
    base.update(kw)
    return P.ChannelState(**base)


def intent(topo: Topology = GLOBAL, path: Path = GLOBAL_SAAS, **req: Any) -> Intent:
    """What `add-subscription --subscriber pg-billing --publisher pg-us --tables orders` asks for, unless told."""
    args: dict[str, Any] = {"subscriber": "pg-billing", "publisher": "pg-us", "tables": ("orders",)}
    args.update(req)
    return read_intent(topo, AddRequest(**args), primaries=FILE_PRIMARIES, path=path)


def decide(i: Intent, s: P.ChannelState, *, topo: Topology = GLOBAL, path: Path = GLOBAL_SAAS, text: str = TEXT,
           schema: str | None = BILLING_SCHEMA) -> P.AddPlan:
    return P.decide(topo, intent=i, snap=s, path=path, text=text, subscriber_schema=schema)


def refusal(i: Intent, s: P.ChannelState, **kw: Any) -> str:
    with pytest.raises(InputError) as exc:
        decide(i, s, **kw)
    assert exc.value.exit_code == 2
    return exc.value.message


def edited(tmp_path: Path, plan: P.AddPlan) -> Topology:
    """The topology the plan's edit of the file describes (loaded: every rule applies)."""
    path = tmp_path / "edited.yaml"
    path.write_text(plan.new_text)
    return load(path)


# -- a new publication ------------------------------------------------------------------------------

def test_a_new_table_gets_a_new_publication_a_table_and_a_file_edit(tmp_path: Path) -> None:
    i = intent()
    assert (i.mode, i.publication, i.name, i.failover) == ("create", "orders_pub", "orders_pg_billing_sub", True)
    plan = decide(i, snap())
    assert plan.publisher_steps == [Step(
        node="pg-us", database="production", what="create publication orders_pub",
        statement='CREATE PUBLICATION "orders_pub" FOR TABLE "orders"', undo='DROP PUBLICATION "orders_pub"')]
    assert plan.checks == [("orders", 'EXPLAIN DELETE FROM "orders"')]
    assert plan.subscriber_steps == [Step(
        node="pg-billing", database="production", what="create table orders", role="app",
        statement=f'{ORDERS_DDL};\nGRANT SELECT ON "orders" TO replicator', undo='DROP TABLE "orders"')]
    assert (plan.tables, plan.rows_before, plan.warnings) == (["orders"], {}, [])
    assert (plan.subscribe, plan.probe) == (None, True)  # set later, from the edited file

    after = edited(tmp_path, plan)
    sub = after.clusters["billing"].subscriptions["orders_pg_billing_sub"]
    assert (sub.publisher, sub.publication, sub.database, sub.failover) == ("main", "orders_pub", None, True)
    assert [t.name for t in after.clusters["main"].publications["orders_pub"].table_list()] == ["orders"]
    # The subscriber's schema in the file creates the table too: a fresh `up` can create the channel.
    assert f"{ORDERS_DDL};" in (after.clusters["billing"].databases["production"].schema_sql or "")
    assert plan.new_text.startswith("# The reference multi-region design")  # comments kept
    assert plan.diff.startswith(f"--- {GLOBAL_SAAS}\n+++ {GLOBAL_SAAS} (edited)\n")


def test_a_failover_slot_without_synchronized_standby_slots_is_a_warning() -> None:
    plan = decide(intent(), snap(standby_slots=""))
    assert plan.warnings == [
        "pg-us has no synchronized_standby_slots: its standbys may lag behind the failover slot 'orders_pg_billing_sub', "
        "which a failover would then lose"]
    # No failover slot (a publisher without standbys, or PostgreSQL 16): nothing to lose.
    for failover in (False, None):
        assert decide(dataclasses.replace(intent(), failover=failover), snap(standby_slots="")).warnings == []


def test_replicator_is_granted_read_access_before_the_publication() -> None:
    unreadable = dataclasses.replace(ORDERS, replicator_reads=False)
    plan = decide(intent(), snap(publisher_tables={"orders": unreadable}))
    assert [(s.what, s.statement, s.undo) for s in plan.publisher_steps] == [
        ("let replicator read orders (the initial copy reads it)", 'GRANT SELECT ON "orders" TO replicator',
         'REVOKE SELECT ON "orders" FROM replicator'),
        ("create publication orders_pub", 'CREATE PUBLICATION "orders_pub" FOR TABLE "orders"',
         'DROP PUBLICATION "orders_pub"'),
    ]


def test_missing_probe_objects_are_created_first() -> None:
    probe_table = ('CREATE SCHEMA IF NOT EXISTS "pgtopo" AUTHORIZATION pgtopo; CREATE TABLE "pgtopo"."probe" '
                   "(id bigint PRIMARY KEY, origin text NOT NULL, sent_at timestamptz NOT NULL DEFAULT "
                   'clock_timestamp()); GRANT USAGE ON SCHEMA "pgtopo" TO replicator; GRANT SELECT ON '
                   '"pgtopo"."probe" TO replicator')
    plan = decide(intent(), snap(publisher_probe_table=False, probe_publication=False, subscriber_probe_table=False))
    assert [(s.node, s.what, s.statement, s.undo) for s in plan.publisher_steps[:2]] == [
        ("pg-us", "create pgtopo.probe (verify's probe rows)", probe_table, 'DROP TABLE "pgtopo"."probe"'),
        ("pg-us", "create publication pgtopo_probe", 'CREATE PUBLICATION "pgtopo_probe" FOR TABLE "pgtopo"."probe"',
         'DROP PUBLICATION "pgtopo_probe"'),
    ]
    assert plan.publisher_steps[2].what == "create publication orders_pub"
    # The subscriber needs the table (probe rows arrive there), never the publication.
    assert [(s.node, s.what, s.statement) for s in plan.subscriber_steps] == [
        ("pg-billing", "create pgtopo.probe (verify's probe rows)", probe_table),
        ("pg-billing", "create table orders", f'{ORDERS_DDL};\nGRANT SELECT ON "orders" TO replicator')]
    # A probe table without its publication: only the publication is missing.
    plan = decide(intent(), snap(probe_publication=False))
    assert [s.what for s in plan.publisher_steps] == ["create publication pgtopo_probe", "create publication orders_pub"]


def test_row_filter_and_column_list_shape_the_publication_and_the_table() -> None:
    plan = decide(intent(columns=("orders:quantity,product_id",), row_filters=("orders:quantity > 5",)), snap())
    assert plan.publisher_steps[0].statement == (
        'CREATE PUBLICATION "orders_pub" FOR TABLE "orders" ("quantity", "product_id") WHERE (quantity > 5)')
    # Only the published columns, in the table's order; no primary key since id is not published.
    assert plan.subscriber_steps[0].statement == (
        'CREATE TABLE "orders" (\n    "product_id" bigint NOT NULL,\n    "quantity" integer NOT NULL\n);\n'
        'GRANT SELECT ON "orders" TO replicator')


def test_table_ddl_leaves_out_generated_columns_defaults_and_a_partial_primary_key() -> None:
    table = Table(name="line", primary_key=("order_id", "n"), columns=(
        Column("order_id", "bigint", not_null=True),
        Column("n", "integer", not_null=True, has_default=True),
        Column("note", "text", not_null=False),
        Column("total", "numeric(10,2)", not_null=True, generated=True),
    ))
    assert render.q(P.table_ddl(table)) == (
        'CREATE TABLE "line" (\n    "order_id" bigint NOT NULL,\n    "n" integer NOT NULL,\n    "note" text,\n'
        '    PRIMARY KEY ("order_id", "n")\n)')
    assert render.q(P.table_ddl(table, ("order_id", "note", "total"))) == (
        'CREATE TABLE "line" (\n    "order_id" bigint NOT NULL,\n    "note" text\n)')


# -- an existing table on the subscriber ------------------------------------------------------------

def test_a_compatible_table_on_the_subscriber_is_used_as_it_is() -> None:
    there = dataclasses.replace(ORDERS, rows=7, columns=(*ORDERS.columns, Column("note", "text", not_null=False)))
    plan = decide(intent(), snap(subscriber_tables={"orders": there}))
    assert plan.subscriber_steps == []
    assert plan.rows_before == {"orders": 7}  # the copy's count is measured from here
    # The file's schema of billing lacks it: the edit adds it there.
    assert plan.new_text.count('CREATE TABLE "orders"') == 1
    # When the file already creates it, the edit leaves the schema alone.
    plan = decide(intent(), snap(subscriber_tables={"orders": there}),
                  schema=f"{BILLING_SCHEMA}CREATE TABLE orders (id bigint PRIMARY KEY);\n")
    assert 'CREATE TABLE "orders"' not in plan.new_text


@pytest.mark.parametrize(("columns", "why"), [
    ((Column("id", "bigint", True), Column("product_id", "bigint", True), Column("quantity", "text", True),
      Column("created_at", "timestamp with time zone", True)),
     "column 'quantity' is text there but integer on the publisher"),
    ((Column("id", "bigint", True), Column("product_id", "bigint", True),
      Column("created_at", "timestamp with time zone", True)),
     "column 'quantity' (integer) is missing"),
    ((*ORDERS.columns, Column("note", "text", not_null=True)),
     "column 'note' is NOT NULL without a default and is not published"),
])
def test_an_incompatible_table_on_the_subscriber_is_refused(columns: tuple[Column, ...], why: str) -> None:
    there = Table(name="orders", columns=columns)
    assert P.incompatibility(ORDERS, there, columns=tuple(c.name for c in ORDERS.columns)) == why
    assert refusal(intent(), snap(subscriber_tables={"orders": there})) == (
        f"table 'orders' on pg-billing cannot receive publication 'orders_pub' of pg-us: {why}")


def test_unpublished_columns_may_stay_on_the_subscriber_if_they_can_be_left_empty() -> None:
    there = Table(name="orders", columns=(
        *ORDERS.columns,
        Column("note", "text", not_null=False),
        Column("seen", "boolean", not_null=True, has_default=True),
        Column("total", "numeric", not_null=True, generated=True),
    ))
    assert P.incompatibility(ORDERS, there, columns=tuple(c.name for c in ORDERS.columns)) is None
    # A column the publisher lacks is not the subscriber's problem (it is refused earlier).
    ids_only = Table(name="orders", columns=(Column("id", "bigint", not_null=True),))
    assert P.incompatibility(ORDERS, ids_only, columns=("id", "nope")) is None


# -- refusals ---------------------------------------------------------------------------------------

WAL_LEVEL = ("--publisher: pg-us runs with wal_level = replica (cluster 'main' had no publication when it was "
             "created); logical replication needs wal_level = logical, which only a restart applies: add a "
             "publication to the cluster in the file and re-create it (pgtopo down, pgtopo up)")


@pytest.mark.parametrize(("live", "message"), [
    ({"publisher_in_recovery": True}, "--publisher: pg-us is in recovery (a standby), not a primary"),
    ({"subscriber_in_recovery": True}, "--subscriber: pg-billing is in recovery (a standby), not a primary"),
    ({"wal_level": "replica"}, WAL_LEVEL),
    ({"subscription_exists": True}, "--name: a subscription 'orders_pg_billing_sub' already exists on pg-billing"),
    ({"slot_exists": True}, "--name: a replication slot 'orders_pg_billing_sub' already exists on pg-us"),
    ({"publication": {"orders": ()}},
     f"--publication: 'orders_pub' already exists on pg-us but not in {GLOBAL_SAAS}: add it to the file, or choose "
     "another name"),
    ({"publisher_tables": {"products": PRODUCTS}}, "--tables: unknown table 'orders' in database 'production' on pg-us"),
], ids=["publisher standby", "subscriber standby", "wal_level", "subscription", "slot", "publication", "table"])
def test_refusals_of_what_the_databases_hold(live: dict[str, Any], message: str) -> None:
    assert refusal(intent(), snap(**live)) == message


def test_a_column_the_publisher_lacks_is_refused() -> None:
    assert refusal(intent(columns=("orders:id,nope",)), snap()) == "--columns: table 'orders' on pg-us has no column 'nope'"


# -- an existing publication ------------------------------------------------------------------------

def use_inventory() -> Intent:
    i = intent(tables=(), publisher=None, publication="inventory_pub")
    assert (i.mode, i.name, i.new_tables) == ("use", "inventory_pg_billing_sub", ())
    return i


def test_using_a_publication_as_it_is() -> None:
    published = {"products": PRODUCT_COLUMNS, "pgtopo.probe": ("id", "origin", "sent_at")}
    plan = decide(use_inventory(), snap(publication=published))
    assert (plan.publisher_steps, plan.subscriber_steps, plan.checks) == ([], [], [])
    # pgtopo.probe travels with every channel: it is not one of the tables received.
    assert (plan.tables, plan.rows_before) == (["products"], {"products": 100})
    assert "+      inventory_pg_billing_sub:" in plan.diff.splitlines()
    assert "inventory_pub:\n" in plan.new_text and plan.new_text.count("inventory_pub:") == 1


@pytest.mark.parametrize(("published", "message"), [
    (None, f"--publication: 'inventory_pub' is in {GLOBAL_SAAS} but not on pg-us (run pgtopo up)"),
    ({}, "--publication: 'inventory_pub' on pg-us publishes no table"),
    ({"pgtopo.probe": ("id",)}, "--publication: 'inventory_pub' on pg-us publishes no table"),
    ({"products": PRODUCT_COLUMNS, "audit.log": ("id",)},
     "--publication: 'inventory_pub' publishes audit.log; only tables in schema public can be subscribed by pgtopo"),
    ({"products_view": ("id",)},
     "--publication: 'inventory_pub' publishes 'products_view', which is not a plain table in schema public on pg-us"),
], ids=["not live", "empty", "only probe", "other schema", "not a table"])
def test_refusals_of_what_the_publication_holds(published: dict[str, tuple[str, ...]] | None, message: str) -> None:
    assert refusal(use_inventory(), snap(publication=published)) == message


def test_extending_a_publication_nobody_subscribes_to(tmp_path: Path) -> None:
    text = TEXT.replace("    publications:\n", "    publications:\n      catalog_pub:\n        database: production\n"
                                                   "        tables: [products]\n", 1)
    path = tmp_path / "global-saas.yaml"
    path.write_text(text)
    topo = load(path)
    i = intent(topo, path, publication="catalog_pub", row_filters=("orders:quantity > 5",))
    assert (i.mode, i.name) == ("extend", "catalog_pg_billing_sub")
    plan = decide(i, snap(publication={"products": PRODUCT_COLUMNS}), topo=topo, path=path, text=text)
    assert plan.publisher_steps == [Step(
        node="pg-us", database="production", what="add orders to publication catalog_pub",
        statement='ALTER PUBLICATION "catalog_pub" ADD TABLE "orders" WHERE (quantity > 5)',
        undo='ALTER PUBLICATION "catalog_pub" DROP TABLE "orders"')]
    assert plan.checks == [("orders", 'EXPLAIN DELETE FROM "orders"')]  # only the table added
    # The subscription receives what the publication had and what it gets.
    assert (plan.tables, plan.rows_before) == (["orders", "products"], {"products": 100})
    assert [s.what for s in plan.subscriber_steps] == ["create table orders"]
    after = edited(tmp_path, plan)
    assert [(t.name, t.where) for t in after.clusters["main"].publications["catalog_pub"].table_list()] == [
        ("products", None), ("orders", "quantity > 5")]


# -- the subscription itself ------------------------------------------------------------------------

def test_subscription_step_connects_from_the_subscribers_region() -> None:
    i = intent()
    step = P.subscription_step(GLOBAL, i, probe=True)
    info = render.conninfo(host="pgtopo-relay", port=GLOBAL.relay_port("ap-south", "pg-us"), user="replicator",
                           application_name="orders_pg_billing_sub", dbname="production")
    assert step == Step(
        node="pg-billing", database="production", what="create subscription orders_pg_billing_sub",
        statement=f'CREATE SUBSCRIPTION "orders_pg_billing_sub" CONNECTION \'{info}\' PUBLICATION "orders_pub", '
                  '"pgtopo_probe" WITH (copy_data = true, failover = true)',
        undo='DROP SUBSCRIPTION "orders_pg_billing_sub"', transactional=False, subscription="orders_pg_billing_sub")
    # Another channel carries the probes; no copy; PostgreSQL 16 has no failover option.
    quiet = dataclasses.replace(i, copy_data=False, failover=None)
    assert P.subscription_step(GLOBAL, quiet, probe=False).statement.endswith(
        'PUBLICATION "orders_pub" WITH (copy_data = false)')


def test_subscription_step_to_a_patroni_publisher_is_ups_statement() -> None:
    """A Patroni publisher: the statement `up` writes (multi-host, read-write, Patroni's permanent
    slot), from the edited file that has the subscription; not a second rendering of it."""
    from tests.support.topologies import TOPOLOGIES

    topo = load(TOPOLOGIES / "global-saas-patroni.yaml")
    i = Intent(subscriber="pg-billing", subscriber_cluster="billing", publisher="pg-us", publisher_cluster="main",
               publication="inventory_pub", mode="use", new_tables=(), publisher_db="production",
               subscriber_db="production", name="inventory_sub", copy_data=True, failover=True)
    step = P.subscription_step(topo, i, probe=True)
    assert step.statement == render.subscription_statement(topo, cluster="billing", sub_name="inventory_sub",
                                                           publisher_node="pg-us")
    assert "create_slot = false" in step.statement and "target_session_attrs=read-write" in step.statement
    assert (step.node, step.subscription, step.transactional) == ("pg-billing", "inventory_sub", False)
    assert step.undo == 'DROP SUBSCRIPTION "inventory_sub"'

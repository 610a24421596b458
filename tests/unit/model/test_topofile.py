"""Round-trip edits of a topology file: comments, order and layout survive, byte for byte."""

from __future__ import annotations

from pathlib import Path

import pytest

from pgtopo.errors import InputError, OperationFailed, ValidationFailed
from pgtopo.model import topofile
from pgtopo.model.topology import PublishedTable
from tests.support.topologies import EXAMPLES

BASE = """\
# A comment at the top.
name: demo
regions:
  us-east: {}   # the home region
  ap-south: {}

latency:
  - between: [us-east, ap-south]
    rtt_ms: 200

clusters:
  main:
    databases:
      production:
        schema: |
          CREATE TABLE products (id bigint PRIMARY KEY, name text);
          CREATE TABLE orders (id bigint PRIMARY KEY, qty int);
    nodes:
      pg-us:
        region: us-east
        role: primary
      pg-us2:
        region: us-east
        upstream: pg-us
    publications:
      inventory_pub:
        database: production
        tables: [products]

  # Billing keeps its own copy.
  billing:
    databases:
      production:
        schema: |
          CREATE TABLE products (id bigint PRIMARY KEY, name text);
    nodes:
      pg-billing:
        region: ap-south
        role: primary
    subscriptions:
      inventory_sub:
        publisher: main
        publication: inventory_pub   # the catalogue
"""

ORDERS_DDL = 'CREATE TABLE "orders" (\n    "id" bigint NOT NULL,\n    "qty" integer,\n    PRIMARY KEY ("id")\n);'


def edited(text: str, *edits: object) -> str:
    doc = topofile.Document(text)
    for edit in edits:
        edit(doc)  # type: ignore[operator]
    return doc.text()


def test_unchanged_document_dumps_byte_for_byte() -> None:
    assert topofile.Document(BASE).text() == BASE
    for path in EXAMPLES:
        text = path.read_text()
        assert topofile.Document(text).text() == text, path.name


def test_add_channel_to_billing_keeps_comments_and_layout() -> None:
    new = edited(
        BASE,
        lambda d: topofile.add_publication(d, cluster="main", name="orders_pub", database="production",
                                           tables=[PublishedTable(name="orders")]),
        lambda d: topofile.append_schema(d, cluster="billing", database="production", ddl=ORDERS_DDL),
        lambda d: topofile.add_subscription(d, cluster="billing", name="orders_pg_billing_sub", publisher="main",
                                            publication="orders_pub", copy_data=True, failover=True),
    )
    assert new == """\
# A comment at the top.
name: demo
regions:
  us-east: {}   # the home region
  ap-south: {}

latency:
  - between: [us-east, ap-south]
    rtt_ms: 200

clusters:
  main:
    databases:
      production:
        schema: |
          CREATE TABLE products (id bigint PRIMARY KEY, name text);
          CREATE TABLE orders (id bigint PRIMARY KEY, qty int);
    nodes:
      pg-us:
        region: us-east
        role: primary
      pg-us2:
        region: us-east
        upstream: pg-us
    publications:
      inventory_pub:
        database: production
        tables: [products]
      orders_pub:
        database: production
        tables: [orders]

  # Billing keeps its own copy.
  billing:
    databases:
      production:
        schema: |
          CREATE TABLE products (id bigint PRIMARY KEY, name text);
          CREATE TABLE "orders" (
              "id" bigint NOT NULL,
              "qty" integer,
              PRIMARY KEY ("id")
          );
    nodes:
      pg-billing:
        region: ap-south
        role: primary
    subscriptions:
      inventory_sub:
        publisher: main
        publication: inventory_pub   # the catalogue
      orders_pg_billing_sub:
        publisher: main
        publication: orders_pub
        copy_data: true
        failover: true
"""


def test_comment_before_the_next_cluster_stays_there() -> None:
    # The new subscription goes to the end of 'main', just above "# Billing keeps its own copy."
    new = edited(BASE, lambda d: topofile.add_subscription(d, cluster="main", name="back_sub", publisher="billing",
                                                            publication="p", database="production", copy_data=False))
    assert """\
        tables: [products]
    subscriptions:
      back_sub:
        publisher: billing
        publication: p
        database: production
        copy_data: false

  # Billing keeps its own copy.
  billing:
""" in new


def test_trailing_comment_at_end_of_file_stays_last() -> None:
    text = BASE + "\n# The end.\n"
    new = edited(text, lambda d: topofile.add_subscription(d, cluster="billing", name="x_sub", publisher="main",
                                                            publication="inventory_pub"))
    assert new.endswith("""\
        publication: inventory_pub   # the catalogue
      x_sub:
        publisher: main
        publication: inventory_pub
        copy_data: true

# The end.
""")


def test_schema_created_for_a_database_without_one() -> None:
    text = """\
clusters:
  analytics:
    databases:
      production: {}
    nodes:
      pg-sa:
        region: sa-east
        role: primary
"""
    new = edited(text, lambda d: topofile.append_schema(d, cluster="analytics", database="production", ddl=ORDERS_DDL))
    assert new == """\
clusters:
  analytics:
    databases:
      production:
        schema: |
          CREATE TABLE "orders" (
              "id" bigint NOT NULL,
              "qty" integer,
              PRIMARY KEY ("id")
          );
    nodes:
      pg-sa:
        region: sa-east
        role: primary
"""


def test_tables_added_to_a_publication() -> None:
    new = edited(BASE, lambda d: topofile.add_publication_tables(
        d, cluster="main", publication="inventory_pub", tables=[PublishedTable(name="orders")]))
    assert "        tables: [products, orders]\n\n  # Billing keeps its own copy.\n" in new
    new = edited(BASE, lambda d: topofile.add_publication_tables(
        d, cluster="main", publication="inventory_pub",
        tables=[PublishedTable(name="orders", where="qty > 1", columns=["id", "qty"])]))
    assert """\
    publications:
      inventory_pub:
        database: production
        tables:
          - products
          - name: orders
            where: qty > 1
            columns: [id, qty]

  # Billing keeps its own copy.
""" in new


def test_publication_with_row_filter_and_column_list() -> None:
    new = edited(BASE, lambda d: topofile.add_publication(
        d, cluster="billing", name="eu_pub", database="production",
        tables=[PublishedTable(name="products", where="name LIKE 'eu-%'"), PublishedTable(name="orders", columns=["id"])]))
    # A new publications map goes before the subscriptions, not at the end.
    assert """\
        role: primary
    publications:
      eu_pub:
        database: production
        tables:
          - name: products
            where: name LIKE 'eu-%'
          - name: orders
            columns: [id]
    subscriptions:
""" in new


def test_remove_subscription_keeps_the_rest() -> None:
    text = BASE + "\n# The end.\n"
    new = edited(text, lambda d: topofile.remove_subscription(d, cluster="billing", name="inventory_sub"))
    assert new.endswith("""\
      pg-billing:
        region: ap-south
        role: primary

# The end.
""")
    added = edited(BASE, lambda d: topofile.add_subscription(d, cluster="billing", name="x_sub", publisher="main",
                                                              publication="inventory_pub"))
    assert edited(added, lambda d: topofile.remove_subscription(d, cluster="billing", name="x_sub")) == BASE


def test_edit_then_remove_round_trips_to_the_original() -> None:
    added = edited(BASE, lambda d: topofile.add_subscription(d, cluster="main", name="back_sub", publisher="billing",
                                                              publication="p"))
    assert edited(added, lambda d: topofile.remove_subscription(d, cluster="main", name="back_sub")) == BASE


def test_four_space_layout_is_kept() -> None:
    text = "clusters:\n    billing:\n        nodes:\n            pg-b:\n                region: r\n"
    new = edited(text, lambda d: topofile.add_subscription(d, cluster="billing", name="s", publisher="main",
                                                            publication="p"))
    assert new == text + ("        subscriptions:\n            s:\n                publisher: main\n"
                          "                publication: p\n                copy_data: true\n")


def test_refusals() -> None:
    doc = topofile.Document(BASE)
    with pytest.raises(InputError, match="the file has no cluster 'nope'"):
        topofile.add_subscription(doc, cluster="nope", name="s", publisher="main", publication="p")
    with pytest.raises(InputError, match="cluster 'billing' already has a subscription 'inventory_sub' in the file"):
        topofile.add_subscription(doc, cluster="billing", name="inventory_sub", publisher="main", publication="p")
    with pytest.raises(InputError, match="cluster 'main' has no subscription 'inventory_sub' in the file"):
        topofile.remove_subscription(doc, cluster="main", name="inventory_sub")
    schema_file = BASE.replace("        schema: |\n          CREATE TABLE products (id bigint PRIMARY KEY, name text);\n"
                               "    nodes:\n      pg-billing:", "        schema_file: billing.sql\n    nodes:\n      pg-billing:")
    with pytest.raises(InputError, match=r"takes its schema from billing\.sql: add the table there first"):
        topofile.append_schema(topofile.Document(schema_file), cluster="billing", database="production", ddl=ORDERS_DDL)
    assert doc.text() == BASE


def test_write_validates_and_replaces_atomically(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(BASE)
    path.chmod(0o640)
    new = edited(BASE, lambda d: topofile.add_subscription(d, cluster="billing", name="x_sub", publisher="main",
                                                            publication="inventory_pub"))
    topofile.write(path, original=BASE, text=new)
    assert path.read_text() == new
    assert path.stat().st_mode & 0o777 == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["t.yaml"]

    bad = edited(new, lambda d: topofile.add_subscription(d, cluster="billing", name="y_sub", publisher="main",
                                                           publication="no_such_pub"))
    with pytest.raises(ValidationFailed) as err:
        topofile.write(path, original=new, text=bad)
    assert err.value.problems == ["clusters.billing.subscriptions.y_sub.publication: cluster 'main' has no publication "
                                  "'no_such_pub'"]
    assert path.read_text() == new
    with pytest.raises(OperationFailed, match="changed while pgtopo was working on it"):
        topofile.write(path, original=BASE, text=new)
    assert [p.name for p in tmp_path.iterdir()] == ["t.yaml"]


def test_staged_write_checks_everything_first_and_writes_only_on_commit(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(BASE)
    new = edited(BASE, lambda d: topofile.remove_subscription(d, cluster="billing", name="inventory_sub"))
    with topofile.staged(path, original=BASE, text=new):
        assert path.read_text() == BASE  # staged beside it, not written
    assert path.read_text() == BASE  # never committed: nothing written
    assert [p.name for p in tmp_path.iterdir()] == ["t.yaml"]

    with topofile.staged(path, original=BASE, text=new) as commit:
        path.write_text(BASE + "# saved by the user meanwhile\n")
        with pytest.raises(OperationFailed, match="changed while pgtopo was working on it"):
            commit()
    assert path.read_text() == BASE + "# saved by the user meanwhile\n"

    path.write_text(BASE)
    with topofile.staged(path, original=BASE, text=new) as commit:
        commit()
    assert path.read_text() == new
    assert [p.name for p in tmp_path.iterdir()] == ["t.yaml"]


def test_unified_diff() -> None:
    new = edited(BASE, lambda d: topofile.remove_subscription(d, cluster="billing", name="inventory_sub"))
    diff = topofile.unified_diff(BASE, new, path=Path("t.yaml"))
    assert diff.startswith("--- t.yaml\n+++ t.yaml (edited)\n")
    assert "-    subscriptions:\n-      inventory_sub:\n" in diff

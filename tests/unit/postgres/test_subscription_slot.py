"""The statements of the slot pgtopo creates for a new subscription, and when the copy still runs."""

from __future__ import annotations

from pgtopo.postgres import subscription_slot as ss


def test_the_slot_is_created_in_the_snapshot_the_transaction_then_uses() -> None:
    assert ss.create_slot_command("inventory_sub", failover=True) == (
        "CREATE_REPLICATION_SLOT \"inventory_sub\" LOGICAL pgoutput (SNAPSHOT 'use', FAILOVER true)")
    assert ss.create_slot_command("Odd\"name", failover=False).startswith('CREATE_REPLICATION_SLOT "Odd""name" ')
    # PostgreSQL 15 and 16 have no FAILOVER option.
    assert ss.create_slot_command("s", failover=None) == "CREATE_REPLICATION_SLOT \"s\" LOGICAL pgoutput (SNAPSHOT 'use')"


def test_the_tables_come_from_pg_publication_tables_of_every_publication() -> None:
    query = ss.tables_query(["inventory_pub", "pgtopo_probe"])
    assert "FROM pg_catalog.pg_publication_tables" in query
    assert "pubname IN ('inventory_pub', 'pgtopo_probe')" in query


def test_one_statement_names_the_tables_with_rows_identifiers_quoted() -> None:
    query = ss.rows_query([("public", "products"), ("pgtopo", "probe"), ("we'ird", 'ta"ble')])
    assert query == ("SELECT 'public.products' WHERE EXISTS (SELECT FROM \"public\".\"products\") UNION ALL "
                     "SELECT 'pgtopo.probe' WHERE EXISTS (SELECT FROM \"pgtopo\".\"probe\") UNION ALL "
                     "SELECT 'we''ird.ta\"ble' WHERE EXISTS (SELECT FROM \"we'ird\".\"ta\"\"ble\")")


def test_the_copy_runs_exactly_when_a_table_has_a_row() -> None:
    assert ss.copy_needed(with_rows=[]) is None
    assert ss.copy_needed(with_rows=["public.products"]) == "public.products has rows"
    assert ss.copy_needed(with_rows=["a.b", "c.d"]) == "a.b, c.d have rows"
    assert ss.copy_needed(with_rows=["a.b", "c.d", "e.f", "g.h", "i.j"]) == "a.b, c.d, e.f and 2 more have rows"

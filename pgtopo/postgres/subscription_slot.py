"""A new subscription's slot, made by pgtopo when its initial copy provably has nothing to copy.

`up` creates its subscriptions on publishers it has just set up, whose tables are usually
still empty. An initial copy of empty tables still costs a table-sync worker per table, each
with its own connection, slot, COPY and catch-up over the link between the regions (most of
`up`'s subscription phase). So, before the CREATE SUBSCRIPTION, pgtopo creates the
subscription's logical slot (named as the subscription) itself, from the host, over a
replication connection to the publisher's published port, the way a table-sync worker does
before its COPY: ``CREATE_REPLICATION_SLOT ... LOGICAL pgoutput (SNAPSHOT 'use')`` as the first
command of a REPEATABLE READ, READ ONLY transaction, which then runs in the slot's own snapshot. In that
snapshot it asks whether any table of the subscription's publications has a row.

Why this is exact: the snapshot is the slot's starting point. A transaction visible in it is
not decoded from the slot (a copy would have carried its rows); every other is decoded and
streamed to the subscriber. Every table empty in the snapshot means a copy would have copied
nothing, so a subscription with ``copy_data = false`` on this slot receives every row a
subscription with a copy would have. Any table with a row (or anything unexpected): the slot
is dropped and the subscription is created as the file says, with its copy.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg import sql

from pgtopo.errors import OperationFailed, first_line
from pgtopo.model.render import q
from pgtopo.postgres import connect
from pgtopo.runtime.waiting import poll

# CREATE_REPLICATION_SLOT's parenthesised options (SNAPSHOT 'use') exist from PostgreSQL 15 (the
# oldest pgtopo runs), its FAILOVER option from 17.


@dataclass(frozen=True)
class SlotStart:
    """What ``start`` did: ``kept``: the slot exists, created by pgtopo, and every table was empty in
    its snapshot; otherwise no slot of pgtopo's is left and ``why`` says why."""

    kept: bool
    why: str = ""
    tables: tuple[str, ...] = ()  # every table the initial copy would copy, schema.table
    leftover: bool = False  # an unused slot of that name was there (an interrupted `up`): dropped


def create_slot_command(slot: str, *, failover: bool | None) -> str:
    """The replication command creating ``slot`` whose snapshot the transaction then uses
    (``failover``: None on PostgreSQL before 17, which has no such option)."""
    opts: list[sql.Composable] = [sql.SQL("SNAPSHOT 'use'")]
    if failover is not None:
        opts.append(sql.SQL("FAILOVER {}").format(sql.SQL("true" if failover else "false")))
    return q(sql.SQL("CREATE_REPLICATION_SLOT {} LOGICAL pgoutput ({})").format(
        sql.Identifier(slot), sql.SQL(", ").join(opts)))


def tables_query(publications: list[str]) -> str:
    """Every table of ``publications`` (FOR TABLE, FOR TABLES IN SCHEMA and FOR ALL TABLES alike)."""
    return q(sql.SQL("SELECT DISTINCT schemaname, tablename FROM pg_catalog.pg_publication_tables "
                     "WHERE pubname IN ({}) ORDER BY 1, 2").format(
        sql.SQL(", ").join(sql.Literal(p) for p in publications)))


def rows_query(tables: list[tuple[str, str]]) -> str:
    """The tables among ``tables`` that have at least one row (one statement, one round trip)."""
    parts = [sql.SQL("SELECT {} WHERE EXISTS (SELECT FROM {})").format(
        sql.Literal(f"{s}.{t}"), sql.Identifier(s, t)) for s, t in tables]
    return q(sql.SQL(" UNION ALL ").join(parts))


def copy_needed(*, with_rows: list[str]) -> str | None:
    """Why the initial copy must run (None: it would copy nothing)."""
    if with_rows:
        shown = ", ".join(with_rows[:3]) + (f" and {len(with_rows) - 3} more" if len(with_rows) > 3 else "")
        return f"{shown} {'has rows' if len(with_rows) == 1 else 'have rows'}"
    return None


def _slot_query(slot: str) -> str:
    return q(sql.SQL("SELECT active, slot_type, coalesce(plugin, ''), coalesce(database, '') "
                     "FROM pg_catalog.pg_replication_slots WHERE slot_name = {}").format(sql.Literal(slot)))


def _drop_command(slot: str) -> str:
    return q(sql.SQL("DROP_REPLICATION_SLOT {}").format(sql.Identifier(slot)))


def _drop_unused(conn: psycopg.Connection[tuple[object, ...]], *, node: str, database: str,
                 slot: str) -> tuple[bool, str | None]:
    """Drop ``slot`` if it is an unused logical pgoutput slot of ``database``, the kind a new
    subscription's slot is (left by an `up` interrupted before its CREATE SUBSCRIPTION).
    Returns whether it dropped one, and why not when a slot of that name is something else."""
    found = conn.execute(_slot_query(slot)).fetchone()
    if found is None:
        return False, None
    active, kind, plugin, db = found
    if active or kind != "logical" or plugin != "pgoutput" or db != database:
        seen = "in use" if active else f"{kind}, plugin {plugin or '-'}, database {db or '-'}"
        return False, f"a slot named {slot} exists on {node} ({seen})"
    conn.execute(_drop_command(slot))
    return True, None


def drop_leftover(topology: str, node: str, *, database: str, slot: str) -> bool:
    """Before a CREATE SUBSCRIPTION that creates its own slot (the file asks for no copy): drop an
    unused slot of that name on ``node`` (an `up` interrupted between ``start`` and its CREATE
    SUBSCRIPTION, the file changed since), which would make it fail with "already exists". True
    if one was dropped; best effort: a slot in use or of another kind is left, as is a publisher
    that does not answer (CREATE SUBSCRIPTION then says what is wrong)."""
    try:
        info = connect.dsn(topology, node, dbname=database, replication="database")
        with psycopg.connect(info, autocommit=True) as conn:
            return _drop_unused(conn, node=node, database=database, slot=slot)[0]
    except (psycopg.Error, OperationFailed):
        return False


def start(topology: str, node: str, *, database: str, slot: str, publications: list[str],
          failover: bool | None) -> SlotStart:
    """Create ``slot`` on ``node`` (the publisher) and keep it only if every table of
    ``publications`` is empty in its snapshot. Never raises for what it finds: anything it cannot
    do ends in ``kept=False`` with its slot dropped, and `up` does what it did before (a slot it
    could not drop, its connection lost, is unused: the next `up` drops it, as below).

    Only for a subscription that does not exist yet: a slot of that name that nobody uses
    (``up`` interrupted between this and its CREATE SUBSCRIPTION) is dropped first; one in use
    is left alone.
    """
    try:
        info = connect.dsn(topology, node, dbname=database, replication="database")
        conn = psycopg.connect(info, autocommit=True)
    except (psycopg.Error, OperationFailed) as exc:
        return SlotStart(kept=False, why=f"cannot connect to {node}: {first_line(exc)}")
    created = False
    leftover = False
    try:
        with conn:
            leftover, other = _drop_unused(conn, node=node, database=database, slot=slot)
            if other is not None:
                return SlotStart(kept=False, why=other)
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            conn.execute(create_slot_command(slot, failover=failover))
            created = True
            tables = [(str(s), str(t)) for s, t in conn.execute(tables_query(publications)).fetchall()]
            with_rows = [str(r[0]) for r in conn.execute(rows_query(tables)).fetchall()] if tables else []
            conn.execute("COMMIT")
            why = copy_needed(with_rows=with_rows)
            if why is not None:
                conn.execute(_drop_command(slot))
                return SlotStart(kept=False, why=why, tables=tuple(f"{s}.{t}" for s, t in tables), leftover=leftover)
            return SlotStart(kept=True, tables=tuple(f"{s}.{t}" for s, t in tables), leftover=leftover)
    except psycopg.Error as exc:
        if created:
            drop(topology, node, database=database, slot=slot)
        return SlotStart(kept=False, why=f"{node}: {first_line(exc)}", leftover=leftover)


def drop(topology: str, node: str, *, database: str, slot: str, timeout: float = 5) -> bool:
    """Drop ``slot`` on ``node`` once no process uses it, within ``timeout`` s (the walsender
    that created it may still be exiting). Best effort: False when it could not."""
    def dropped() -> bool | None:
        with psycopg.connect(connect.dsn(topology, node, dbname=database), autocommit=True) as conn:
            found = conn.execute(_slot_query(slot)).fetchone()
            if found is not None and found[0]:
                return None  # still in use: look again
            if found is not None:
                conn.execute(q(sql.SQL("SELECT pg_catalog.pg_drop_replication_slot({})").format(sql.Literal(slot))))
        return True

    try:
        return poll(dropped, timeout=timeout, interval=0.1) is not None
    except (psycopg.Error, OperationFailed):
        return False

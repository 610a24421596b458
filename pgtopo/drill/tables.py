"""The drill's own tables, in schema ``pgtopo_drill`` of the drill database: never the user's.

``ledger (writer, seq)`` gets one row per write transaction of every workload; ``accounts`` holds
the bank's balances. On the publisher they join ``pgtopo_probe`` (pgtopo's own publication,
which every subscription from that database already carries), so they reach the subscribers
through the very channels the drill tests. A subscriber's ledger has no unique key: a row
delivered twice shows up as two rows instead of stopping replication.

:func:`prepare` starts from nothing (a leftover of an interrupted run is dropped first);
:func:`remove` takes everything away again, publication membership included.
"""

from __future__ import annotations

from collections.abc import Callable

from psycopg import sql

from pgtopo.drill.primaries import current as current_primaries
from pgtopo.drill.targets import Subscriber, Target
from pgtopo.errors import OperationFailed, PgtopoError
from pgtopo.model.topology import PROBE_PUBLICATION, Topology
from pgtopo.observe import snapshot
from pgtopo.postgres.sql import query, run_all
from pgtopo.progress import Progress
from pgtopo.runtime.waiting import poll, wait_for

SCHEMA = "pgtopo_drill"
LEDGER = sql.Identifier(SCHEMA, "ledger")
ACCOUNTS = sql.Identifier(SCHEMA, "accounts")
_S = sql.Identifier(SCHEMA)
# Autovacuum would add commits of its own to the WAL a failover loses, blurring loss measured against loss reported.
_NO_AUTOVACUUM = sql.SQL("WITH (autovacuum_enabled = false)")


def _drop() -> sql.Composed:
    # IF EXISTS: a second DROP in the same cleanup (or none to drop) is not an error.
    return sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(_S)


def publisher_statements(*, accounts: int, balance: int, publish: bool) -> list[sql.Composed]:
    stmts: list[sql.Composed] = [
        _drop(),
        sql.SQL("CREATE SCHEMA {}").format(_S),
        sql.SQL("COMMENT ON SCHEMA {} IS {}").format(_S, sql.Literal("owned by pgtopo drill: removed when a drill ends")),
        sql.SQL("CREATE TABLE {} (writer text NOT NULL, seq bigint NOT NULL, "
                "at timestamptz NOT NULL DEFAULT clock_timestamp(), PRIMARY KEY (writer, seq)) {}").format(
            LEDGER, _NO_AUTOVACUUM),
        sql.SQL("CREATE TABLE {} (id integer PRIMARY KEY, balance bigint NOT NULL) {}").format(ACCOUNTS, _NO_AUTOVACUUM),
        sql.SQL("INSERT INTO {} SELECT g, {} FROM generate_series(1, {}) g").format(
            ACCOUNTS, sql.Literal(balance), sql.Literal(accounts)),
        sql.SQL("GRANT USAGE ON SCHEMA {} TO app, replicator").format(_S),
        sql.SQL("GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA {} TO app").format(_S),
        sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA {} TO replicator").format(_S),
    ]
    if publish:
        stmts.append(sql.SQL("ALTER PUBLICATION {} ADD TABLE {}, {}").format(
            sql.Identifier(PROBE_PUBLICATION), LEDGER, ACCOUNTS))
    return stmts


def subscriber_statements() -> list[sql.Composed]:
    return [
        _drop(),
        sql.SQL("CREATE SCHEMA {}").format(_S),
        sql.SQL("CREATE TABLE {} (writer text NOT NULL, seq bigint NOT NULL, at timestamptz NOT NULL)").format(LEDGER),
        sql.SQL("CREATE TABLE {} (id integer PRIMARY KEY, balance bigint NOT NULL)").format(ACCOUNTS),
        sql.SQL("GRANT USAGE ON SCHEMA {} TO app").format(_S),
        sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA {} TO app").format(_S),
    ]


def _refresh(sub: str) -> sql.Composed:
    return sql.SQL("ALTER SUBSCRIPTION {} REFRESH PUBLICATION").format(sql.Identifier(sub))


def prepare(topo: Topology, t: Target, *, accounts: int, balance: int, progress: Progress) -> None:
    """Create the tables on the cluster's primary and every subscriber; wait until each node has them."""
    left: list[str] = []
    remove(topo, t, progress=lambda _s, _m: None, note=left.append)  # a leftover of an interrupted run
    if left:
        raise OperationFailed(left[0], step="remove the tables of an earlier drill")
    primaries = current_primaries(topo)
    primary = primaries[t.cluster]
    progress("tables", f"creating schema {SCHEMA} in {t.database} on {primary}")
    run_all(topo, primary, publisher_statements(accounts=accounts, balance=balance, publish=bool(t.subscribers)),
            db=t.database, step="create the drill tables")
    for s in t.subscribers:
        node = primaries[s.cluster]
        progress("tables", f"{node}: subscription {s.subscription} receives the drill tables")
        run_all(topo, node, [*subscriber_statements(), _refresh(s.subscription)], db=s.database,
                step="subscribe to the drill tables")
        _wait_synchronised(topo, node, s.database, s.subscription)
    _wait_replicated(topo, t)


def _wait_synchronised(topo: Topology, node: str, db: str, sub: str, *, timeout: float = 90) -> None:
    seen = "no table yet"

    def ready() -> bool:
        nonlocal seen
        rows = query(topo, node, "SELECT r.srrelid::regclass::text, r.srsubstate FROM pg_subscription_rel r "
                     "JOIN pg_subscription s ON s.oid = r.srsubid WHERE s.subname = %s AND r.srrelid::regclass::text "
                     "LIKE %s", (sub, f"{SCHEMA}.%"), db=db, step="wait for the drill tables")
        seen = ", ".join(f"{t} {s}" for t, s in rows) or "no table yet"
        return len(rows) == 2 and all(s == "r" for _t, s in rows)

    wait_for(ready, timeout=timeout, what=f"subscription {sub} to copy the drill tables", step="subscribe", node=node,
             interval=0.3, last_seen=lambda: seen)


def _wait_replicated(topo: Topology, t: Target, *, timeout: float = 60) -> None:
    """Every running node of the drill's clusters has replayed the tables (a read would fail before)."""
    clusters = {t.cluster: t.database, **{s.cluster: s.database for s in t.subscribers}}
    snap = snapshot.collect(topo)
    for n in snap.nodes.values():
        db = clusters.get(n.cluster)
        if db is None or not n.reachable:
            continue

        def has_tables(node: str = n.node, database: str = db) -> bool:
            try:
                rows = query(topo, node, "SELECT to_regclass(%s) IS NOT NULL", (f"{SCHEMA}.accounts",), db=database,
                             step="wait for the drill tables")
            except PgtopoError:
                return False
            return bool(rows and rows[0][0])

        wait_for(has_tables, timeout=timeout, what="the drill tables to be replayed", step="replicate", node=n.node,
                 interval=0.2)


def caught_up(topo: Topology, publisher: str, db: str, sub_node: str, sub: Subscriber, *, timeout: float) -> bool:
    """Whether the subscription confirmed everything the publisher wrote until now (within ``timeout``)."""
    rows = query(topo, sub_node, "SELECT subslotname FROM pg_subscription WHERE subname = %s", (sub.subscription,),
                 db=sub.database, step="find the subscription's slot")
    if not rows or rows[0][0] is None:
        return False
    slot = str(rows[0][0])
    target = query(topo, publisher, "SELECT pg_current_wal_lsn()::text", db=db, step="read the position")[0][0]

    def confirmed() -> bool:
        got = query(topo, publisher, "SELECT confirmed_flush_lsn >= %s::pg_lsn FROM pg_replication_slots "
                    "WHERE slot_name = %s", (target, slot), db=db, step="wait for the subscriber")
        return bool(got and got[0][0])

    return poll(confirmed, timeout=timeout, interval=0.2) is not None


def exists(topo: Topology, node: str, db: str) -> bool:
    rows = query(topo, node, "SELECT to_regnamespace(%s) IS NOT NULL", (SCHEMA,), db=db, step="look for the drill tables")
    return bool(rows and rows[0][0])


def remove(topo: Topology, t: Target, *, progress: Progress, note: Callable[[str], None],
           timeout: float = 30) -> None:
    """Take the tables away (best effort: what fails is noted, the rest goes on).

    Their last changes may still be on their way to a subscriber, whose apply worker would stop
    for good on a table dropped under it: they leave the publication first, and a subscriber's
    copy goes only once it confirmed everything written until then (otherwise it stays).
    """
    primaries = current_primaries(topo)
    publisher = primaries[t.cluster]
    try:
        published = query(topo, publisher, "SELECT tablename FROM pg_publication_tables WHERE pubname = %s AND "
                          "schemaname = %s", (PROBE_PUBLICATION, SCHEMA), db=t.database, step="unpublish the drill tables")
        if published:
            run_all(topo, publisher, [sql.SQL("ALTER PUBLICATION {} DROP TABLE {}").format(
                sql.Identifier(PROBE_PUBLICATION), sql.SQL(", ").join(sql.Identifier(SCHEMA, str(r[0])) for r in published))],
                db=t.database, step="unpublish the drill tables")
        for s in t.subscribers:
            node = primaries[s.cluster]
            if not exists(topo, node, s.database):
                continue
            if not caught_up(topo, publisher, t.database, node, s, timeout=timeout):
                note(f"{node}: subscription {s.subscription} did not confirm the drill's last changes within "
                     f"{timeout:g} s: schema {SCHEMA} left there (drop it once it caught up)")
                continue
            run_all(topo, node, [_refresh(s.subscription), _drop()], db=s.database, step="drop the drill tables")
        run_all(topo, publisher, [_drop()], db=t.database, step="drop the drill tables")
        progress("tables", f"schema {SCHEMA} dropped")
    except PgtopoError as exc:
        note(f"could not remove schema {SCHEMA}: {exc.message}")

"""A cluster's subscribers follow its new primary: moved onto the synced failover slot, else re-synchronised.

Each subscription to the promoted cluster's publications lives on another cluster's primary;
``pgtopo.ha.failover`` decided per subscription whether it can move (its failover slot is synced
on the new primary) or must be dropped, emptied and copied again. They are moved in parallel.

An apply worker whose publisher sits behind a partition hangs in its connection attempt: the
relay accepts the TCP connection and forwards nothing, libpq's walreceiver loop waits with no
timeout (connect_timeout is not applied there) and TCP keepalives are answered by the relay. It
does not notice ``ALTER SUBSCRIPTION ... DISABLE`` until that attempt ends (when the partition
heals), and while it lives no worker for the new connection starts. So a move terminates the
subscription's workers once it is disabled.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from psycopg import sql

from pgtopo.errors import OperationFailed, PgtopoError
from pgtopo.ha.moves import SubscriberMove
from pgtopo.ha.replication import container, drop_slot, end_slot_holder
from pgtopo.model import render
from pgtopo.model.topology import Topology, endpoint
from pgtopo.postgres import instance
from pgtopo.postgres.sql import query, run_all
from pgtopo.progress import Progress
from pgtopo.runtime.waiting import wait_for


@dataclass(frozen=True)
class SubscriberResult:
    subscription: str
    node: str
    action: str  # moved, continued (a promoted subscriber's own), resynced, skipped, pending (changed, connects once a
    # partition heals), failed
    detail: str

    @property
    def done(self) -> bool:
        return self.action in ("moved", "resynced")


# Every worker of one subscription of the current database; waits up to 5 s for each to exit, so
# the launcher starts the new one (on ENABLE) only once the old one is gone.
TERMINATE_WORKERS = ("SELECT pg_terminate_backend(w.pid, 5000) FROM pg_stat_subscription w JOIN pg_subscription s "
                     "ON s.oid = w.subid WHERE s.subname = %s AND w.pid IS NOT NULL AND s.subdbid = "
                     "(SELECT oid FROM pg_database WHERE datname = current_database())")


def move_all(topo: Topology, moves: Sequence[SubscriberMove], *, new_primary: str,
             progress: Progress) -> list[SubscriberResult]:
    """Every subscription at once, each with its own result (a failure is a result, not an error)."""
    def one(m: SubscriberMove) -> SubscriberResult:
        try:
            return move_subscriber(topo, m, new_primary=new_primary, progress=progress)
        except PgtopoError as exc:
            return SubscriberResult(m.subscription, m.node, "failed", exc.message)

    if not moves:
        return []
    with ThreadPoolExecutor(max_workers=min(16, len(moves))) as pool:
        return list(pool.map(one, moves))


def _sub_conninfo(topo: Topology, m: SubscriberMove, *, publisher_node: str) -> str:
    ep = endpoint(topo, from_region=topo.node(m.node).region, node=publisher_node)
    pub = topo.clusters[topo.clusters[m.cluster].subscriptions[m.subscription].publisher]
    sub = topo.clusters[m.cluster].subscriptions[m.subscription]
    return render.conninfo(host=ep.host, port=ep.port, user="replicator", application_name=m.subscription,
                           dbname=pub.publications[sub.publication].database)


def _usable_failover_slot(topo: Topology, node: str, slot: str) -> str | None:
    """None when ``slot`` on the (promoted) node can carry the subscription on; else why not."""
    rows = query(topo, node, "SELECT slot_type, temporary, invalidation_reason, failover FROM pg_replication_slots "
                 "WHERE slot_name = %s", (slot,), step="check failover slot")
    if not rows:
        return f"slot {slot} is not on {node}"
    slot_type, temporary, invalid, fo = rows[0]
    if slot_type != "logical" or temporary or invalid or not fo:
        return f"slot {slot} on {node} is not usable (type {slot_type}, temporary {temporary}, invalid {invalid})"
    return None


def move_subscriber(topo: Topology, m: SubscriberMove, *, new_primary: str, progress: Progress) -> SubscriberResult:
    if m.action in ("unreachable", "missing"):
        return SubscriberResult(m.subscription, m.node, "skipped", m.reason)
    if m.action == "resync" and m.waits:
        # A new subscription copies its tables from the publisher: not while the two are apart.
        return SubscriberResult(m.subscription, m.node, "pending", f"not re-synchronised ({m.reason}): {m.waits}")
    ident = sql.Identifier(m.subscription)
    why = m.reason if m.action == "resync" else _usable_failover_slot(topo, new_primary, m.slot)
    if why is None:
        progress(m.node, f"subscription {m.subscription}: DISABLE, CONNECTION to {new_primary}, ENABLE")
        run_all(topo, m.node, [
            sql.SQL("ALTER SUBSCRIPTION {} DISABLE").format(ident),
            sql.SQL("ALTER SUBSCRIPTION {} CONNECTION {}").format(
                ident, sql.Literal(_sub_conninfo(topo, m, publisher_node=new_primary))),
        ], db=m.database, step=f"move subscription {m.subscription}")
        query(topo, m.node, TERMINATE_WORKERS, (m.subscription,), db=m.database,
              step=f"stop the workers of {m.subscription}")
        run_all(topo, m.node, [sql.SQL("ALTER SUBSCRIPTION {} ENABLE").format(ident)], db=m.database,
                step=f"move subscription {m.subscription}")
        if m.waits:
            return SubscriberResult(m.subscription, m.node, "pending",
                                    f"points at failover slot {m.slot} on {new_primary}; {m.waits}")
        wait_subscription_streaming(topo, m, publisher=new_primary)
        return SubscriberResult(m.subscription, m.node, "moved",
                                f"continues from failover slot {m.slot} on {new_primary}: no gap, no duplicate")
    progress(m.node, f"subscription {m.subscription}: RE-SYNCHRONISING ({why})")
    tables = resync_subscription(topo, m, new_primary=new_primary)
    return SubscriberResult(m.subscription, m.node, "resynced",
                            f"RE-SYNCHRONISED because {why}: truncated and re-copied {', '.join(tables)}")


def wait_subscription_streaming(topo: Topology, m: SubscriberMove, *, publisher: str, timeout: float = 30) -> None:
    def connected() -> bool:
        rows = query(topo, publisher, "SELECT active FROM pg_replication_slots WHERE slot_name = %s", (m.slot,),
                     step="wait for the subscription")
        return bool(rows and rows[0][0])

    wait_for(connected, timeout=timeout, what=f"subscription {m.subscription} to connect to slot {m.slot} on {publisher}",
             step="move subscription", node=m.node)


def drop_released_slot(topo: Topology, *, on: str, slot: str, timeout: float = 15) -> None:
    """Drop the slot of a subscription just dropped. Its walsender on the publisher may still hold it
    for a while: the apply worker's exit reaches the publisher a round trip later (through the relay,
    at the link's latency), or not at all while a partition holds the connection. A CREATE
    SUBSCRIPTION of the same name would then find the slot and fail, so the walsender is ended and
    the slot dropped once free (its only user was that subscription)."""
    def dropped() -> bool:
        if not query(topo, on, "SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", (slot,),
                     step=f"drop slot {slot}"):
            return True
        end_slot_holder(topo, on=on, slot=slot, wait_ms=1000)
        drop_slot(topo, on=on, slot=slot)  # only if nothing holds it by now
        return False

    wait_for(dropped, timeout=timeout, what=f"slot {slot} to be free and dropped", step="drop slot", node=on,
             interval=0.1)


def resync_subscription(topo: Topology, m: SubscriberMove, *, new_primary: str) -> list[str]:
    """No usable failover slot: drop the subscription, empty its tables and copy them again."""
    ident = sql.Identifier(m.subscription)
    rows = query(topo, m.node, "SELECT s.subpublications, s.subfailover, n.nspname, c.relname FROM pg_subscription s "
                 "LEFT JOIN pg_subscription_rel r ON r.srsubid = s.oid LEFT JOIN pg_class c ON c.oid = r.srrelid "
                 "LEFT JOIN pg_namespace n ON n.oid = c.relnamespace WHERE s.subname = %s", (m.subscription,),
                 db=m.database, step=f"read subscription {m.subscription}")
    if not rows:
        raise OperationFailed(f"no subscription {m.subscription}", node=m.node, step="re-synchronise")
    pubs = list(rows[0][0])
    fo = bool(rows[0][1])
    tables = [(str(r[2]), str(r[3])) for r in rows if r[3] is not None]
    run_all(topo, m.node, [
        sql.SQL("ALTER SUBSCRIPTION {} DISABLE").format(ident),
        sql.SQL("ALTER SUBSCRIPTION {} SET (slot_name = NONE)").format(ident),
        sql.SQL("DROP SUBSCRIPTION {}").format(ident),
    ], db=m.database, step=f"drop subscription {m.subscription}")
    if tables:
        run_all(topo, m.node, [sql.SQL("TRUNCATE {}").format(sql.SQL(", ").join(sql.Identifier(s, t)
                                                                                for s, t in tables))],
                db=m.database, step=f"truncate the tables of {m.subscription}")
    drop_released_slot(topo, on=new_primary, slot=m.slot)
    opts: list[sql.Composable] = [sql.SQL("copy_data = true")]
    if topo.postgres.version >= 17:
        opts.append(sql.SQL("failover = {}").format(sql.SQL("true" if fo else "false")))
    run_all(topo, m.node, [sql.SQL("CREATE SUBSCRIPTION {} CONNECTION {} PUBLICATION {} WITH ({})").format(
        ident, sql.Literal(_sub_conninfo(topo, m, publisher_node=new_primary)),
        sql.SQL(", ").join(sql.Identifier(p) for p in pubs), sql.SQL(", ").join(opts))],
        db=m.database, step=f"re-create subscription {m.subscription}")
    instance.wait_subscription_ready(container(topo, m.node), m.subscription, db=m.database)
    return [f"{s}.{t}" for s, t in tables]

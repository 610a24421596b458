"""Physical replication on live nodes: the primitives failover, switchover and rejoin share.

The replication settings a node gets by ALTER SYSTEM, physical slots, re-pointing a replica to
another upstream, and the synchronous settings of a primary. ``pgtopo.ha.promotion`` carries out
failovers and switchovers with them, ``pgtopo.ha.rejoin`` brings a node back.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from psycopg import sql

from pgtopo.errors import OperationFailed
from pgtopo.ha import synchronous
from pgtopo.ha.synchronous import SyncConfig
from pgtopo.model import render
from pgtopo.model.topology import HOLD_SLOT, Topology, endpoint, slot_name
from pgtopo.postgres.sql import Query, query, run_all
from pgtopo.postgres.streaming import streaming_standbys
from pgtopo.runtime import gateway, state

if TYPE_CHECKING:  # the Docker SDK itself is only imported by pgtopo.runtime
    from docker.models.containers import Container

MANAGED_SETTINGS = ("primary_conninfo", "primary_slot_name", "sync_replication_slots", "synchronous_standby_names",
                    "synchronized_standby_slots")


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def alter_system(name: str, value: str) -> sql.Composed:
    return sql.SQL("ALTER SYSTEM SET {} = {}").format(sql.Identifier(name), sql.Literal(value))


def alter_system_reset(name: str) -> sql.Composed:
    """Back to the configuration files' value (postgresql.auto.conf forgets the setting)."""
    return sql.SQL("ALTER SYSTEM RESET {}").format(sql.Identifier(name))


def rendered_settings(topo: Topology, node: str) -> dict[str, str]:
    """The replication settings the file renders into the node's postgresql.conf."""
    spec = topo.node(node)
    cluster = topo.cluster_of(node)
    is_primary = spec.role == "primary"
    slot_standbys = render.failover_slot_standbys(topo, cluster)
    return {
        "synchronous_standby_names": render.synchronous_standby_names(topo, cluster) if is_primary else "",
        "synchronized_standby_slots": ", ".join(slot_name(s) for s in slot_standbys) if is_primary else "",
        "sync_replication_slots": "on" if node in slot_standbys else "off",
        "primary_conninfo": replica_conninfo(topo, node=node, upstream=spec.upstream) if spec.upstream else "",
        "primary_slot_name": slot_name(node) if spec.upstream else "",
    }


def setting(topo: Topology, node: str, name: str, value: str) -> sql.Composed:
    """ALTER SYSTEM SET, or RESET when the file renders that very value: a layout back to the
    file's is back to the rendered configuration, with nothing left in postgresql.auto.conf."""
    if rendered_settings(topo, node).get(name) == value:
        return alter_system_reset(name)
    return alter_system(name, value)


RELOAD: Query = "SELECT pg_reload_conf()"


# A standby whose upstream is gone retries it every wal_retrieve_retry_interval (1 s as rendered),
# and a promotion requested meanwhile can wait out one of those sleeps: PostgreSQL's startup
# process leaves the streaming state through the retry sleep, before or even after it noticed the
# request (seen at 30 nodes: "waiting for WAL to become available" just after pg_promote,
# "received promote request" 977 ms later; with 20 ms, "received promote request", "waiting for
# WAL..." and ready 31 ms later). The candidate of a failover or switchover retries this often
# from its preparation until it is promoted.
PROMOTING_RETRY = "20ms"
RESET_RETRY: Query = alter_system_reset("wal_retrieve_retry_interval")


def primary_settings(topo: Topology, node: str) -> list[Query]:
    """A standby's own settings mean nothing on a primary. RESET would bring back the rendered file's
    values, which for a replica of the file name its upstream (maybe the old primary): empty them.
    The retry interval the candidate used until its promotion goes back to the file's."""
    return [setting(topo, node, "primary_conninfo", ""), setting(topo, node, "primary_slot_name", ""),
            *([setting(topo, node, "sync_replication_slots", "off")] if topo.postgres.version >= 17 else []),
            RESET_RETRY]


def publishing(topo: Topology, cluster: str) -> bool:
    """Failover slots are kept in sync on the primary's direct standbys (PostgreSQL 17)."""
    return topo.postgres.version >= 17 and render.publishes(topo, cluster)


def replica_conninfo(topo: Topology, *, node: str, upstream: str) -> str:
    ep = endpoint(topo, from_region=topo.node(node).region, node=upstream)
    return render.conninfo(host=ep.host, port=ep.port, user="replicator", application_name=node, dbname="postgres")


def container(topo: Topology, node: str) -> Container:
    c = gateway.find(topo.name, node)
    if c is None:
        raise OperationFailed("no container", node=node, step="find container")
    return c


# -- replicas ----------------------------------------------------------------------------------------

def create_slot(topo: Topology, *, on: str, slot: str) -> None:
    """A physical slot on the new upstream, reserving WAL now (idempotent)."""
    query(topo, on, render.create_physical_slot(slot, reserve_wal=True), step=f"create slot {slot}")


def drop_slot(topo: Topology, *, on: str, slot: str) -> None:
    query(topo, on, render.drop_idle_slot(slot), step=f"drop slot {slot}")


def end_slot_holder(topo: Topology, *, on: str, slot: str, wait_ms: int) -> int | None:
    """End the walsender that holds ``slot`` on ``on``, waiting up to ``wait_ms`` for it to exit;
    its pid, or None when nothing held it."""
    rows = query(topo, on, "SELECT active_pid FROM pg_replication_slots WHERE slot_name = %s", (slot,),
                 step=f"read slot {slot}")
    if not rows or rows[0][0] is None:
        return None
    pid = int(str(rows[0][0]))
    query(topo, on, "SELECT pg_terminate_backend(%s, %s)", (pid, wait_ms), step=f"end the walsender of slot {slot}")
    return pid


def repoint(topo: Topology, *, node: str, upstream: str, slot_sync: bool | None) -> None:
    """ALTER SYSTEM primary_conninfo / primary_slot_name and reload: the WAL receiver reconnects."""
    stmts: list[Query] = [
        setting(topo, node, "primary_conninfo", replica_conninfo(topo, node=node, upstream=upstream)),
        setting(topo, node, "primary_slot_name", slot_name(node)),
    ]
    if slot_sync is not None and topo.postgres.version >= 17:
        stmts.append(setting(topo, node, "sync_replication_slots", "on" if slot_sync else "off"))
    # A slot a failed promotion of this node could not drop holds WAL here for nobody.
    stmts.extend([render.drop_idle_slot(HOLD_SLOT), RESET_RETRY, RELOAD])
    run_all(topo, node, stmts, step=f"re-point to {upstream}")


def set_slot_sync(topo: Topology, node: str) -> None:
    """A direct standby of the primary keeps failover slots in sync."""
    rows = query(topo, node, "SELECT setting FROM pg_settings WHERE name = 'sync_replication_slots'",
                 step="read sync_replication_slots")
    if rows and rows[0][0] != "on":
        run_all(topo, node, [setting(topo, node, "sync_replication_slots", "on"), RELOAD], step="sync_replication_slots")




# -- the primary's synchronous settings --------------------------------------------------------------

def primary_settings_sql(topo: Topology, node: str, *, sync: SyncConfig | None, standby_slots: Sequence[str],
                         promoting: bool = False) -> list[Query]:
    """The statements that set a primary's synchronous settings and reload; ``promoting``: the node
    is a candidate about to be promoted (``PROMOTING_RETRY``)."""
    stmts: list[Query] = [setting(topo, node, "synchronous_standby_names", sync.text() if sync else "")]
    if topo.postgres.version >= 17:
        stmts.append(setting(topo, node, "synchronized_standby_slots", ", ".join(standby_slots)))
    if promoting:
        stmts.append(alter_system("wal_retrieve_retry_interval", PROMOTING_RETRY))
    stmts.append(RELOAD)
    return stmts


def set_primary_settings(topo: Topology, node: str, *, sync: SyncConfig | None, standby_slots: Sequence[str],
                         port: int | None = None, promoting: bool = False) -> None:
    run_all(topo, node, primary_settings_sql(topo, node, sync=sync, standby_slots=standby_slots, promoting=promoting),
            step="synchronous settings", port=port)




def converge_primary(topo: Topology, cluster: str, primary: str) -> tuple[SyncConfig | None, tuple[str, ...]]:
    """Synchronous settings from the standbys really streaming from ``primary``; records them."""
    direct = [n for n in streaming_standbys(topo, primary) if topo.cluster_of(n) == cluster]
    sync = synchronous.intended_sync(topo, cluster, primary=primary, available=set(direct))
    slots = {str(r[0]) for r in query(topo, primary, "SELECT slot_name FROM pg_replication_slots "
                                      "WHERE slot_type = 'physical'", step="read slots")}
    standby_slots = tuple(slot_name(n) for n in direct if slot_name(n) in slots) if publishing(topo, cluster) else ()
    set_primary_settings(topo, primary, sync=sync, standby_slots=standby_slots)
    if publishing(topo, cluster):
        for n in direct:
            set_slot_sync(topo, n)
    rec = None if sync is None else state.SyncRecord(method=sync.method, count=sync.count, standbys=sync.standbys)
    state.update(topo.name, lambda rt: rt.model_copy(update={"synchronous": {**rt.synchronous, cluster: rec}}))
    return sync, standby_slots


def recorded_sync(topo: Topology, cluster: str) -> SyncConfig | None:
    r = state.load(topo.name).synchronous.get(cluster)
    if r is None:
        return None
    return SyncConfig(method=r.method, count=r.count, standbys=r.standbys, source="state")

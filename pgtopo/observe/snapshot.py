"""A frozen snapshot of what is really running: read from the live databases, not the file.

``collect`` opens one connection per node, in parallel, and returns immutable records that
``status``, ``verify`` and ``failover`` decide on with pure functions.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.rows import dict_row

from pgtopo.errors import PgtopoError, first_line
from pgtopo.model.topology import PG_PORT, RELAY_ALIAS, Topology
from pgtopo.postgres import connect
from pgtopo.runtime import gateway


@dataclass(frozen=True)
class Downstream:
    """A row of pg_stat_replication on the sending node."""

    application_name: str
    state: str
    sent_lsn: str | None
    write_lsn: str | None
    flush_lsn: str | None
    replay_lsn: str | None
    lag_bytes: int | None
    write_lag_s: float | None
    flush_lag_s: float | None
    replay_lag_s: float | None
    sync_state: str
    sync_priority: int


@dataclass(frozen=True)
class Slot:
    name: str
    slot_type: str
    active: bool
    retained_bytes: int | None
    wal_status: str | None
    database: str | None
    failover: bool
    synced: bool
    temporary: bool = False  # a synced slot stays temporary until sync-ready; promotion drops it


@dataclass(frozen=True)
class SubscriptionState:
    name: str
    database: str
    enabled: bool
    publications: tuple[str, ...]
    conninfo: str
    slot_name: str | None
    failover: bool
    worker_running: bool
    tables_ready: int
    tables_total: int
    received_lsn: str | None
    latest_end_time_lag_s: float | None
    apply_errors: int
    sync_errors: int
    last_error: str | None


@dataclass(frozen=True)
class NodeSnapshot:
    node: str
    cluster: str
    region: str
    container: str  # running, exited, paused, missing
    reachable: bool
    error: str | None = None
    in_recovery: bool | None = None
    system_identifier: str | None = None
    timeline: int | None = None
    current_lsn: str | None = None  # primary: pg_current_wal_lsn
    receive_lsn: str | None = None  # replica: pg_last_wal_receive_lsn
    replay_lsn: str | None = None  # replica: pg_last_wal_replay_lsn
    replay_lag_s: float | None = None  # now - pg_last_xact_replay_timestamp
    receiver_status: str | None = None
    upstream: str | None = None  # the node it really streams from
    upstream_raw: str | None = None  # sender host:port as PostgreSQL reports it
    receiver_slot: str | None = None
    downstream: tuple[Downstream, ...] = ()
    slots: tuple[Slot, ...] = ()
    subscriptions: tuple[SubscriptionState, ...] = ()
    settings: dict[str, str] = field(default_factory=dict)
    version: int | None = None
    pending_restart: tuple[str, ...] = ()  # settings changed on disk that need a restart

    @property
    def role(self) -> str:
        if not self.reachable:
            return "down"
        if self.in_recovery:
            return "replica"
        return "primary"

    @property
    def position(self) -> str | None:
        """The most advanced WAL position this node has: written (primary) or received."""
        return self.current_lsn if not self.in_recovery else (self.receive_lsn or self.replay_lsn)


@dataclass(frozen=True)
class Snapshot:
    topology: str
    taken_at: float
    nodes: dict[str, NodeSnapshot]

    def cluster_nodes(self, cluster: str) -> list[NodeSnapshot]:
        return [n for n in self.nodes.values() if n.cluster == cluster]

    def writable(self, cluster: str) -> list[str]:
        return [n.node for n in self.cluster_nodes(cluster) if n.reachable and n.in_recovery is False]


SETTINGS = ("cluster_name", "wal_level", "synchronous_standby_names", "primary_conninfo", "primary_slot_name",
            "hot_standby_feedback", "sync_replication_slots", "synchronized_standby_slots", "wal_log_hints",
            "wal_sender_timeout", "wal_receiver_timeout", "config_file", "hba_file", "max_wal_senders",
            "server_version_num")


def resolve_sender(topo: Topology, *, host: str | None, port: int | None) -> str | None:
    """Which node a WAL receiver really streams from, from the sender host and port."""
    if host is None:
        return None
    if host == RELAY_ALIAS and port is not None:
        key = topo.relay_key(port)
        if key is None:
            return None
        region, name = key
        # The relay listens only across regions: a same-region port is no route to the node.
        return name if topo.node(name).region != region else None
    if host in topo.node_names() and port == PG_PORT:
        return host
    return None


def _seconds(value: Any) -> float | None:
    return None if value is None else float(value.total_seconds())


def _collect_node(topo: Topology, cluster: str, node: str) -> NodeSnapshot:
    region = topo.node(node).region
    base: dict[str, Any] = {"node": node, "cluster": cluster, "region": region}
    container = gateway.find(topo.name, node)
    cstate = "missing" if container is None else gateway.status(container)
    if cstate != "running":
        return NodeSnapshot(**base, container=cstate, reachable=False, error=f"container {cstate}")
    try:
        conn = connect.connect(topo.name, node)
    except PgtopoError as exc:
        return NodeSnapshot(**base, container=cstate, reachable=False, error=exc.message)
    try:
        with conn:
            return _query_node(topo, conn, base, cstate)
    except psycopg.Error as exc:
        msg = first_line(exc)
        return NodeSnapshot(**base, container=cstate, reachable=False, error=msg)


def _query_node(topo: Topology, conn: psycopg.Connection[Any], base: dict[str, Any], cstate: str) -> NodeSnapshot:
    cur = conn.cursor(row_factory=dict_row)
    row = cur.execute(
        "SELECT pg_is_in_recovery() AS rec, (SELECT system_identifier::text FROM pg_control_system()) AS sysid,"
        " CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn()::text END AS cur,"
        # A promoted node still reports its last received/replayed LSNs: only a standby's mean anything.
        " CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn()::text END AS recv,"
        " CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()::text END AS replay,"
        " CASE WHEN pg_is_in_recovery() THEN extract(epoch FROM now() - pg_last_xact_replay_timestamp())"
        " END AS replay_lag,"
        " CASE WHEN pg_is_in_recovery() THEN (SELECT timeline_id FROM pg_control_checkpoint())"
        " ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END AS tli"
    ).fetchone()
    assert row is not None
    tli = row["tli"]
    if row["rec"]:
        # A standby's checkpoint timeline lags; the receiver's timeline is the live one.
        wr = cur.execute("SELECT received_tli FROM pg_stat_wal_receiver").fetchone()
        if wr and wr["received_tli"]:
            tli = max(int(tli or 0), int(wr["received_tli"]))
        # With no receiver (its upstream died) the newest history file it fetched tells the
        # timeline it follows; the checkpoint's can be several switches old.
        hist = cur.execute("SELECT max(('x' || substr(name, 1, 8))::bit(32)::int) AS tli FROM pg_ls_waldir() "
                           "WHERE name ~ '^[0-9A-F]{8}[.]history$'").fetchone()
        if hist and hist["tli"]:
            tli = max(int(tli or 0), int(hist["tli"]))
    receiver = cur.execute(
        "SELECT status, sender_host, sender_port, slot_name FROM pg_stat_wal_receiver").fetchone()
    downstream = tuple(
        Downstream(
            application_name=r["application_name"], state=r["state"], sent_lsn=r["sent_lsn"],
            write_lsn=r["write_lsn"], flush_lsn=r["flush_lsn"], replay_lsn=r["replay_lsn"],
            lag_bytes=None if r["lag"] is None else int(r["lag"]),
            write_lag_s=_seconds(r["write_lag"]), flush_lag_s=_seconds(r["flush_lag"]),
            replay_lag_s=_seconds(r["replay_lag"]), sync_state=r["sync_state"], sync_priority=r["sync_priority"],
        )
        for r in cur.execute(
            "SELECT application_name, state, sent_lsn::text, write_lsn::text, flush_lsn::text, replay_lsn::text,"
            " pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn()"
            " ELSE pg_current_wal_lsn() END, replay_lsn) AS lag,"
            " write_lag, flush_lag, replay_lag, sync_state, sync_priority FROM pg_stat_replication"
            " ORDER BY application_name").fetchall()
    )
    slots = tuple(
        Slot(name=r["slot_name"], slot_type=r["slot_type"], active=r["active"],
             retained_bytes=None if r["retained"] is None else int(r["retained"]), wal_status=r["wal_status"],
             database=r["database"], failover=bool(r["failover"]), synced=bool(r["synced"]),
             temporary=bool(r["temporary"]))
        for r in cur.execute(
            "SELECT slot_name, slot_type, active, wal_status, database, temporary, "
            + ("failover, synced, " if conn.info.server_version >= 170000 else "false AS failover, false AS synced, ")
            + "pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn()"
            " ELSE pg_current_wal_lsn() END, restart_lsn) AS retained FROM pg_replication_slots ORDER BY slot_name"
        ).fetchall()
    )
    settings = {r["name"]: r["setting"] for r in cur.execute(
        "SELECT name, setting FROM pg_settings WHERE name = ANY(%s)", (list(SETTINGS),)).fetchall()}
    pending = tuple(r["name"] for r in cur.execute(
        "SELECT name FROM pg_settings WHERE pending_restart ORDER BY name").fetchall())
    subs = _subscriptions(topo, conn, base["node"])
    return NodeSnapshot(
        **base, container=cstate, reachable=True, in_recovery=row["rec"], system_identifier=row["sysid"],
        timeline=int(tli) if tli is not None else None, current_lsn=row["cur"], receive_lsn=row["recv"],
        replay_lsn=row["replay"], replay_lag_s=None if row["replay_lag"] is None else float(row["replay_lag"]),
        receiver_status=receiver["status"] if receiver else None,
        upstream=resolve_sender(topo, host=receiver["sender_host"], port=receiver["sender_port"]) if receiver else None,
        upstream_raw=f"{receiver['sender_host']}:{receiver['sender_port']}" if receiver else None,
        receiver_slot=receiver["slot_name"] if receiver else None,
        downstream=downstream, slots=slots, subscriptions=subs, settings=settings,
        version=conn.info.server_version // 10000, pending_restart=pending,
    )


def _subscriptions(topo: Topology, conn: psycopg.Connection[Any], node: str) -> tuple[SubscriptionState, ...]:
    cur = conn.cursor(row_factory=dict_row)
    has_failover = conn.info.server_version >= 170000
    subs = cur.execute(
        "SELECT s.oid, s.subname, d.datname, s.subenabled, s.subpublications, s.subconninfo, s.subslotname, "
        + ("s.subfailover" if has_failover else "false") + " AS failover, "
        "st.apply_error_count, st.sync_error_count FROM pg_subscription s JOIN pg_database d ON d.oid = s.subdbid "
        "LEFT JOIN pg_stat_subscription_stats st ON st.subid = s.oid ORDER BY s.subname").fetchall()
    out = []
    for s in subs:
        ready = total = 0
        received = None
        lag = None
        running = False
        try:
            with connect.connect(topo.name, node, dbname=s["datname"]) as dconn:
                dcur = dconn.cursor(row_factory=dict_row)
                rel = dcur.execute(
                    "SELECT count(*) FILTER (WHERE srsubstate = 'r') AS ready, count(*) AS total "
                    "FROM pg_subscription_rel WHERE srsubid = %s", (s["oid"],)).fetchone()
                if rel:
                    ready, total = int(rel["ready"]), int(rel["total"])
                w = dcur.execute(
                    "SELECT received_lsn::text AS lsn, extract(epoch FROM now() - latest_end_time) AS lag, pid "
                    "FROM pg_stat_subscription WHERE subid = %s AND relid IS NULL", (s["oid"],)).fetchone()
                if w:
                    received, running = w["lsn"], w["pid"] is not None
                    lag = None if w["lag"] is None else float(w["lag"])
        except (PgtopoError, psycopg.Error):
            pass
        last_error = _last_apply_error(topo, node, s["subname"])
        out.append(SubscriptionState(
            name=s["subname"], database=s["datname"], enabled=s["subenabled"],
            publications=tuple(s["subpublications"]), conninfo=s["subconninfo"], slot_name=s["subslotname"],
            failover=bool(s["failover"]), worker_running=running, tables_ready=ready, tables_total=total,
            received_lsn=received, latest_end_time_lag_s=lag, apply_errors=int(s["apply_error_count"] or 0),
            sync_errors=int(s["sync_error_count"] or 0), last_error=last_error,
        ))
    return tuple(out)


def _last_apply_error(topo: Topology, node: str, sub: str) -> str | None:
    """The newest logical replication error in the node's log mentioning the subscription."""
    container = gateway.find(topo.name, node)
    if container is None:
        return None
    for line in reversed(gateway.logs(container, tail=200).splitlines()):
        if "ERROR:" in line and sub in line:
            return line.split("ERROR:", 1)[1].strip()
    return None


def collect(topo: Topology) -> Snapshot:
    """One connection per node, in parallel."""
    nodes = [(c, n) for c, n, _spec in topo.all_nodes()]
    with ThreadPoolExecutor(max_workers=max(1, min(8, len(nodes)))) as pool:
        results = list(pool.map(lambda cn: _collect_node(topo, cn[0], cn[1]), nodes))
    return Snapshot(topology=topo.name, taken_at=time.time(), nodes={r.node: r for r in results})

"""A frozen snapshot of what is really running: read from the live databases, not the file.

``collect`` opens one connection per node, in parallel, and returns immutable records that
``status``, ``verify`` and ``failover`` decide on with pure functions.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import psycopg
from psycopg.rows import dict_row

from pgtopo.errors import PgtopoError, first_line
from pgtopo.model.topology import PG_PORT, RELAY_ALIAS, Topology
from pgtopo.postgres import connect
from pgtopo.runtime import gateway, state


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
    # Regions and nodes `pgtopo partition` cut off from the other regions (the relay blackholes
    # their cross-region traffic): who can reach whom, which pgtopo itself (on the host) cannot see.
    partitioned: frozenset[str] = frozenset()

    def cluster_nodes(self, cluster: str) -> list[NodeSnapshot]:
        return [n for n in self.nodes.values() if n.cluster == cluster]

    def writable(self, cluster: str) -> list[str]:
        return [n.node for n in self.cluster_nodes(cluster) if n.reachable and n.in_recovery is False]


COLLECT_WORKERS = 32
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
            # A Patroni member's one address: the relay's mesh port of its PostgreSQL.
            return next((m for m, _region, services in topo.mesh_members()
                         if PG_PORT in services and topo.mesh_port(m, PG_PORT) == port), None)
        region, name = key
        # The relay listens only across regions: a same-region port is no route to the node.
        return name if topo.node(name).region != region else None
    if host in topo.node_names() and port == PG_PORT:
        return host
    return None


def _seconds(value: Any) -> float | None:
    return None if value is None else float(value.total_seconds())


def _base(topo: Topology, cluster: str, node: str) -> dict[str, Any]:
    return {"node": node, "cluster": cluster, "region": topo.node(node).region}


def _address(listed: gateway.Listed) -> str | None:
    """The container's own address where the host is on its network (else its published port is
    used): docker-proxy's copy of each connection is a third of what it costs the machine."""
    return listed.address if connect.reachable(listed.address) else None


def _collect_node(topo: Topology, cluster: str, node: str, listed: gateway.Listed | None, *,
                  light: bool = False, subscriptions_only: bool = False, rank_only: bool = False,
                  held: connect.Held | None = None) -> NodeSnapshot:
    base = _base(topo, cluster, node)
    cstate = "missing" if listed is None else listed.status
    if listed is None or cstate != "running":
        return NodeSnapshot(**base, container=cstate, reachable=False, error=f"container {cstate}")
    port = listed.ports.get(connect.PG_PORT_KEY)
    if port is None:
        return NodeSnapshot(**base, container=cstate, reachable=False, error="PostgreSQL's port is not published")
    try:
        conn = connect.connect(topo.name, node, port=port, address=_address(listed))
    except PgtopoError as exc:
        return NodeSnapshot(**base, container=cstate, reachable=False, error=exc.message)
    try:
        got = _query_node(topo, conn, base, cstate, listed=listed, light=light,
                          subscriptions_only=subscriptions_only, rank_only=rank_only)
    except psycopg.Error as exc:
        conn.close()
        return NodeSnapshot(**base, container=cstate, reachable=False, error=first_line(exc))
    if held is None or not held.keep(node, conn):
        conn.close()
    return got


# Every query of a node goes out in one pipeline: one round trip instead of one per query. The
# standby-only ones cost nothing on a primary (its WAL receiver view is empty).
_MAIN_SQL = (
    "SELECT pg_is_in_recovery() AS rec, (SELECT system_identifier::text FROM pg_control_system()) AS sysid,"
    " CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn()::text END AS cur,"
    # A promoted node still reports its last received/replayed LSNs: only a standby's mean anything.
    " CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn()::text END AS recv,"
    " CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()::text END AS replay,"
    " CASE WHEN pg_is_in_recovery() THEN extract(epoch FROM now() - pg_last_xact_replay_timestamp())"
    " END AS replay_lag,"
    " CASE WHEN pg_is_in_recovery() THEN (SELECT timeline_id FROM pg_control_checkpoint())"
    " ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END AS tli")
# The statistics functions behind pg_stat_wal_receiver, pg_stat_replication and pg_replication_slots,
# called directly: a new backend then plans no view (their rewrite rules read and their joins planned);
# measured on a standby, a snapshot's backend spent 2-3 ms of CPU less (of 14).
_RECEIVER_SQL = ("SELECT status, sender_host, sender_port, slot_name, received_tli FROM pg_stat_get_wal_receiver()"
                 " WHERE pid IS NOT NULL")
_HISTORY_SQL = ("SELECT CASE WHEN pg_is_in_recovery() THEN max(('x' || substr(name, 1, 8))::bit(32)::int) END AS tli"
                " FROM pg_ls_waldir() WHERE name ~ '^[0-9A-F]{8}[.]history$'")
_DOWNSTREAM_SQL = (
    "SELECT a.application_name, w.state, w.sent_lsn::text, w.write_lsn::text, w.flush_lsn::text, w.replay_lsn::text,"
    " pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn()"
    " ELSE pg_current_wal_lsn() END, w.replay_lsn) AS lag,"
    " w.write_lag, w.flush_lag, w.replay_lag, w.sync_state, w.sync_priority"
    " FROM pg_stat_get_wal_senders() w, pg_stat_get_activity(w.pid) a ORDER BY a.application_name")
# One scan of pg_settings (it builds every setting of the server, a few ms on a new backend) for
# the settings pgtopo reads and those waiting for a restart.
_SETTINGS_SQL = "SELECT name, setting, pending_restart FROM pg_settings WHERE name = ANY(%s) OR pending_restart ORDER BY name"
# A light snapshot needs no pending restart: it reads its few settings one by one, without
# pg_settings, leaving out those whose current_setting() text carries a unit where
# pg_settings.setting has none.
_LIGHT_SETTINGS_SQL = "SELECT n AS name, current_setting(n, true) AS setting FROM unnest(%s::text[]) AS n"
LIGHT_SETTINGS = tuple(s for s in SETTINGS if s not in ("wal_sender_timeout", "wal_receiver_timeout"))


def _slots_sql(version: int) -> str:
    return ("SELECT slot_name, slot_type, active, wal_status, (SELECT datname FROM pg_database WHERE oid = datoid)"
            " AS database, temporary, "
            + ("failover, synced, " if version >= 170000 else "false AS failover, false AS synced, ")
            # On a replica the receive position can be behind replay (after a restart it restarts
            # at a segment's start): the newer of the two, so a slot never retains "minus" bytes.
            + "pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() THEN GREATEST(pg_last_wal_receive_lsn(), "
            "pg_last_wal_replay_lsn()) ELSE pg_current_wal_lsn() END, restart_lsn) AS retained "
            "FROM pg_get_replication_slots() ORDER BY slot_name")


def _subscriptions_sql(version: int) -> str:
    return ("SELECT s.oid, s.subname, d.datname, s.subenabled, s.subpublications, s.subconninfo, s.subslotname, "
            + ("s.subfailover" if version >= 170000 else "false") + " AS failover, "
            "st.apply_error_count, st.sync_error_count FROM pg_subscription s JOIN pg_database d ON d.oid = s.subdbid "
            "LEFT JOIN pg_stat_subscription_stats st ON st.subid = s.oid ORDER BY s.subname")


def _queries(version: int, *, light: bool, subscriptions_only: bool,
             rank_only: bool = False) -> dict[str, tuple[str, tuple[Any, ...]]]:
    """What one node is asked, by name: everything (status, verify); less for a failover's plan
    (``light``: no pending restarts nor subscriptions, settings without pg_settings); only its role and subscriptions
    for a node that matters to a failover only as a subscriber (``subscriptions_only``); only what ranks
    it as a candidate (``rank_only``: role, WAL positions, timeline, its WAL receiver and the replicas
    it streams to; no slots nor settings: an unattended failover reads the chosen candidate's slots
    afterwards, ``slots``)."""
    if subscriptions_only:
        return {"main": (_MAIN_SQL, ()), "subs": (_subscriptions_sql(version), ())}
    if rank_only:
        return {"main": (_MAIN_SQL, ()), "recv": (_RECEIVER_SQL, ()), "hist": (_HISTORY_SQL, ()),
                "down": (_DOWNSTREAM_SQL, ())}
    out: dict[str, tuple[str, tuple[Any, ...]]] = {
        "main": (_MAIN_SQL, ()), "recv": (_RECEIVER_SQL, ()), "hist": (_HISTORY_SQL, ()), "down": (_DOWNSTREAM_SQL, ()),
        "slots": (_slots_sql(version), ()),
        "settings": (_LIGHT_SETTINGS_SQL, (list(LIGHT_SETTINGS),)) if light else (_SETTINGS_SQL, (list(SETTINGS),))}
    if not light:
        # A failover's plan reads no member's subscriptions (the candidate's are read on their own,
        # ``pgtopo.ha.inherited``), only its subscribers' (``subscriptions_only``).
        out["subs"] = (_subscriptions_sql(version), ())
    return out


def _query_node(topo: Topology, conn: psycopg.Connection[Any], base: dict[str, Any], cstate: str, *,
                listed: gateway.Listed, light: bool, subscriptions_only: bool = False,
                rank_only: bool = False) -> NodeSnapshot:
    version = conn.info.server_version
    queries = _queries(version, light=light, subscriptions_only=subscriptions_only, rank_only=rank_only)
    cursors = {name: conn.cursor(row_factory=dict_row) for name in queries}
    with conn.pipeline():
        for name, (query, params) in queries.items():
            cursors[name].execute(query, params or None)
    got = {name: cur.fetchall() for name, cur in cursors.items()}
    main, recv, hist, down, slot_rows, setting_rows, sub_rows = (
        got.get(name, []) for name in ("main", "recv", "hist", "down", "slots", "settings", "subs"))
    row = main[0]
    receiver = recv[0] if recv else None
    tli = row["tli"]
    if row["rec"]:
        # A standby's checkpoint timeline lags; the receiver's timeline is the live one.
        if receiver and receiver["received_tli"]:
            tli = max(int(tli or 0), int(receiver["received_tli"]))
        # With no receiver (its upstream died) the newest history file it fetched tells the
        # timeline it follows; the checkpoint's can be several switches old.
        if hist and hist[0]["tli"]:
            tli = max(int(tli or 0), int(hist[0]["tli"]))
    downstream = tuple(
        Downstream(
            application_name=r["application_name"], state=r["state"], sent_lsn=r["sent_lsn"],
            write_lsn=r["write_lsn"], flush_lsn=r["flush_lsn"], replay_lsn=r["replay_lsn"],
            lag_bytes=None if r["lag"] is None else int(r["lag"]),
            write_lag_s=_seconds(r["write_lag"]), flush_lag_s=_seconds(r["flush_lag"]),
            replay_lag_s=_seconds(r["replay_lag"]), sync_state=r["sync_state"], sync_priority=r["sync_priority"],
        )
        for r in down
    )
    slots = _slots(slot_rows)
    settings = {r["name"]: r["setting"] for r in setting_rows if r["name"] in SETTINGS and r["setting"] is not None}
    pending = tuple(r["name"] for r in setting_rows if r.get("pending_restart"))
    # pg_subscription is a shared catalog copied to standbys, where no worker ever runs: a standby's
    # subscriptions are listed as its catalog says, without a connection per database for their
    # tables nor its log (at 30 nodes, 12 connections and 12 Docker calls that told nothing).
    subs = _subscriptions(topo, base["node"], sub_rows, listed=listed, light=light or bool(row["rec"]))
    return NodeSnapshot(
        **base, container=cstate, reachable=True, in_recovery=row["rec"], system_identifier=row["sysid"],
        timeline=int(tli) if tli is not None else None, current_lsn=row["cur"], receive_lsn=row["recv"],
        replay_lsn=row["replay"], replay_lag_s=None if row["replay_lag"] is None else float(row["replay_lag"]),
        receiver_status=receiver["status"] if receiver else None,
        upstream=resolve_sender(topo, host=receiver["sender_host"], port=receiver["sender_port"]) if receiver else None,
        upstream_raw=f"{receiver['sender_host']}:{receiver['sender_port']}" if receiver else None,
        receiver_slot=receiver["slot_name"] if receiver else None,
        downstream=downstream, slots=slots, subscriptions=subs, settings=settings,
        version=version // 10000, pending_restart=pending,
    )


def _slots(rows: list[dict[str, Any]]) -> tuple[Slot, ...]:
    return tuple(
        Slot(name=r["slot_name"], slot_type=r["slot_type"], active=r["active"],
             retained_bytes=None if r["retained"] is None else int(r["retained"]), wal_status=r["wal_status"],
             database=r["database"], failover=bool(r["failover"]), synced=bool(r["synced"]),
             temporary=bool(r["temporary"]))
        for r in rows
    )


def slots(conn: psycopg.Connection[Any]) -> tuple[Slot, ...]:
    """A node's replication slots, on an open connection to it (a candidate asked ``rank_only``)."""
    return _slots(conn.cursor(row_factory=dict_row).execute(_slots_sql(conn.info.server_version)).fetchall())


def _subscriptions(topo: Topology, node: str, subs: list[dict[str, Any]], *, listed: gateway.Listed,
                   light: bool) -> tuple[SubscriptionState, ...]:
    """Per-table states live in each subscription's own database: one connection per database.

    ``light``: what pg_subscription says, without their workers and tables (a connection per
    database) nor the last error (the container's log): what a failover's plan needs, and all
    there is to know on a standby (no worker runs there: tables 0/0, worker not running)."""
    progress: dict[int, tuple[int, int, str | None, float | None, bool]] = {}
    for db in dict.fromkeys(s["datname"] for s in subs) if not light else ():
        oids = [s["oid"] for s in subs if s["datname"] == db]
        try:
            with connect.connect(topo.name, node, dbname=db, port=listed.ports.get(connect.PG_PORT_KEY),
                                 address=_address(listed)) as dconn:
                dcur = dconn.cursor(row_factory=dict_row)
                rows = dcur.execute(
                    "SELECT s.oid, (SELECT count(*) FILTER (WHERE srsubstate = 'r') FROM pg_subscription_rel r"
                    " WHERE r.srsubid = s.oid) AS ready,"
                    " (SELECT count(*) FROM pg_subscription_rel r WHERE r.srsubid = s.oid) AS total,"
                    " w.received_lsn::text AS lsn, extract(epoch FROM now() - w.latest_end_time) AS lag, w.pid"
                    " FROM unnest(%s::oid[]) AS s(oid)"
                    " LEFT JOIN pg_stat_subscription w ON w.subid = s.oid AND w.relid IS NULL", (oids,)).fetchall()
        except (PgtopoError, psycopg.Error):
            continue
        for r in rows:
            progress[r["oid"]] = (int(r["ready"]), int(r["total"]), r["lsn"],
                                  None if r["lag"] is None else float(r["lag"]), r["pid"] is not None)
    log = gateway.logs_by_id(listed.id, tail=200).splitlines() if subs and not light else []
    out = []
    for s in subs:
        ready, total, received, lag, running = progress.get(s["oid"], (0, 0, None, None, False))
        out.append(SubscriptionState(
            name=s["subname"], database=s["datname"], enabled=s["subenabled"],
            publications=tuple(s["subpublications"]), conninfo=s["subconninfo"], slot_name=s["subslotname"],
            failover=bool(s["failover"]), worker_running=running, tables_ready=ready, tables_total=total,
            received_lsn=received, latest_end_time_lag_s=lag, apply_errors=int(s["apply_error_count"] or 0),
            sync_errors=int(s["sync_error_count"] or 0), last_error=_last_error(log, s["subname"]),
        ))
    return tuple(out)


def _last_error(log: list[str], sub: str) -> str | None:
    """The newest logical replication error in the node's log mentioning the subscription."""
    for line in reversed(log):
        if "ERROR:" in line and sub in line:
            return line.split("ERROR:", 1)[1].strip()
    return None


def collect(topo: Topology, *, nodes: Iterable[str] | None = None, timeout: float | None = None,
            light: bool = False, subscriptions_only: Collection[str] = (), rank_only: Collection[str] = (),
            listed: Mapping[str, gateway.Listed] | None = None, held: connect.Held | None = None) -> Snapshot:
    """One connection per node (every node, or only ``nodes``), in parallel; the containers'
    states from one Docker call (none with ``listed``: the nodes' containers as `containers` listed
    them moments before, for a plan that asks its nodes in rounds).

    With ``timeout``, a node that has not answered within that many seconds is recorded as
    unreachable ("no answer within N s") and not waited for: a failover must not wait on a node
    that hangs. ``light`` leaves out what only status and verify show (the nodes' subscriptions,
    pending restarts, the settings with a unit); the nodes in
    ``subscriptions_only`` are asked only their role and subscriptions (a failover's subscribers), those
    in ``rank_only`` only what ranks them as candidates (no slots nor settings). With ``held``, each
    connection that answered stays open there (a failover goes on with its candidate's).
    """
    wanted = None if nodes is None else set(nodes)
    targets = [(c, n) for c, n, _spec in topo.all_nodes() if wanted is None or n in wanted]
    if listed is None:
        listed = _listed(topo, targets, whole=wanted is None)
    partitioned = frozenset(state.load(topo.name).partitioned)

    def one(cn: tuple[str, str]) -> NodeSnapshot:
        return _collect_node(topo, cn[0], cn[1], listed.get(cn[1]), light=light,
                             subscriptions_only=cn[1] in subscriptions_only, rank_only=cn[1] in rank_only, held=held)

    if timeout is None:
        # The work is waiting (the connection's authentication, one pipelined round trip): a
        # thread per node up to a bound, not a handful for all.
        with ThreadPoolExecutor(max_workers=max(1, min(COLLECT_WORKERS, len(targets)))) as pool:
            results = list(pool.map(one, targets))
    else:
        results = _within(one, targets, timeout=timeout, late=lambda cn: NodeSnapshot(
            **_base(topo, *cn), container=listed[cn[1]].status if cn[1] in listed else "missing", reachable=False,
            error=f"no answer within {timeout:g} s"))
    return Snapshot(topology=topo.name, taken_at=time.time(), nodes={r.node: r for r in results},
                    partitioned=partitioned)


def containers(topo: Topology, nodes: Iterable[str]) -> dict[str, gateway.Listed]:
    """The containers of ``nodes`` (and maybe others), by node, in one Docker call: what `collect`
    lists, for a caller that asks the same nodes in several rounds."""
    wanted = set(nodes)
    return _listed(topo, [(c, n) for c, n, _spec in topo.all_nodes() if n in wanted], whole=False)


def _listed(topo: Topology, targets: list[tuple[str, str]], *, whole: bool) -> dict[str, gateway.Listed]:
    """The targets' containers by node, in one Docker call: only their cluster's when they are all in
    one (a failover's plan asks one cluster's members). A target the cluster's list lacks (a
    container labelled before its node moved to another cluster) sends the call again for all."""
    clusters = {c for c, _n in targets}
    if not whole and len(clusters) == 1:
        found = {c.node: c for c in gateway.listed(topo.name, kind="node", cluster=next(iter(clusters))) if c.node}
        if all(n in found for _c, n in targets):
            return found
    return {c.node: c for c in gateway.listed(topo.name, kind="node") if c.node}


T = TypeVar("T")
R = TypeVar("R")


def _within(fn: Callable[[T], R], items: list[T], *, timeout: float, late: Callable[[T], R]) -> list[R]:
    """``fn`` on every item at once; an item not done within ``timeout`` s gets ``late(item)``.

    Daemon threads, not a pool: a pool joins its threads at exit, so one node that never answers
    would hold the command until it does.
    """
    results: dict[int, R | BaseException] = {}
    lock = threading.Lock()
    all_done = threading.Event()

    def run(i: int, item: T) -> None:
        r: R | BaseException
        try:
            r = fn(item)
        except Exception as exc:  # handed to the caller's thread below, raised there
            r = exc
        with lock:
            results[i] = r
            if len(results) == len(items):
                all_done.set()

    if not items:
        return []
    for i, item in enumerate(items):
        threading.Thread(target=run, args=(i, item), daemon=True, name="pgtopo-snapshot").start()
    all_done.wait(timeout)
    with lock:
        done = dict(results)
    out: list[R] = []
    for i, item in enumerate(items):
        r = done.get(i, _LATE)
        if isinstance(r, BaseException):
            raise r
        out.append(late(item) if r is _LATE else cast(R, r))
    return out


_LATE = object()

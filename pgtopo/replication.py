"""Carry out a failover, switchover or rejoin: fence, promote, re-point, move subscribers, rewind.

The decisions are made beforehand by ``pgtopo.failover`` on a frozen snapshot; this module
acts on the live nodes (SQL over the nodes' published ports, files and pg_rewind through
``docker exec``) and reports what it did and how long it took. Every failure names the node
and the step.
"""

from __future__ import annotations

import contextlib
import functools
import re
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, LiteralString

import psycopg
from psycopg import sql

from pgtopo import connect, deploy, failover, instance, render, runtime, snapshot, state
from pgtopo.errors import InputError, OperationFailed, PgtopoError
from pgtopo.failover import Plan, SubscriberMove, SyncConfig, fmt_bytes, fmt_lsn
from pgtopo.topology import Topology, endpoint, slot_name

if TYPE_CHECKING:  # the Docker SDK itself is only imported by pgtopo.runtime
    from docker.models.containers import Container

Progress = Callable[[str, str], None]
Query = LiteralString | sql.SQL | sql.Composed

FENCE_STOP_TIMEOUT = 5  # a fast shutdown of a healthy primary takes well under a second
SWITCHOVER_STOP_TIMEOUT = 60
SYNC_GUARD_S = 20.0  # a new primary never waits longer than this for a synchronous standby
STREAM_TIMEOUT = 60.0
AUTO_CONF = f"{instance.PGDATA}/postgresql.auto.conf"
MANAGED_SETTINGS = ("primary_conninfo", "primary_slot_name", "sync_replication_slots", "synchronous_standby_names",
                    "synchronized_standby_slots")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else exc.__class__.__name__


# -- SQL on a node ---------------------------------------------------------------------------------

def query(topo: Topology, node: str, stmt: Query, params: Sequence[Any] | None = None, *, db: str = "postgres",
          step: str, autocommit: bool = True) -> list[tuple[Any, ...]]:
    """One statement on ``node`` as pgtopo; psycopg errors become OperationFailed(node, step)."""
    try:
        with connect.connect(topo.name, node, dbname=db, autocommit=autocommit) as conn:
            cur = conn.execute(stmt, params)
            return list(cur.fetchall()) if cur.description else []
    except psycopg.Error as exc:
        raise OperationFailed(_first_line(exc), node=node, step=step) from None


def run_all(topo: Topology, node: str, stmts: Sequence[Query], *, db: str = "postgres", step: str) -> None:
    """Several statements on one connection, in order (autocommit: ALTER SYSTEM, subscriptions)."""
    try:
        with connect.connect(topo.name, node, dbname=db) as conn:
            for stmt in stmts:
                conn.execute(stmt)
    except psycopg.Error as exc:
        raise OperationFailed(_first_line(exc), node=node, step=step) from None


def alter_system(name: str, value: str) -> sql.Composed:
    return sql.SQL("ALTER SYSTEM SET {} = {}").format(sql.Identifier(name), sql.Literal(value))


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
        return sql.SQL("ALTER SYSTEM RESET {}").format(sql.Identifier(name))
    return alter_system(name, value)


RELOAD: Query = "SELECT pg_reload_conf()"


def publishing(topo: Topology, cluster: str) -> bool:
    """Failover slots are kept in sync on the primary's direct standbys (PostgreSQL 17)."""
    return topo.postgres.version >= 17 and render.publishes(topo, cluster)


def replica_conninfo(topo: Topology, *, node: str, upstream: str) -> str:
    ep = endpoint(topo, from_region=topo.node(node).region, node=upstream)
    return render.conninfo(host=ep.host, port=ep.port, user="replicator", application_name=node, dbname="postgres")


def _container(topo: Topology, node: str) -> Container:
    c = runtime.find(topo.name, node)
    if c is None:
        raise OperationFailed("no container", node=node, step="find container")
    return c


def _parallel(jobs: dict[str, Callable[[], Any]]) -> dict[str, PgtopoError | None]:
    """Run independent jobs at once; returns each job's error (or None)."""
    out: dict[str, PgtopoError | None] = {}
    if not jobs:
        return out
    with ThreadPoolExecutor(max_workers=min(8, len(jobs))) as pool:
        futures = {name: pool.submit(fn) for name, fn in jobs.items()}
        for name, fut in futures.items():
            try:
                fut.result()
                out[name] = None
            except PgtopoError as exc:
                out[name] = exc
    return out


# -- fencing -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Fence:
    node: str
    method: str  # stopped, disconnected, already down
    detail: str


def fence(topo: Topology, node: str, *, timeout: int, progress: Progress) -> Fence:
    """Make sure ``node`` accepts connections from nowhere: stopped, else cut off every network.

    The ready marker goes first, so a container restarted by anyone keeps PostgreSQL down.
    """
    c = runtime.find(topo.name, node)
    if c is None:
        return _record_fence(topo, Fence(node, "already down", "no container"))
    st = runtime.status(c)
    result: Fence | None = None
    if st in ("exited", "dead", "created"):
        result = Fence(node, "already down", f"container {st}")
    elif st == "running":
        progress(node, "fencing: docker stop (fast shutdown)")
        try:
            runtime.exec_in(c, ["rm", "-f", instance.READY_MARKER], user="root")
            runtime.stop(c, timeout=timeout)
        except PgtopoError:
            with contextlib.suppress(PgtopoError):
                runtime.kill(c)
        st = runtime.status(c)
        if st not in ("running", "paused", "restarting"):
            result = Fence(node, "stopped", f"container {st}")
    if result is None:
        progress(node, f"fencing: disconnecting from every network (container {st}, cannot be stopped)")
        nets = runtime.disconnect_all(c)
        result = Fence(node, "disconnected", f"container {st}, removed from {', '.join(nets) or 'no network'}")
    st = runtime.status(c)
    left = runtime.network_names(c) if st in ("running", "paused", "restarting") else []
    if left:
        raise OperationFailed(f"still {st} and attached to {', '.join(left)}: not fenced", node=node, step="fence")
    return _record_fence(topo, result)


def _record_fence(topo: Topology, f: Fence) -> Fence:
    fenced = dict(state.load_runtime(topo.name).get("fenced", {}))
    fenced[f.node] = {"method": f.method, "detail": f.detail, "at": _now()}
    state.update_runtime(topo.name, fenced=fenced)
    return f


def _unfence(topo: Topology, node: str) -> None:
    fenced = dict(state.load_runtime(topo.name).get("fenced", {}))
    if fenced.pop(node, None) is not None:
        state.update_runtime(topo.name, fenced=fenced)


def kill_node(topo: Topology, node: str) -> str:
    """SIGKILL a node's container (a crash, for drills). Returns its last known position if primary."""
    topo.node(node)
    c = runtime.find(topo.name, node)
    st = "missing" if c is None else runtime.status(c)
    if c is None or st != "running":
        raise InputError(f"{node} is not running (container {st})")
    last = ""
    try:
        rows = query(topo, node, "SELECT pg_current_wal_lsn()::text, substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)"
                     " WHERE NOT pg_is_in_recovery()", step="read position")
        if rows:
            last = str(rows[0][0])
            known = dict(state.load_runtime(topo.name).get("last_known", {}))
            known[node] = {"lsn": last, "timeline": int(str(rows[0][1]), 16), "at": _now()}
            state.update_runtime(topo.name, last_known=known)
    except PgtopoError:
        pass
    runtime.kill(c)
    return last


# -- replicas ----------------------------------------------------------------------------------------

def create_slot(topo: Topology, *, on: str, slot: str) -> None:
    """A physical slot on the new upstream, reserving WAL now (idempotent)."""
    query(topo, on, sql.SQL(
        "SELECT pg_create_physical_replication_slot({}, true) WHERE NOT EXISTS "
        "(SELECT 1 FROM pg_replication_slots WHERE slot_name = {})").format(sql.Literal(slot), sql.Literal(slot)),
        step=f"create slot {slot}")


def drop_slot(topo: Topology, *, on: str, slot: str) -> None:
    query(topo, on, "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
          "WHERE slot_name = %s AND NOT active", (slot,), step=f"drop slot {slot}")


def repoint(topo: Topology, *, node: str, upstream: str, slot_sync: bool | None) -> None:
    """ALTER SYSTEM primary_conninfo / primary_slot_name and reload: the WAL receiver reconnects."""
    stmts: list[Query] = [
        setting(topo, node, "primary_conninfo", replica_conninfo(topo, node=node, upstream=upstream)),
        setting(topo, node, "primary_slot_name", slot_name(node)),
    ]
    if slot_sync is not None and topo.postgres.version >= 17:
        stmts.append(setting(topo, node, "sync_replication_slots", "on" if slot_sync else "off"))
    stmts.append(RELOAD)
    run_all(topo, node, stmts, step=f"re-point to {upstream}")


def set_slot_sync(topo: Topology, node: str) -> None:
    """A direct standby of the primary keeps failover slots in sync."""
    rows = query(topo, node, "SELECT setting FROM pg_settings WHERE name = 'sync_replication_slots'",
                 step="read sync_replication_slots")
    if rows and rows[0][0] != "on":
        run_all(topo, node, [setting(topo, node, "sync_replication_slots", "on"), RELOAD], step="sync_replication_slots")


def wait_streaming(topo: Topology, node: str, *, timeline: int | None, timeout: float = STREAM_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    last = "no WAL receiver"
    while time.monotonic() < deadline:
        try:
            rows = query(topo, node, "SELECT status, received_tli FROM pg_stat_wal_receiver", step="wait for streaming")
        except PgtopoError as exc:
            rows, last = [], exc.message
        if rows:
            status, tli = rows[0]
            last = f"{status} on timeline {tli}"
            if status == "streaming" and (timeline is None or tli == timeline):
                return
        time.sleep(0.2)
    raise OperationFailed(f"not streaming after {timeout:.0f} s ({last})", node=node, step="wait for streaming")


# -- the new primary ---------------------------------------------------------------------------------

def set_primary_settings(topo: Topology, node: str, *, sync: SyncConfig | None, standby_slots: Sequence[str]) -> None:
    stmts: list[Query] = [setting(topo, node, "synchronous_standby_names", sync.text() if sync else "")]
    if topo.postgres.version >= 17:
        stmts.append(setting(topo, node, "synchronized_standby_slots", ", ".join(standby_slots)))
    stmts.append(RELOAD)
    run_all(topo, node, stmts, step="synchronous settings")


def promote(topo: Topology, node: str) -> None:
    rows = query(topo, node, "SELECT pg_promote(wait => true, wait_seconds => 60)", step="pg_promote")
    if not rows or rows[0][0] is not True:
        raise OperationFailed("pg_promote did not finish within 60 s", node=node, step="pg_promote")


def first_write(topo: Topology, node: str, *, guard_s: float = SYNC_GUARD_S, timeout: float = 30) -> bool:
    """Commit a transaction that writes (gets an xid); True if a synchronous wait had to be released.

    A commit waits for the synchronous standbys set on the new primary; if none acknowledges
    within ``guard_s``, synchronous_standby_names is emptied: never wait for a standby that is gone.
    """
    released = threading.Event()

    def release() -> None:
        try:
            run_all(topo, node, [alter_system("synchronous_standby_names", ""), RELOAD], step="release synchronous wait")
            released.set()
        except PgtopoError:
            pass

    timer = threading.Timer(guard_s, release)
    timer.start()
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                with connect.connect(topo.name, node, autocommit=False) as conn:
                    conn.execute("SELECT pg_current_xact_id()")
                return released.is_set()
            except (psycopg.Error, PgtopoError) as exc:
                if time.monotonic() > deadline:
                    raise OperationFailed(f"no write accepted: {_first_line(exc)}", node=node, step="first write") from None
                time.sleep(0.05)
    finally:
        timer.cancel()


def streaming_standbys(topo: Topology, node: str) -> list[str]:
    rows = query(topo, node, "SELECT application_name FROM pg_stat_replication WHERE state IN ('streaming', 'catchup')",
                 step="read standbys")
    names = {str(r[0]) for r in rows}
    return [n for n in topo.node_names() if n in names]


def converge_primary(topo: Topology, cluster: str, primary: str) -> tuple[SyncConfig | None, tuple[str, ...]]:
    """Synchronous settings from the standbys really streaming from ``primary``; records them."""
    direct = [n for n in streaming_standbys(topo, primary) if topo.cluster_of(n) == cluster]
    sync = failover.intended_sync(topo, cluster, primary=primary, available=set(direct))
    slots = {str(r[0]) for r in query(topo, primary, "SELECT slot_name FROM pg_replication_slots "
                                      "WHERE slot_type = 'physical'", step="read slots")}
    standby_slots = tuple(slot_name(n) for n in direct if slot_name(n) in slots) if publishing(topo, cluster) else ()
    set_primary_settings(topo, primary, sync=sync, standby_slots=standby_slots)
    if publishing(topo, cluster):
        for n in direct:
            set_slot_sync(topo, n)
    recorded = dict(state.load_runtime(topo.name).get("synchronous", {}))
    recorded[cluster] = None if sync is None else {"method": sync.method, "count": sync.count,
                                                   "standbys": list(sync.standbys)}
    state.update_runtime(topo.name, synchronous=recorded)
    return sync, standby_slots


def recorded_sync(topo: Topology, cluster: str) -> SyncConfig | None:
    rec = state.load_runtime(topo.name).get("synchronous", {})
    if cluster not in rec or rec[cluster] is None:
        return None
    r = rec[cluster]
    return SyncConfig(method=r["method"], count=int(r["count"]), standbys=tuple(r["standbys"]), source="state")


def _record_primary(topo: Topology, cluster: str, node: str) -> None:
    primaries = deploy.current_primaries(topo)
    primaries[cluster] = node
    state.update_runtime(topo.name, primaries=primaries)


# -- files inside a stopped node ---------------------------------------------------------------------

def _quote_conf(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def auto_conf_text(existing: str, settings: dict[str, str | None]) -> str:
    """postgresql.auto.conf with ``settings`` replaced (None removes); other lines are kept."""
    keep = []
    for line in existing.splitlines():
        key = line.split("=", 1)[0].strip()
        if key in settings or (key.startswith("#") and "pgtopo" in key):
            continue
        keep.append(line)
    if not keep or not keep[0].startswith("# Do not edit"):
        keep.insert(0, "# Do not edit this file manually!\n# It will be overwritten by the ALTER SYSTEM command.")
    values = [f"{k} = {_quote_conf(v)}" for k, v in settings.items() if v is not None]
    if values:
        keep.append("# pgtopo: this node's upstream, written while PostgreSQL was stopped")
        keep.extend(values)
    return "\n".join(keep) + "\n"


def _write_auto_conf(topo: Topology, c: Container, settings: dict[str, str | None]) -> None:
    rendered = rendered_settings(topo, instance.node_of(c))
    settings = {k: (None if v == rendered.get(k) else v) for k, v in settings.items()}
    res = runtime.exec_in(c, ["cat", AUTO_CONF])
    text = auto_conf_text(res.stdout if res.rc == 0 else "", settings)
    runtime.put_files(c, {"postgresql.auto.conf": (text, 0o644)}, directory="/tmp/pgtopo")
    instance.run(c, "write postgresql.auto.conf", ["sh", "-c", f"cp /tmp/pgtopo/postgresql.auto.conf {AUTO_CONF} && "
                                                   f"chmod 600 {AUTO_CONF}"])
    runtime.exec_in(c, ["rm", "-rf", "/tmp/pgtopo"], user="root")


def standby_settings(topo: Topology, *, node: str, upstream: str, primary: str) -> dict[str, str | None]:
    cluster = topo.cluster_of(node)
    slot_sync = publishing(topo, cluster) and upstream == primary
    return {
        "primary_conninfo": replica_conninfo(topo, node=node, upstream=upstream),
        "primary_slot_name": slot_name(node),
        "sync_replication_slots": ("on" if slot_sync else "off") if topo.postgres.version >= 17 else None,
        # The source's (or its own former) primary settings mean nothing on a standby.
        "synchronous_standby_names": None,
        "synchronized_standby_slots": None,
    }


def _start_as_standby(topo: Topology, c: Container, *, node: str, upstream: str, primary: str,
                      keep_slots: Sequence[str] = ()) -> None:
    """PostgreSQL is stopped in ``c``: make it a standby of ``upstream`` and start it.

    Its own slots go (pg_rewind keeps the target's pg_replslot), except those of replicas that
    stay behind it: a same-name logical slot left on a demoted primary blocks slot sync, and
    stale physical slots hold WAL forever.
    """
    _write_auto_conf(topo, c, standby_settings(topo, node=node, upstream=upstream, primary=primary))
    keep = " ".join(keep_slots)
    instance.run(c, "standby.signal", ["sh", "-c", f"cd {instance.PGDATA}/pg_replslot && for s in *; do "
                                       f"case ' {keep} ' in *\" $s \"*) ;; *) rm -rf -- \"$s\" ;; esac; done && "
                                       f"touch {instance.PGDATA}/standby.signal"])
    instance.release(c)
    instance.wait_accepting(c)


def _stop_postgres(topo: Topology, c: Container, *, timeout: int) -> None:
    """Stop PostgreSQL and leave the container running without it (no ready marker)."""
    st = runtime.status(c)
    if st == "paused":
        runtime.unpause(c)
        st = runtime.status(c)
    if st == "running":
        instance.run(c, "remove ready marker", ["rm", "-f", instance.READY_MARKER], user="root")
        runtime.stop(c, timeout=timeout)
    else:
        # Stopped with the marker in place (killed): remove it from the volume, or start.sh
        # would start PostgreSQL as it was, a primary.
        _on_volume(topo, c, ["rm", "-f", instance.READY_MARKER], step="remove ready marker")
    runtime.start(c)


def _on_volume(topo: Topology, c: Container, cmd: list[str], *, step: str) -> tuple[int, str]:
    vols = runtime.volume_names(c)
    node = instance.node_of(c)
    if not vols:
        raise OperationFailed("no data volume", node=node, step=step)
    return runtime.run_on_volume(topo.name, volume=vols[0], image=topo.image, command=cmd, node=node)


def controldata(c: Container) -> dict[str, str]:
    out = instance.run(c, "pg_controldata", ["pg_controldata", "-D", instance.PGDATA])
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in out.splitlines()) if v}


# -- data loss ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Loss:
    bytes: int | None
    commits: int | None
    fork_lsn: int | None
    old_end_lsn: int | None
    exact: bool
    source: str

    def text(self) -> str:
        if self.bytes is None:
            return f"unknown ({self.source})"
        commits = "" if self.commits is None else f", {self.commits} committed transaction(s)"
        prefix = "" if self.exact else "at least "
        return f"{prefix}{fmt_bytes(self.bytes)} ({self.bytes} bytes) of WAL{commits} ({self.source})"


def fork_point(topo: Topology, node: str) -> tuple[int, int, int]:
    """(parent timeline, switch LSN, new timeline) from the new timeline's history file."""
    rows = query(topo, node, "SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)", step="read timeline")
    tli_hex = str(rows[0][0])
    hist = query(topo, node, "SELECT pg_read_file('pg_wal/' || %s || '.history')", (tli_hex,), step="read history")
    last = [ln for ln in str(hist[0][0]).splitlines() if ln.strip() and not ln.startswith("#")][-1]
    parent, switch, *_ = last.split()
    return int(parent), snapshot.lsn_to_int(switch) or 0, int(tli_hex, 16)


_LSN_RE = re.compile(r"\b([0-9A-F]{1,8}/[0-9A-F]{1,8})\b")


def parse_waldump(output: str, *, start: int) -> tuple[int, int]:
    """(end of WAL, commits) from ``pg_waldump --stats=record`` run from ``start``."""
    commits = 0
    end = start
    for line in output.splitlines():
        parts = line.split()
        if parts and parts[0] == "Transaction/COMMIT" and len(parts) > 1 and parts[1].isdigit():
            commits = int(parts[1])
        if "could not find a valid record after" in line:
            return start, 0
        if line.startswith("WAL statistics between"):
            found = _LSN_RE.findall(line)
            if len(found) == 2:
                end = snapshot.lsn_to_int(found[1]) or end
        elif "pg_waldump: error" in line:
            found = _LSN_RE.findall(line)
            if found:
                end = max(end, snapshot.lsn_to_int(found[-1]) or end)
    return end, commits


def measure_loss(topo: Topology, plan: Plan, *, parent_tli: int, fork: int) -> Loss:
    """What the old primary wrote after the fork point, read from its stopped volume.

    Exact when its container is stopped (killed, crashed or fenced by stop); otherwise the best
    known position from the snapshot gives a lower bound.
    """
    c = runtime.find(topo.name, plan.old_primary)
    if c is not None and runtime.status(c) in ("exited", "dead", "created"):
        cmd = ["sh", "-c", f"rm -f {instance.READY_MARKER}; pg_waldump --path={instance.PGDATA}/pg_wal "
               f"--timeline={parent_tli} --start={fmt_lsn(fork)} --stats=record 2>&1"]
        try:
            _rc, out = _on_volume(topo, c, cmd, step="read the old primary's WAL")
        except PgtopoError as exc:
            out = f"failed: {exc.message}"
        if "WAL statistics" in out or "could not find a valid record" in out:
            end, commits = parse_waldump(out, start=fork)
            return Loss(bytes=end - fork, commits=commits, fork_lsn=fork, old_end_lsn=end, exact=True,
                        source=f"{plan.old_primary}'s WAL read from its volume: {fmt_lsn(end)}; "
                               f"timeline {parent_tli} ended at {fmt_lsn(fork)} on {plan.candidate}")
    ref = plan.reference_lsn
    if ref is None:
        return Loss(bytes=None, commits=None, fork_lsn=fork, old_end_lsn=None, exact=False,
                    source=f"{plan.old_primary}'s last position is unknown")
    return Loss(bytes=max(0, ref - fork), commits=None, fork_lsn=fork, old_end_lsn=ref, exact=False,
                source=f"against {plan.reference}")


# -- subscribers -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SubscriberResult:
    subscription: str
    node: str
    action: str  # moved, resynced, skipped
    detail: str


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
    if m.action == "unreachable":
        return SubscriberResult(m.subscription, m.node, "skipped", m.reason)
    ident = sql.Identifier(m.subscription)
    why = m.reason if m.action == "resync" else _usable_failover_slot(topo, new_primary, m.slot)
    if why is None:
        progress(m.node, f"subscription {m.subscription}: DISABLE, CONNECTION to {new_primary}, ENABLE")
        run_all(topo, m.node, [
            sql.SQL("ALTER SUBSCRIPTION {} DISABLE").format(ident),
            sql.SQL("ALTER SUBSCRIPTION {} CONNECTION {}").format(
                ident, sql.Literal(_sub_conninfo(topo, m, publisher_node=new_primary))),
            sql.SQL("ALTER SUBSCRIPTION {} ENABLE").format(ident),
        ], db=m.database, step=f"move subscription {m.subscription}")
        _wait_subscription_streaming(topo, m, publisher=new_primary)
        return SubscriberResult(m.subscription, m.node, "moved",
                                f"continues from failover slot {m.slot} on {new_primary}: no gap, no duplicate")
    progress(m.node, f"subscription {m.subscription}: RE-SYNCHRONISING ({why})")
    tables = resync_subscription(topo, m, new_primary=new_primary)
    return SubscriberResult(m.subscription, m.node, "resynced",
                            f"RE-SYNCHRONISED because {why}: truncated and re-copied {', '.join(tables)}")


def _wait_subscription_streaming(topo: Topology, m: SubscriberMove, *, publisher: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = query(topo, publisher, "SELECT active FROM pg_replication_slots WHERE slot_name = %s", (m.slot,),
                     step="wait for the subscription")
        if rows and rows[0][0]:
            return
        time.sleep(0.2)
    raise OperationFailed(f"subscription {m.subscription} did not connect to slot {m.slot} on {publisher} within "
                          f"{timeout:.0f} s", node=m.node, step="move subscription")


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
    drop_slot(topo, on=new_primary, slot=m.slot)
    opts: list[sql.Composable] = [sql.SQL("copy_data = true")]
    if topo.postgres.version >= 17:
        opts.append(sql.SQL("failover = {}").format(sql.SQL("true" if fo else "false")))
    run_all(topo, m.node, [sql.SQL("CREATE SUBSCRIPTION {} CONNECTION {} PUBLICATION {} WITH ({})").format(
        ident, sql.Literal(_sub_conninfo(topo, m, publisher_node=new_primary)),
        sql.SQL(", ").join(sql.Identifier(p) for p in pubs), sql.SQL(", ").join(opts))],
        db=m.database, step=f"re-create subscription {m.subscription}")
    deploy.wait_subscription_ready(_container(topo, m.node), m.subscription, db=m.database)
    return [f"{s}.{t}" for s, t in tables]


# -- failover and switchover -------------------------------------------------------------------------

@dataclass
class Outcome:
    plan: Plan
    fence: Fence | None = None
    recovery_s: float = 0.0
    promote_s: float = 0.0
    timeline: int | None = None
    loss: Loss | None = None
    sync_after: SyncConfig | None = None
    standby_slots: tuple[str, ...] = ()
    replicas: list[str] = field(default_factory=list)
    subscribers: list[SubscriberResult] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    steps: list[tuple[str, float]] = field(default_factory=list)


def plan_live(topo: Topology, *, mode: str, cluster: str | None, to: str | None, max_lag: int = failover.DEFAULT_MAX_LAG,
              force: bool = False) -> Plan:
    """Snapshot every node and plan (InputError when refused: nothing changed)."""
    snap = snapshot.collect(topo)
    primaries = deploy.current_primaries(topo)
    if mode == "switchover":
        if to is None:
            raise InputError("switchover needs --to NODE")
        return failover.plan_switchover(topo, snap, cluster=cluster, to=to, primaries=primaries)
    c = failover.choose_cluster(topo, cluster=cluster, to=to)
    known = state.load_runtime(topo.name).get("last_known", {}).get(primaries[c])
    last = (snapshot.lsn_to_int(known["lsn"]) or 0, known.get("timeline")) if known else None
    return failover.plan_failover(topo, snap, cluster=c, to=to, max_lag=max_lag, force=force,
                                  old_primary_last_lsn=last, primaries=primaries,
                                  recorded_sync=recorded_sync(topo, c))


def _prepare_candidate(topo: Topology, plan: Plan, out: Outcome, progress: Progress) -> None:
    """Before promotion: the other replicas stream from the candidate (cascading, then they follow
    its new timeline) and the candidate holds the synchronous settings it will need as primary."""
    cand = plan.candidate
    pub = publishing(topo, plan.cluster)
    repoints = [m for m in plan.replicas if m.action == "repoint"]
    for m in repoints:
        create_slot(topo, on=cand, slot=slot_name(m.node))
    jobs: dict[str, Callable[[], Any]] = {}
    for m in repoints:
        progress(m.node, f"re-pointing to {cand} ({m.reason})")
        jobs[m.node] = functools.partial(repoint, topo, node=m.node, upstream=cand, slot_sync=pub)
    for m in plan.replicas:
        if m.action == "stay" and m.upstream == cand and pub:
            jobs[m.node] = functools.partial(set_slot_sync, topo, m.node)
    errors = _parallel(jobs)
    for node, err in errors.items():
        if err is not None:
            out.warnings.append(f"{node}: {err.message}")
    ready = {m.node for m in plan.replicas if m.upstream == cand and m.action in ("repoint", "stay")
             and errors.get(m.node) is None}
    sync = failover.intended_sync(topo, plan.cluster, primary=cand, available=ready)
    slots = tuple(slot_name(n) for n in ready) if pub else ()
    set_primary_settings(topo, cand, sync=sync, standby_slots=slots)


def _promote_and_write(topo: Topology, plan: Plan, out: Outcome, *, started: float, progress: Progress) -> None:
    progress(plan.candidate, "pg_promote")
    t = time.monotonic()
    promote(topo, plan.candidate)
    out.promote_s = time.monotonic() - t
    out.steps.append(("promoted", time.monotonic() - started))
    if first_write(topo, plan.candidate):
        out.warnings.append(f"no synchronous standby acknowledged within {SYNC_GUARD_S:.0f} s: "
                            f"synchronous_standby_names emptied on {plan.candidate}")
    out.recovery_s = time.monotonic() - started
    out.steps.append(("first write accepted", out.recovery_s))
    _record_primary(topo, plan.cluster, plan.candidate)
    progress(plan.candidate, f"accepts writes ({out.recovery_s:.2f} s after the command started)")
    # Standby-only settings mean nothing on a primary: back to the rendered ones.
    run_all(topo, plan.candidate, [sql.SQL("ALTER SYSTEM RESET {}").format(sql.Identifier(n)) for n in
                                   ("primary_conninfo", "primary_slot_name", "sync_replication_slots")] + [RELOAD],
            step="reset standby settings")


def _after_promotion(topo: Topology, plan: Plan, out: Outcome, *, started: float, progress: Progress) -> None:
    cand = plan.candidate
    parent, fork, tli = fork_point(topo, cand)
    out.timeline = tli
    _move_subscribers(topo, plan, out, started=started, progress=progress)
    followers = [m for m in plan.replicas if m.action in ("repoint", "stay")]
    errors = _parallel({m.node: functools.partial(wait_streaming, topo, m.node, timeline=tli) for m in followers})
    for m in followers:
        err = errors.get(m.node)
        if err is None:
            out.replicas.append(f"{m.node}: streaming on timeline {tli} from {m.upstream} ({m.action}: {m.reason})")
        else:
            out.warnings.append(f"{m.node}: {err.message}")
    for m in plan.replicas:
        if m.action in ("down", "rejoin"):
            out.replicas.append(f"{m.node}: {m.reason}")
    out.steps.append(("replicas streaming", time.monotonic() - started))
    for slot in plan.stale_slots:
        try:
            drop_slot(topo, on=cand, slot=slot)
            out.replicas.append(f"dropped stale slot {slot} on {cand}")
        except PgtopoError as exc:
            out.warnings.append(exc.message)
    if plan.mode == "failover":
        out.loss = measure_loss(topo, plan, parent_tli=parent, fork=fork)
        out.steps.append(("loss measured", time.monotonic() - started))


def _move_subscribers(topo: Topology, plan: Plan, out: Outcome, *, started: float, progress: Progress) -> None:
    for m in plan.subscribers:
        try:
            res = move_subscriber(topo, m, new_primary=plan.candidate, progress=progress)
        except PgtopoError as exc:
            res = SubscriberResult(m.subscription, m.node, "failed", exc.message)
            out.warnings.append(f"subscription {m.subscription} on {m.node}: {exc.message}")
        out.subscribers.append(res)
        if res.action == "resynced":
            out.warnings.append(f"subscription {m.subscription} on {m.node} was {res.detail}")
    out.steps.append(("subscribers moved", time.monotonic() - started))


def _finish(topo: Topology, plan: Plan, out: Outcome) -> None:
    out.sync_after, out.standby_slots = converge_primary(topo, plan.cluster, plan.candidate)
    rec = {"mode": plan.mode, "cluster": plan.cluster, "from": plan.old_primary, "to": plan.candidate,
           "at": _now(), "recovery_s": round(out.recovery_s, 3), "timeline": out.timeline}
    if out.loss is not None:
        rec["lost_bytes"] = out.loss.bytes
    state.update_runtime(topo.name, last_change=rec)


def execute_failover(topo: Topology, plan: Plan, *, started: float, progress: Progress) -> Outcome:
    """Fence the old primary, re-point the replicas to the candidate, promote, first write, then move
    subscribers, check the replicas stream, drop stale slots and measure the loss."""
    out = Outcome(plan=plan, warnings=list(plan.warnings))
    out.steps.append(("planned", time.monotonic() - started))
    out.fence = fence(topo, plan.old_primary, timeout=FENCE_STOP_TIMEOUT, progress=progress)
    progress(plan.old_primary, f"fenced: {out.fence.method} ({out.fence.detail})")
    out.steps.append(("fenced", time.monotonic() - started))
    _prepare_candidate(topo, plan, out, progress)
    out.steps.append(("replicas re-pointed", time.monotonic() - started))
    _promote_and_write(topo, plan, out, started=started, progress=progress)
    _after_promotion(topo, plan, out, started=started, progress=progress)
    _finish(topo, plan, out)
    return out


def execute_switchover(topo: Topology, plan: Plan, *, started: float, progress: Progress) -> Outcome:
    """Stop the old primary cleanly, promote once the candidate replayed its last record, demote."""
    out = Outcome(plan=plan, warnings=list(plan.warnings))
    old, cand = plan.old_primary, plan.candidate
    for m in plan.subscribers:
        if m.action == "move" and not m.ready:
            progress(cand, f"waiting for failover slot {m.slot} to be sync-ready")
            _wait_sync_ready(topo, cand, m.slot)
    c_old = _container(topo, old)
    progress(old, "stopping writes: clean shutdown (its last WAL goes to the standbys)")
    _stop_postgres(topo, c_old, timeout=SWITCHOVER_STOP_TIMEOUT)
    ctl = controldata(c_old)
    final = snapshot.lsn_to_int(ctl.get("Latest checkpoint location"))
    if ctl.get("Database cluster state") != "shut down" or final is None:
        _restart(c_old)
        raise OperationFailed(f"did not shut down cleanly ({ctl.get('Database cluster state')}); restarted as primary, "
                              "nothing else changed", node=old, step="stop writes")
    out.steps.append(("old primary stopped", time.monotonic() - started))
    progress(cand, f"waiting to replay {old}'s shutdown checkpoint at {fmt_lsn(final)}")
    try:
        _wait_replayed(topo, cand, past=final)
    except PgtopoError:
        _restart(c_old)
        raise
    out.steps.append(("candidate caught up", time.monotonic() - started))
    _prepare_candidate(topo, plan, out, progress)
    _promote_and_write(topo, plan, out, started=started, progress=progress)
    out.loss = Loss(bytes=0, commits=0, fork_lsn=final, old_end_lsn=final, exact=True,
                    source=f"{cand} replayed {old}'s shutdown checkpoint {fmt_lsn(final)} before promotion")
    progress(old, f"restarting as a replica of {cand}")
    try:
        create_slot(topo, on=cand, slot=slot_name(old))
        behind = [slot_name(m.node) for m in plan.replicas if m.action == "stay" and m.upstream == old]
        _start_as_standby(topo, c_old, node=old, upstream=cand, primary=cand, keep_slots=behind)
    except PgtopoError:
        _leave_stopped(topo, c_old, node=old, why=f"switchover: {cand} is primary, demoting {old} failed")
        raise
    _unfence(topo, old)
    _after_promotion(topo, plan, out, started=started, progress=progress)
    try:
        wait_streaming(topo, old, timeline=out.timeline)
        out.replicas.insert(0, f"{old}: streaming on timeline {out.timeline} from {cand} (demoted, no rewind needed)")
    except PgtopoError:
        progress(old, "not streaming: rewinding it")
        res = rejoin(topo, old, reclone=False, progress=progress)
        out.replicas.insert(0, f"{old}: {res.method}, streaming from {cand}")
    _finish(topo, plan, out)
    return out


def _wait_sync_ready(topo: Topology, node: str, slot: str, timeout: float = 60) -> None:
    """Before anything changes: a synced slot that is still temporary would vanish on promotion."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = query(topo, node, "SELECT synced AND NOT temporary FROM pg_replication_slots WHERE slot_name = %s",
                     (slot,), step="wait for the failover slot")
        if rows and rows[0][0]:
            return
        time.sleep(0.5)
    raise InputError(f"failover slot {slot} on {node} is not sync-ready after {timeout:.0f} s: nothing changed "
                     "(see its log for slot sync messages)")


def _restart(c: Container) -> None:
    instance.release(c)
    instance.wait_accepting(c)


def _wait_replayed(topo: Topology, node: str, *, past: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    replayed = None
    while time.monotonic() < deadline:
        rows = query(topo, node, "SELECT pg_last_wal_replay_lsn()::text", step="wait for the last WAL")
        replayed = snapshot.lsn_to_int(str(rows[0][0])) if rows and rows[0][0] else None
        if replayed is not None and replayed > past:
            return
        time.sleep(0.05)
    raise OperationFailed(f"replayed only up to {fmt_lsn(replayed)} after {timeout:.0f} s, not past {fmt_lsn(past)}; "
                          "the old primary was restarted", node=node, step="wait for the last WAL")


# -- rejoin ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RejoinResult:
    node: str
    upstream: str
    primary: str
    method: str  # pg_rewind, no rewind needed, re-cloned, already streaming
    seconds: float
    detail: str
    sync_after: SyncConfig | None = None
    warnings: tuple[str, ...] = ()


def rejoin(topo: Topology, node: str, *, reclone: bool, progress: Progress) -> RejoinResult:
    """Bring ``node`` back as a replica (pg_rewind from the current primary; a fresh clone only
    with ``reclone`` when the rewind fails). It streams from the primary, or from the replica
    the file puts it behind when that one streams."""
    t0 = time.monotonic()
    cluster = topo.cluster_of(node)
    primary = deploy.current_primaries(topo)[cluster]
    if node == primary:
        raise InputError(f"{node} is the current primary of cluster {cluster}: nothing to rejoin")
    c = runtime.find(topo.name, node)
    if c is None:
        raise InputError(f"{node} has no container (removed?): nothing to rejoin")
    snap = snapshot.collect(topo)
    p = snap.nodes[primary]
    if not (p.reachable and p.in_recovery is False):
        raise InputError(f"the primary of cluster {cluster}, {primary}, is not running and writable "
                         f"({p.error or p.container}): rejoin needs it (`pgtopo failover` first)")
    n = snap.nodes[node]
    if n.reachable and n.in_recovery and n.receiver_status == "streaming" and n.timeline == p.timeline:
        return RejoinResult(node, n.upstream or primary, primary, "already streaming", time.monotonic() - t0,
                            f"{node} already streams from {n.upstream} on timeline {n.timeline}")
    if n.reachable and n.in_recovery is False:
        progress(node, "WARNING: it is writable; whatever it wrote after the fork is discarded by pg_rewind")
    progress(node, "stopping PostgreSQL (the container stays, without the ready marker)")
    _stop_postgres_for_rewind(topo, c, node=node)
    try:
        return _rejoin_stopped(topo, c, snap, node=node, primary=primary, reclone=reclone, t0=t0, progress=progress)
    except PgtopoError:
        _leave_stopped(topo, c, node=node, why="rejoin failed")
        raise


def _leave_stopped(topo: Topology, c: Container, *, node: str, why: str) -> None:
    """After a failure halfway: stopped, fenced, never wiped by `up` nor started as it was."""
    with contextlib.suppress(PgtopoError):
        runtime.exec_in(c, ["rm", "-f", instance.READY_MARKER], user="root")
        runtime.stop(c, timeout=30)
    _record_fence(topo, Fence(node, "stopped", f"{why}; `pgtopo rejoin` retries"))


def _rejoin_stopped(topo: Topology, c: Container, snap: snapshot.Snapshot, *, node: str, primary: str, reclone: bool,
                    t0: float, progress: Progress) -> RejoinResult:
    cluster = topo.cluster_of(node)
    p = snap.nodes[primary]
    upstream = _rejoin_upstream(topo, snap, node=node, primary=primary)
    query(topo, primary, "CHECKPOINT", step="checkpoint before pg_rewind")
    create_slot(topo, on=upstream, slot=slot_name(node))
    method, detail = _rewind(topo, c, node=node, primary=primary, progress=progress)
    if method == "failed":
        if not reclone:
            raise OperationFailed(detail, node=node, step="pg_rewind", logs=runtime.logs(c),
                                  hint=f"`pgtopo rejoin FILE {node} --reclone` copies it afresh from {primary}")
        method, detail = _reclone(topo, c, node=node, primary=primary, progress=progress, why=detail)
    progress(node, f"starting as a replica of {upstream}")
    behind = [slot_name(x.node) for x in snap.cluster_nodes(cluster)
              if x.node != node and failover.configured_upstream(topo, x) == node]
    _start_as_standby(topo, c, node=node, upstream=upstream, primary=primary, keep_slots=behind)
    try:
        wait_streaming(topo, node, timeline=p.timeline)
    except PgtopoError as exc:
        if not reclone or method == "re-cloned":
            raise OperationFailed(exc.message, node=node, step="wait for streaming", logs=runtime.logs(c),
                                  hint=None if reclone else f"`pgtopo rejoin FILE {node} --reclone` copies it afresh"
                                  ) from None
        _stop_postgres(topo, c, timeout=30)
        method, detail = _reclone(topo, c, node=node, primary=primary, progress=progress, why=exc.message)
        _start_as_standby(topo, c, node=node, upstream=upstream, primary=primary, keep_slots=behind)
        wait_streaming(topo, node, timeline=None)
    _unfence(topo, node)
    if upstream != primary:
        drop_slot(topo, on=primary, slot=slot_name(node))  # from when it streamed from the primary
    else:
        _wait_listed(topo, primary, node)
    sync, _slots = converge_primary(topo, cluster, primary)
    return RejoinResult(node, upstream, primary, method, time.monotonic() - t0, detail, sync_after=sync)


def _wait_listed(topo: Topology, primary: str, node: str, timeout: float = 15) -> None:
    """Until the primary counts ``node`` among its standbys (so the synchronous settings include it)."""
    deadline = time.monotonic() + timeout
    while node not in streaming_standbys(topo, primary) and time.monotonic() < deadline:
        time.sleep(0.2)


def _rejoin_upstream(topo: Topology, snap: snapshot.Snapshot, *, node: str, primary: str) -> str:
    """The file's upstream when it is another replica streaming now (a cascade), else the primary."""
    file_up = topo.node(node).upstream
    cl = topo.clusters[topo.cluster_of(node)]
    if file_up is None or file_up == cl.primary_name or file_up == primary:
        return primary
    up = snap.nodes.get(file_up)
    if up is not None and up.reachable and up.in_recovery and up.receiver_status == "streaming":
        return file_up
    return primary


def _stop_postgres_for_rewind(topo: Topology, c: Container, *, node: str) -> None:
    """PostgreSQL down, container running, attached to its region network under its name."""
    st = runtime.status(c)
    if st in ("running", "paused"):
        if st == "paused":
            runtime.unpause(c)
        instance.run(c, "remove ready marker", ["rm", "-f", instance.READY_MARKER], user="root")
        runtime.stop(c, timeout=30)
    else:
        _on_volume(topo, c, ["rm", "-f", instance.READY_MARKER], step="remove ready marker")
    region = topo.node(node).region
    net = runtime.ensure_network(topo.name, region, subnet=topo.regions[region].subnet)
    reconnected = runtime.connect_network(c, net, aliases=[node])
    runtime.start(c)
    if reconnected:
        deploy.update_relay(topo)


def _rewind(topo: Topology, c: Container, *, node: str, primary: str, progress: Progress) -> tuple[str, str]:
    ep = endpoint(topo, from_region=topo.node(node).region, node=primary)
    source = render.conninfo(host=ep.host, port=ep.port, user="pgtopo", application_name=f"pg_rewind-{node}",
                             dbname="postgres")
    # pg_rewind may first run crash recovery in single-user mode, which refuses standby.signal.
    instance.run(c, "remove standby.signal", ["rm", "-f", f"{instance.PGDATA}/standby.signal"])
    progress(node, f"pg_rewind from {primary}")
    # --config-file: the node's own settings (wal_level, slots) for that recovery, not PGDATA's defaults.
    res = runtime.exec_in(c, ["pg_rewind", "-D", instance.PGDATA, f"--config-file={render.CONF_DIR}/postgresql.conf",
                              f"--source-server={source}"])
    text = (res.stdout + res.stderr).strip()
    if res.rc != 0:
        lines = [ln for ln in text.splitlines() if ln.strip()]
        return "failed", f"pg_rewind failed: {lines[-1] if lines else f'exit code {res.rc}'}"
    if "no rewind required" in text:
        return "no rewind needed", f"pg_rewind: no rewind required; it follows {primary}'s timeline"
    return "pg_rewind", f"rewound with pg_rewind from {primary}"


def _reclone(topo: Topology, c: Container, *, node: str, primary: str, progress: Progress, why: str) -> tuple[str, str]:
    progress(node, f"re-cloning from {primary} ({why})")
    instance.run(c, "empty data directory", ["find", instance.PGDATA, "-mindepth", "1", "-delete"])
    create_slot(topo, on=primary, slot=slot_name(node))
    instance.clone(c, conninfo=replica_conninfo(topo, node=node, upstream=primary), slot=slot_name(node))
    return "re-cloned", f"fresh copy from {primary} with pg_basebackup ({why})"

"""`pgtopo verify`: prove that data flows on every edge and that what runs matches the file.

Edges are proven with probe rows, never user data: for each cluster's primary and each of its
databases, one row goes into ``pgtopo.probe`` (id = a fresh time-based bigint, origin = the
primary); pgtopo waits until every physical replica (cascades included) and every subscriber
(subscriptions include the ``pgtopo_probe`` publication) can read it, then deletes it on the
primary (the delete replicates too). An edge's propagation time is when its target saw the
row minus when its source did (the primary: just before the INSERT).

The other checks are pure functions of a frozen snapshot and the files read from the nodes:
reachability, one writable node per cluster, one system identifier and timeline per cluster,
each replica streaming from its expected upstream, slots (inactive ones retaining more than
``max_retained`` bytes, lost WAL), subscriptions (present, enabled, worker running, every table
ready, no apply or sync errors), ``/etc/pgtopo/postgresql.conf`` and ``pg_hba.conf`` against
``render.render_node``, and key live settings. Once a cluster has failed over, the settings a
failover changes with ALTER SYSTEM (``FAILOVER_SETTINGS``) are not compared for its nodes.

JSON (``pgtopo verify --json``), schema version 1; durations in seconds:
``schema_version``, ``topology``, ``ok`` (exit code 0 exactly when true), ``summary``
(``passed``, ``failed``), ``checks[]`` (``check``: reachable | primary | identity | timeline |
upstream | slot | standby-slots | subscription | config | settings | cleanup, and with ``ha:
patroni`` dcs-quorum | dcs-member | patroni-leader | patroni-members | patroni-member | patroni-agrees;
``subject``; ``passed``; ``reason``), ``edges[]`` (``kind``: physical | logical; ``source``; ``target``; ``database``;
``subscription`` or null; ``declared_rtt_seconds``; ``propagation_seconds``;
``since_commit_seconds``; ``passed``; ``reason``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from pgtopo.errors import PgtopoError, first_line
from pgtopo.model import render
from pgtopo.model.topology import Topology
from pgtopo.observe import manager, snapshot
from pgtopo.observe.config_drift import config_checks
from pgtopo.observe.expectations import DEFAULT_MAX_RETAINED, expected_subscriptions, expected_upstream
from pgtopo.observe.health_checks import Check, snapshot_checks
from pgtopo.observe.snapshot import Snapshot
from pgtopo.postgres import connect
from pgtopo.runtime import gateway, state
from pgtopo.runtime.waiting import poll

SCHEMA_VERSION = 1
DEFAULT_TIMEOUT = 10.0
POLL_INTERVAL = 0.005
CONF_FILES = ("postgresql.conf", "pg_hba.conf")
READ_WORKERS = 16  # Docker archive calls in flight while the snapshot is taken
PROBE = render.PROBE


@dataclass(frozen=True)
class Target:
    node: str
    database: str
    kind: str  # physical | logical
    via: str  # the node it receives the row from: its upstream, or the publisher
    subscription: str | None = None


@dataclass(frozen=True)
class ProbePlan:
    cluster: str
    source: str
    database: str
    targets: tuple[Target, ...]


@dataclass(frozen=True)
class Edge:
    kind: str
    source: str
    target: str
    database: str
    subscription: str | None
    declared_rtt_ms: float
    propagation_s: float | None
    since_commit_s: float | None
    passed: bool
    reason: str


@dataclass(frozen=True)
class VerifyReport:
    topology: str
    checks: tuple[Check, ...]
    edges: tuple[Edge, ...]

    @property
    def failed(self) -> int:
        return sum(not c.passed for c in self.checks) + sum(not e.passed for e in self.edges)

    @property
    def passed(self) -> int:
        return len(self.checks) + len(self.edges) - self.failed

    @property
    def ok(self) -> bool:
        return self.failed == 0

    def to_json(self) -> dict[str, Any]:
        def sec(v: float | None) -> float | None:
            return None if v is None else round(v, 4)

        return {
            "schema_version": SCHEMA_VERSION, "topology": self.topology, "ok": self.ok,
            "summary": {"passed": self.passed, "failed": self.failed},
            "checks": [dict(c.__dict__) for c in self.checks],
            "edges": [{"kind": e.kind, "source": e.source, "target": e.target, "database": e.database,
                       "subscription": e.subscription, "declared_rtt_seconds": sec(e.declared_rtt_ms / 1000),
                       "propagation_seconds": sec(e.propagation_s), "since_commit_seconds": sec(e.since_commit_s),
                       "passed": e.passed, "reason": e.reason} for e in self.edges],
        }


# -- pure: which probe reaches which node ----------------------------------------------------------

def plan_probes(topo: Topology, primaries: Mapping[str, str]) -> list[ProbePlan]:
    """One probe per cluster database, expected on every other node and on every subscriber."""
    subs = expected_subscriptions(topo, primaries)
    plans = []
    for cluster, cl in topo.clusters.items():
        source = primaries.get(cluster, cl.primary_name)
        for db in cl.databases:
            targets = [Target(node=n, database=db, kind="physical", via=expected_upstream(topo, n, primaries) or source)
                       for n in _chain_order(topo, cluster, primaries) if n != source]
            targets += [Target(node=e.node, database=e.database, kind="logical", via=source, subscription=e.name)
                        for e in subs if e.publisher_cluster == cluster and e.publisher_database == db]
            plans.append(ProbePlan(cluster=cluster, source=source, database=db, targets=tuple(targets)))
    return plans


def _chain_order(topo: Topology, cluster: str, primaries: Mapping[str, str]) -> list[str]:
    """The cluster's nodes, each after its upstream (file order among siblings)."""
    names = list(topo.clusters[cluster].nodes)
    depth: dict[str, int] = {}

    def level(n: str, seen: tuple[str, ...] = ()) -> int:
        up = expected_upstream(topo, n, primaries)
        if up is None or up in seen or up not in names:
            return 0
        return 1 + level(up, (*seen, n))

    for n in names:
        depth[n] = level(n)
    return sorted(names, key=lambda n: depth[n])


Key = tuple[str, str]  # (node, database)


def edges_from(topo: Topology, plan: ProbePlan, *, seen: Mapping[Key, float | None],
               errors: Mapping[Key, str], timeout: float) -> list[Edge]:
    """Edges of one plan from when each target saw the row (seconds after the INSERT)."""
    out = []
    for t in plan.targets:
        at = seen.get((t.node, t.database))
        via_at = 0.0 if t.via == plan.source else seen.get((t.via, plan.database))
        rtt = topo.rtt_ms(topo.node(t.via).region, topo.node(t.node).region)
        prop = None if at is None or via_at is None else max(0.0, at - via_at)
        if at is not None:
            passed, reason = True, f"visible after {at * 1000:.0f} ms" + (
                f" ({prop * 1000:.0f} ms after {t.via})" if t.via != plan.source and prop is not None else "")
        else:
            reason = errors.get((t.node, t.database)) or f"not visible on {t.node} after {timeout:g} s"
            if t.via != plan.source and seen.get((t.via, plan.database)) is None:
                reason += f" (its upstream {t.via} did not get it either)"
            passed = False
        out.append(Edge(kind=t.kind, source=t.via, target=t.node, database=plan.database, subscription=t.subscription,
                        declared_rtt_ms=rtt, propagation_s=prop, since_commit_s=at, passed=passed, reason=reason))
    return out


# -- live ---------------------------------------------------------------------------------------------

def _read_files(container: gateway.Listed | None) -> dict[str, str | None]:
    out: dict[str, str | None] = dict.fromkeys(CONF_FILES)
    if container is None:
        return out
    try:
        found = gateway.read_directory(container.id, render.CONF_DIR)
    except PgtopoError:
        return out
    return {f: found.get(f) for f in CONF_FILES}


def _probe(topo: Topology, snap: Snapshot, plan: ProbePlan, probe_id: int, timeout: float, *,
           ports: Mapping[str, int | None]) -> tuple[list[Edge], list[Check]]:
    src = snap.nodes.get(plan.source)
    if src is None or not src.reachable or src.in_recovery:
        why = "down" if src is None or not src.reachable else "in recovery"
        return edges_from(topo, plan, seen={}, timeout=timeout, errors={
            (t.node, t.database): f"no probe sent: the primary {plan.source} is {why}" for t in plan.targets}), []
    errors: dict[Key, str] = {}
    conns: dict[Key, psycopg.Connection[Any]] = {}
    wanted: list[Key] = []
    for t in plan.targets:
        key = (t.node, t.database)
        ns = snap.nodes.get(t.node)
        if key in wanted or key in errors:
            continue
        if ns is None or not ns.reachable:
            errors[key] = f"{t.node} is down: {ns.error if ns else 'not in the snapshot'}"
            continue
        wanted.append(key)

    def open_conn(key: Key) -> tuple[Key, psycopg.Connection[Any] | str]:
        try:
            return key, connect.connect(topo.name, key[0], dbname=key[1], port=ports.get(key[0]))
        except PgtopoError as exc:
            return key, exc.message

    # Every target's connection is open before the INSERT (so that its first read can see the
    # row), opened at once rather than one authentication after the other.
    with ThreadPoolExecutor(max_workers=max(1, len(wanted))) as pool:
        for key, got in pool.map(open_conn, wanted):
            if isinstance(got, str):
                errors[key] = got
            else:
                conns[key] = got
    seen: dict[Key, float | None] = {}
    cleanup: list[Check] = []
    try:
        with connect.connect(topo.name, plan.source, dbname=plan.database, port=ports.get(plan.source)) as sconn:
            t0 = time.monotonic()
            sconn.execute(sql.SQL("INSERT INTO {} (id, origin) VALUES (%s, %s)").format(PROBE), (probe_id, plan.source))
            deadline = t0 + timeout

            def wait(item: tuple[Key, psycopg.Connection[Any]]) -> tuple[Key, float | None, str | None]:
                key, conn = item
                query = sql.SQL("SELECT 1 FROM {} WHERE id = %s").format(PROBE)
                try:
                    arrived = poll(lambda: conn.execute(query, (probe_id,)).fetchone() and time.monotonic(),
                                   timeout=deadline - time.monotonic(), interval=POLL_INTERVAL)
                    return key, None if arrived is None else arrived - t0, None
                except psycopg.Error as exc:
                    return key, None, f"{key[0]}: {first_line(exc)}"

            with ThreadPoolExecutor(max_workers=max(1, len(conns))) as pool:
                for key, at, err in pool.map(wait, conns.items()):
                    seen[key] = at
                    if err:
                        errors[key] = err
            try:
                sconn.execute(sql.SQL("DELETE FROM {} WHERE id = %s").format(PROBE), (probe_id,))
            except psycopg.Error as exc:
                cleanup.append(Check("cleanup", f"{plan.source}/{plan.database}", False,
                                     f"could not delete probe row {probe_id}: {first_line(exc)}"))
    except (PgtopoError, psycopg.Error) as exc:
        why = exc.message if isinstance(exc, PgtopoError) else first_line(exc)
        for t in plan.targets:
            errors.setdefault((t.node, t.database), f"probe on {plan.source} failed: {why}")
    finally:
        for conn in conns.values():
            conn.close()
    return edges_from(topo, plan, seen=seen, errors=errors, timeout=timeout), cleanup


def run(topo: Topology, *, topo_path: Path, timeout: float = DEFAULT_TIMEOUT,
        max_retained: int = DEFAULT_MAX_RETAINED) -> VerifyReport:
    """Collect, check, probe every edge; never raises for a failed check."""

    gateway.require_running(topo.name)
    names = topo.node_names()
    primaries = state.current_primaries(topo)
    rendered = {n: render.render_node(topo, node=n, topo_path=topo_path).files for n in names}
    containers = {c.node: c for c in gateway.listed(topo.name, kind="node")}
    with ThreadPoolExecutor(max_workers=2 + min(READ_WORKERS, len(names))) as pool:
        fsnap = pool.submit(snapshot.collect, topo)
        fmanaged = pool.submit(manager.collect, topo)
        files = dict(zip(names, pool.map(lambda n: _read_files(containers.get(n)), names), strict=True))
        snap = fsnap.result()
        managed, dcs = fmanaged.result()
    report = manager.assess(topo, snap, managed, dcs) if managed else None
    if report is not None:
        primaries = manager.primaries(primaries, report)
    plans = plan_probes(topo, primaries)
    ports = {n: c.ports.get(connect.PG_PORT_KEY) for n, c in containers.items() if n is not None}
    base = time.time_ns() // 1000  # microseconds: unique across runs, one id per plan
    edges: list[Edge] = []
    probe_checks: list[Check] = []
    with ThreadPoolExecutor(max_workers=max(1, len(plans))) as pool:
        for e, c in pool.map(lambda ip: _probe(topo, snap, ip[1], base + ip[0], timeout, ports=ports),
                             enumerate(plans)):
            edges += e
            probe_checks += c
    # Judged on the state after the probes, against the state before them (error counters).
    after = snapshot.collect(topo)
    checks = snapshot_checks(topo, after, primaries=primaries, max_retained=max_retained, before=snap)
    checks += config_checks(topo, after, primaries=primaries, rendered=rendered, on_disk=files)
    checks += probe_checks
    if report is not None:
        checks += manager.checks(topo, report)
    return VerifyReport(topology=topo.name, checks=tuple(checks), edges=tuple(edges))


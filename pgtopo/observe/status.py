"""`pgtopo status`: what really runs, compared with the file, as a frozen ``Assessment``.

``observe`` takes a live snapshot (one connection per node, in parallel) while the relay
measures each region pair, then ``assess`` — a pure function — builds the rows and lists the
problems. Marks follow ``repmgr cluster show``: ``?`` unreachable, ``!`` differs from the file
(role changed by a failover, unexpected upstream, not streaming, split brain).

JSON (``pgtopo status --json``), schema version 1. Sizes are bytes, durations seconds, LSNs
text (``0/3000060``); a value that is unknown or does not apply is ``null``.

- top level: ``schema_version`` (1), ``topology``, ``taken_at`` (ISO 8601, UTC), ``ok``
  (no error-level problem: the exit code is 0 exactly when true), ``split_brain`` (clusters
  with more than one writable node), ``primaries`` (cluster -> node pgtopo expects as primary,
  after failovers), ``nodes``, ``slots``, ``subscriptions``, ``latency``, ``problems``.
- ``nodes[]``: ``node``, ``cluster``, ``region``, ``role`` (primary | replica | standalone |
  down; standalone = writable while another node is the cluster's primary), ``file_role``,
  ``expected_role`` (after failovers), ``mark`` ("", "!", "?"), ``state`` (running, streaming,
  a WAL receiver status, not streaming, or why it is down), ``timeline``,
  ``system_identifier``, ``current_lsn``, ``received_lsn``, ``replayed_lsn``, ``upstream``
  (the node it really streams from), ``expected_upstream``, ``lag_bytes``, ``lag_seconds``,
  ``sync_state``, ``sync_priority`` (from the upstream's pg_stat_replication row of the
  node), ``reasons`` (list of text).
- ``slots[]``: ``node``, ``slot``, ``type``, ``database``, ``active``, ``retained_bytes``,
  ``wal_status``, ``failover``, ``synced``.
- ``subscriptions[]``: ``node``, ``subscription``, ``database``, ``publications``,
  ``publisher`` (node, or null), ``enabled``, ``worker`` (running | stopped | disabled),
  ``tables_ready``, ``tables_total``, ``lag_bytes``, ``lag_seconds``, ``apply_errors``,
  ``sync_errors``, ``last_error``.
- ``latency[]``: ``regions`` ([a, b]), ``declared_rtt_seconds`` (the file),
  ``expected_rtt_seconds`` (a ``latency set`` override, else the file), ``measured_rtt_seconds``
  (median of the relay's probes; null when it could not measure), ``ok``.
- ``problems[]``: ``severity`` (error | warning | info), ``subject`` (node, cluster, slot as
  node/slot, subscription, or region pair a<->b), ``message``.
- ``patroni`` (only when a cluster has ``ha: patroni``; ``primaries`` then holds Patroni's
  leader): ``clusters[]`` (``cluster``, ``answered_by``, ``error``, ``leader``,
  ``scheduled_switchover`` ({``at``, ``from``, ``to``} or null), ``members[]``: ``cluster``,
  ``member``, ``role`` and ``state`` (Patroni's), ``timeline``, ``lag_bytes``,
  ``pending_restart`` (parameters), ``tags``, ``postgres`` (primary | replica | down, what
  PostgreSQL says), ``agrees``, ``note``) and ``dcs`` (``quorum``, ``majority``, ``leader``,
  ``members[]``: ``member``, ``region``, ``container``, ``healthy``, ``leader``, ``raft_term``,
  ``error``).
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from pgtopo.model.topology import Pair, Topology
from pgtopo.network.probe import measure_latency
from pgtopo.observe import manager, snapshot
from pgtopo.observe.expectations import (
    DEFAULT_MAX_RETAINED,
    configured_upstream,
    expected_subscriptions,
    expected_upstream,
    held_back,
    slot_is_mirror,
    subscription_issues,
)
from pgtopo.observe.snapshot import Snapshot
from pgtopo.postgres.lsn import parse_lsn
from pgtopo.runtime import gateway

SCHEMA_VERSION = 1
LATENCY_TOLERANCE = 0.20  # measured RTT may differ from the expected one by 20 % ...
LATENCY_SLACK_MS = 10.0  # ... or by 10 ms, whichever is larger


@dataclass(frozen=True)
class Problem:
    severity: str  # error | warning | info
    subject: str
    message: str


@dataclass(frozen=True)
class NodeRow:
    node: str
    cluster: str
    region: str
    role: str
    file_role: str
    expected_role: str
    mark: str
    state: str
    timeline: int | None
    system_identifier: str | None
    current_lsn: str | None
    received_lsn: str | None
    replayed_lsn: str | None
    upstream: str | None
    expected_upstream: str | None
    lag_bytes: int | None
    lag_seconds: float | None
    sync_state: str | None
    sync_priority: int | None
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class SlotRow:
    node: str
    slot: str
    type: str
    database: str | None
    active: bool
    retained_bytes: int | None
    wal_status: str | None
    failover: bool
    synced: bool


@dataclass(frozen=True)
class SubscriptionRow:
    node: str
    subscription: str
    database: str
    publications: tuple[str, ...]
    publisher: str | None
    enabled: bool
    worker: str
    tables_ready: int
    tables_total: int
    lag_bytes: int | None
    lag_seconds: float | None
    apply_errors: int
    sync_errors: int
    last_error: str | None


@dataclass(frozen=True)
class LinkRow:
    a: str
    b: str
    declared_ms: float | None
    expected_ms: float | None
    measured_ms: float | None
    ok: bool


@dataclass(frozen=True)
class Assessment:
    topology: str
    taken_at: float
    primaries: Mapping[str, str]
    nodes: tuple[NodeRow, ...]
    slots: tuple[SlotRow, ...]
    subscriptions: tuple[SubscriptionRow, ...]
    links: tuple[LinkRow, ...]
    problems: tuple[Problem, ...]
    split_brain: tuple[str, ...]
    manager: manager.ManagerReport | None = None  # Patroni's view, for ha: patroni clusters

    @property
    def ok(self) -> bool:
        return not any(p.severity == "error" for p in self.problems)

    def to_json(self) -> dict[str, Any]:
        def sec(ms: float | None) -> float | None:
            return None if ms is None else round(ms / 1000, 4)

        return {
            "schema_version": SCHEMA_VERSION,
            "topology": self.topology,
            "taken_at": datetime.fromtimestamp(self.taken_at, UTC).isoformat(),
            "ok": self.ok,
            "split_brain": list(self.split_brain),
            "primaries": dict(self.primaries),
            "nodes": [{**_fields(n), "reasons": list(n.reasons)} for n in self.nodes],
            "slots": [_fields(s) for s in self.slots],
            "subscriptions": [{**_fields(s), "publications": list(s.publications)} for s in self.subscriptions],
            "latency": [{"regions": [r.a, r.b], "declared_rtt_seconds": sec(r.declared_ms),
                         "expected_rtt_seconds": sec(r.expected_ms), "measured_rtt_seconds": sec(r.measured_ms),
                         "ok": r.ok} for r in self.links],
            "problems": [_fields(p) for p in self.problems],
            **({"patroni": self.manager.to_json()} if self.manager is not None else {}),
        }


def _fields(obj: Any) -> dict[str, Any]:
    return dict(obj.__dict__)


# -- the pure assessment ------------------------------------------------------------------------

def assess(topo: Topology, snap: Snapshot, *, primaries: Mapping[str, str],
           latency: Mapping[Pair, float | None] | None = None, rtt_overrides: Mapping[str, float] | None = None,
           max_retained: int = DEFAULT_MAX_RETAINED) -> Assessment:
    """Rows and problems from a frozen snapshot. ``latency`` is ``measure_latency``'s result
    (omit it to skip the latency rows); ``rtt_overrides`` maps ``latency.link_key`` to the RTT
    set at run time."""
    problems: list[Problem] = []
    split = []
    for cluster in topo.clusters:
        writable = snap.writable(cluster)
        if len(writable) > 1:
            split.append(cluster)
            problems.append(Problem("error", cluster, f"SPLIT BRAIN in cluster {cluster}: {len(writable)} writable "
                                                      f"nodes ({', '.join(writable)}); "
                                                      f"pgtopo expects only {primaries.get(cluster)}"))
    nodes = tuple(_node_row(topo, snap, name, primaries, problems) for name in topo.node_names())
    slots = []
    for ns in snap.nodes.values():
        for s in ns.slots if ns.reachable else ():
            slots.append(SlotRow(node=ns.node, slot=s.name, type=s.slot_type, database=s.database, active=s.active,
                                 retained_bytes=s.retained_bytes, wal_status=s.wal_status, failover=s.failover,
                                 synced=s.synced))
            subject = f"{ns.node}/{s.name}"
            if s.wal_status == "lost":
                problems.append(Problem("error", subject, f"slot {s.name} on {ns.node} lost WAL it needed"))
            elif (not s.active and not slot_is_mirror(ns, s) and s.retained_bytes is not None
                  and s.retained_bytes > max_retained):
                problems.append(Problem("warning", subject, f"inactive slot {s.name} on {ns.node} retains "
                                                            f"{s.retained_bytes} bytes of WAL"))
    subs = _subscriptions(topo, snap, primaries, problems)
    links = _links(topo, latency, rtt_overrides or {}, problems) if latency is not None else ()
    return Assessment(topology=snap.topology, taken_at=snap.taken_at, primaries=dict(primaries), nodes=nodes,
                      slots=tuple(slots), subscriptions=subs, links=links, problems=tuple(problems),
                      split_brain=tuple(split))


def _node_row(topo: Topology, snap: Snapshot, name: str, primaries: Mapping[str, str],
              problems: list[Problem]) -> NodeRow:
    cluster = topo.cluster_of(name)
    spec = topo.node(name)
    primary = primaries.get(cluster, topo.clusters[cluster].primary_name)
    expected_role = "primary" if primary == name else "replica"
    exp_up = expected_upstream(topo, name, primaries)
    ns = snap.nodes.get(name)
    base: dict[str, Any] = {"node": name, "cluster": cluster, "region": spec.region, "file_role": spec.role,
                            "expected_role": expected_role, "expected_upstream": exp_up}
    if ns is None or not ns.reachable:
        why = (ns.error if ns else None) or "not in the snapshot"
        problems.append(Problem("error", name, f"{name} is down: {why}"))
        return NodeRow(**base, role="down", mark="?", state=why, timeline=None, system_identifier=None,
                       current_lsn=None, received_lsn=None, replayed_lsn=None, upstream=None, lag_bytes=None,
                       lag_seconds=None, sync_state=None, sync_priority=None, reasons=(why,))

    found: list[Problem] = []

    def flag(severity: str, message: str) -> None:
        found.append(Problem(severity, name, message))

    writable = snap.writable(cluster)
    # Standalone: writable beside the recorded primary, which is writable too.
    standalone = primary != name and primary in writable
    role = "replica" if ns.in_recovery else ("standalone" if standalone else "primary")
    if role == "standalone":
        flag("error", f"writable while {primary} is the primary (split brain)")
    elif role == "primary" and expected_role != "primary":
        flag("error", f"writable, but pgtopo expects {primary} as the primary (promoted outside pgtopo?)")
    elif role == "replica" and expected_role == "primary":
        flag("error", "expected to be the primary, but it is in recovery")
    elif role != spec.role:
        flag("info", f"{spec.role} in the file, {role} since a failover")

    waiting, held = held_back(ns)
    if waiting:
        flag("error", f"logical replication held back: synchronized_standby_slots waits for {', '.join(waiting)} "
                      f"(missing or inactive), so failover slot(s) {', '.join(held)} get no changes")
    state = "running"
    lag_bytes: int | None = None
    lag_s: float | None = None
    sync_state: str | None = None
    sync_prio: int | None = None
    if role == "replica":
        state = ns.receiver_status or "not streaming"
        configured = configured_upstream(topo, ns)
        if ns.receiver_status != "streaming":
            why = f"not streaming (WAL receiver {ns.receiver_status or 'not running'})"
            if configured != exp_up:
                why += f"; primary_conninfo points at {configured or 'an unknown host'}, expected {exp_up}"
            flag("error", why)
        elif ns.upstream != exp_up:
            flag("error", f"streams from {ns.upstream or ns.upstream_raw}, expected {exp_up}")
        row = _downstream_row(snap, name, ns.upstream or exp_up)
        if row is not None:
            lag_bytes, sync_state, sync_prio = row.lag_bytes, row.sync_state, row.sync_priority
            lag_s = row.replay_lag_s if row.replay_lag_s is not None else (0.0 if row.lag_bytes == 0 else None)
        else:
            head = snap.nodes.get(primary)
            head_lsn = parse_lsn(head.current_lsn) if head and head.reachable else None
            mine = parse_lsn(ns.replay_lsn)
            if head_lsn is not None and mine is not None:
                lag_bytes = max(0, head_lsn - mine)
    head = snap.nodes.get(primary)
    if head is not None and head.reachable and head is not ns and not head.in_recovery:
        if ns.system_identifier != head.system_identifier:
            flag("error", f"system identifier {ns.system_identifier} differs from {primary}'s "
                          f"{head.system_identifier}: not a copy of the primary")
        elif ns.timeline != head.timeline:
            flag("warning", f"timeline {ns.timeline}, the primary {primary} is on {head.timeline}")
    problems.extend(Problem(p.severity, name, f"{name}: {p.message}") for p in found)
    mark = "!" if found else ""
    return NodeRow(**base, role=role, mark=mark, state=state, timeline=ns.timeline,
                   system_identifier=ns.system_identifier, current_lsn=ns.current_lsn, received_lsn=ns.receive_lsn,
                   replayed_lsn=ns.replay_lsn, upstream=ns.upstream, lag_bytes=lag_bytes, lag_seconds=lag_s,
                   sync_state=sync_state, sync_priority=sync_prio, reasons=tuple(p.message for p in found))


def _downstream_row(snap: Snapshot, app_name: str, sender: str | None) -> snapshot.Downstream | None:
    """The pg_stat_replication row named ``app_name``, preferably on ``sender``."""
    order = [snap.nodes[sender]] if sender in snap.nodes else []
    order += [n for n in snap.nodes.values() if n.node != sender]
    for ns in order:
        if ns.reachable:
            for d in ns.downstream:
                if d.application_name == app_name:
                    return d
    return None


def _subscriptions(topo: Topology, snap: Snapshot, primaries: Mapping[str, str],
                   problems: list[Problem]) -> tuple[SubscriptionRow, ...]:
    expected = {(e.node, e.name): e for e in expected_subscriptions(topo, primaries)}
    rows = []
    seen = set()
    for ns in snap.nodes.values():
        # pg_subscription is a shared catalog copied to standbys, where no worker ever runs.
        if not ns.reachable or ns.in_recovery:
            continue
        for s in ns.subscriptions:
            seen.add((ns.node, s.name))
            exp = expected.get((ns.node, s.name))
            publisher = exp.publisher_node if exp else None
            pub_row = _downstream_row(snap, s.name, publisher)
            lag_b: int | None = None
            lag_s: float | None = None
            if pub_row is not None:
                lag_b = pub_row.lag_bytes
                lag_s = pub_row.replay_lag_s if pub_row.replay_lag_s is not None else (0.0 if lag_b == 0 else None)
            elif publisher in snap.nodes and snap.nodes[publisher].reachable:
                head = parse_lsn(snap.nodes[publisher].current_lsn)
                got = parse_lsn(s.received_lsn)
                lag_b = None if head is None or got is None else max(0, head - got)
            worker = "disabled" if not s.enabled else ("running" if s.worker_running else "stopped")
            rows.append(SubscriptionRow(
                node=ns.node, subscription=s.name, database=s.database, publications=s.publications,
                publisher=publisher, enabled=s.enabled, worker=worker, tables_ready=s.tables_ready,
                tables_total=s.tables_total, lag_bytes=lag_b, lag_seconds=lag_s, apply_errors=s.apply_errors,
                sync_errors=s.sync_errors, last_error=s.last_error))
            problems.extend(Problem(sev, s.name, msg) for sev, msg in subscription_issues(ns.node, s))
            if exp is None:
                problems.append(Problem("info", s.name, f"subscription {s.name} on {ns.node} is not in the file"))
    for (node, name), exp in expected.items():
        if (node, name) not in seen and node in snap.nodes and snap.nodes[node].reachable:
            problems.append(Problem("error", name, f"subscription {name} is missing on {node} "
                                                   f"(database {exp.database})"))
    return tuple(rows)


def latency_ok(expected_ms: float, measured_ms: float) -> bool:
    return abs(measured_ms - expected_ms) <= max(LATENCY_SLACK_MS, LATENCY_TOLERANCE * expected_ms)


def _links(topo: Topology, latency: Mapping[Pair, float | None], overrides: Mapping[str, float],
           problems: list[Problem]) -> tuple[LinkRow, ...]:
    rows = []
    for a, b in topo.region_pairs():
        declared = topo.link(a, b)
        key = "|".join(sorted((a, b)))
        expected = overrides.get(key, declared.rtt_ms if declared else None)
        measured = latency.get((a, b), latency.get((b, a)))
        ok = expected is not None and measured is not None and latency_ok(expected, measured)
        subject = f"{a}<->{b}"
        if measured is None:
            problems.append(Problem("warning", subject, f"could not measure the latency {a} <-> {b} "
                                                        "(relay down, partition, or no node reachable)"))
        elif expected is not None and not ok:
            problems.append(Problem("warning", subject, f"measured RTT {measured:.0f} ms {a} <-> {b}, "
                                                        f"expected {expected:.0f} ms"))
        rows.append(LinkRow(a=a, b=b, declared_ms=declared.rtt_ms if declared else None, expected_ms=expected,
                            measured_ms=measured, ok=ok))
    return tuple(rows)


def observe(topo: Topology, *, max_retained: int = DEFAULT_MAX_RETAINED, measure: bool = True) -> Assessment:
    """Snapshot and latency measurement in parallel, then ``assess``."""
    from pgtopo.runtime import state

    gateway.require_running(topo.name)
    primaries = state.current_primaries(topo)
    rt = state.load(topo.name)
    overrides = {k: v.rtt_ms for k, v in rt.links.items()}
    with ThreadPoolExecutor(max_workers=3) as pool:
        snap_future = pool.submit(snapshot.collect, topo)
        latency_future = pool.submit(measure_latency, topo) if measure else None
        manager_future = pool.submit(manager.collect, topo)
        snap = snap_future.result()
        latency = latency_future.result() if latency_future is not None else None
        managed, dcs = manager_future.result()
    report = manager.assess(topo, snap, managed, dcs) if managed else None
    if report is not None:
        primaries = manager.primaries(primaries, report)
    a = assess(topo, snap, primaries=primaries, latency=latency, rtt_overrides=overrides, max_retained=max_retained)
    if report is not None:
        found = tuple(Problem(f.severity, f.subject, f.message) for f in report.findings)
        a = replace(a, manager=report, problems=(*a.problems, *found))
    # A failover stopped halfway (Ctrl-C, a failure) says what is left, first.
    unfinished = tuple(Problem("error", cluster, "; ".join(rec.summary(file=rt.topology_file or "FILE")))
                       for cluster, rec in rt.pending.items())
    return replace(a, problems=(*unfinished, *a.problems)) if unfinished else a

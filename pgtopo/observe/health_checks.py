"""``verify``'s checks decided from a frozen snapshot alone, and ``Check``, the verdict every
verify check produces.

Reachability, one writable node per cluster, one system identifier and timeline per cluster,
each replica streaming from its expected upstream, slots (inactive ones retaining more than
``max_retained`` bytes, lost WAL), synchronized_standby_slots, and subscriptions (present,
enabled, worker running, every table ready, no apply or sync errors).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from pgtopo.model.topology import Topology
from pgtopo.observe import snapshot
from pgtopo.observe.expectations import (
    DEFAULT_MAX_RETAINED,
    configured_upstream,
    expected_subscriptions,
    expected_upstream,
    held_back,
    slot_is_mirror,
    subscription_issues,
)
from pgtopo.observe.snapshot import NodeSnapshot, Snapshot


@dataclass(frozen=True)
class Check:
    check: str
    subject: str
    passed: bool
    reason: str


def _mib(n: int) -> str:
    return f"{n / 1048576:.1f} MiB"


def snapshot_checks(topo: Topology, snap: Snapshot, *, primaries: Mapping[str, str],
                    max_retained: int = DEFAULT_MAX_RETAINED, before: Snapshot | None = None) -> list[Check]:
    """Every check decided from the snapshot alone.

    With ``before`` (a snapshot taken before the probes), subscription error counters are
    judged by what changed during this run: a reconnect caused earlier by a partition, a
    relay restart or a failover stays in the cumulative counters but is not a failure now.
    """
    out: list[Check] = []
    for name in topo.node_names():
        ns = snap.nodes.get(name)
        if ns is None or not ns.reachable:
            out.append(Check("reachable", name, False, f"down: {ns.error if ns else 'not in the snapshot'}"))
        else:
            out.append(Check("reachable", name, True, f"{'replica' if ns.in_recovery else 'writable'}, "
                                                      f"timeline {ns.timeline}"))
    for cluster, cl in topo.clusters.items():
        out.extend(_cluster_checks(snap, cluster, primaries.get(cluster, cl.primary_name)))
    for name in topo.node_names():
        if expected_upstream(topo, name, primaries) is not None:
            out.append(_upstream_check(topo, snap, name, expected_upstream(topo, name, primaries)))
    for ns in snap.nodes.values():
        for s in ns.slots if ns.reachable else ():
            out.append(_slot_check(ns, s, max_retained))
        if ns.reachable and not ns.in_recovery and ns.settings.get("synchronized_standby_slots"):
            waiting, held = held_back(ns)
            out.append(Check("standby-slots", ns.node, not waiting,
                             f"failover slot(s) {', '.join(held)} get no changes: synchronized_standby_slots waits "
                             f"for {', '.join(waiting)} (missing or inactive)" if waiting else
                             f"synchronized_standby_slots {ns.settings['synchronized_standby_slots']} active"))
    out.extend(_subscription_checks(topo, snap, primaries, before))
    return out


def _cluster_checks(snap: Snapshot, cluster: str, primary: str) -> list[Check]:
    out = []
    writable = snap.writable(cluster)
    if writable == [primary]:
        out.append(Check("primary", cluster, True, f"one writable node, {primary}"))
    elif len(writable) > 1:
        out.append(Check("primary", cluster, False, f"split brain: {', '.join(writable)} are all writable"))
    elif writable:
        out.append(Check("primary", cluster, False, f"{writable[0]} is writable, but {primary} is the primary"))
    else:
        out.append(Check("primary", cluster, False, f"no writable node (the primary {primary} is down or in "
                                                    "recovery)"))
    members = [n for n in snap.cluster_nodes(cluster)]
    up = [n for n in members if n.reachable]
    if len(members) > 1:
        note = "" if len(up) == len(members) else f" ({len(up)} of {len(members)} nodes reachable)"
        ids = {n.system_identifier for n in up}
        out.append(Check("identity", cluster, len(ids) <= 1,
                         f"system identifier {ids.pop()}{note}" if len(ids) == 1 else
                         "nothing to compare" + note if not ids else
                         "system identifiers differ: " + ", ".join(f"{n.node} {n.system_identifier}" for n in up)))
        tlis = {n.timeline for n in up}
        out.append(Check("timeline", cluster, len(tlis) <= 1,
                         f"timeline {tlis.pop()}{note}" if len(tlis) == 1 else
                         "nothing to compare" + note if not tlis else
                         "timelines differ: " + ", ".join(f"{n.node} {n.timeline}" for n in up)))
    return out


def _upstream_check(topo: Topology, snap: Snapshot, name: str, expected: str | None) -> Check:
    ns = snap.nodes.get(name)
    if ns is None or not ns.reachable:
        return Check("upstream", name, False, f"down, expected to stream from {expected}")
    if not ns.in_recovery:
        return Check("upstream", name, False, f"writable, expected to be a replica of {expected}")
    if ns.receiver_status != "streaming":
        configured = configured_upstream(topo, ns)
        where = "" if configured == expected else f"; primary_conninfo points at {configured or 'an unknown host'}"
        return Check("upstream", name, False, f"not streaming (WAL receiver {ns.receiver_status or 'not running'}), "
                                              f"expected from {expected}{where}")
    if ns.upstream != expected:
        return Check("upstream", name, False, f"streams from {ns.upstream or ns.upstream_raw}, expected {expected}")
    return Check("upstream", name, True, f"streams from {expected}")


def _slot_check(ns: NodeSnapshot, s: snapshot.Slot, max_retained: int) -> Check:
    subject = f"{ns.node}/{s.name}"
    retained = s.retained_bytes or 0
    if s.wal_status == "lost":
        return Check("slot", subject, False, f"{s.slot_type} slot lost WAL it needed (wal_status lost)")
    if slot_is_mirror(ns, s):
        return Check("slot", subject, True, "failover slot synced from the primary")
    if not s.active and retained > max_retained:
        return Check("slot", subject, False, f"inactive {s.slot_type} slot retains {_mib(retained)} of WAL "
                                             f"(limit {_mib(max_retained)}, wal_status {s.wal_status})")
    state = "active" if s.active else "inactive"
    return Check("slot", subject, True, f"{state} {s.slot_type} slot, retains {_mib(retained)}")


def _subscription_checks(topo: Topology, snap: Snapshot, primaries: Mapping[str, str],
                         before: Snapshot | None) -> list[Check]:
    out = []

    def earlier(node: str, name: str) -> snapshot.SubscriptionState | None:
        ns = before.nodes.get(node) if before else None
        return next((s for s in ns.subscriptions if s.name == name), None) if ns else None

    expected = {(e.node, e.name): e for e in expected_subscriptions(topo, primaries)}
    for (node, name), e in expected.items():
        ns = snap.nodes.get(node)
        if ns is None or not ns.reachable:
            out.append(Check("subscription", name, False, f"cannot check: {node} is down"))
            continue
        found = next((s for s in ns.subscriptions if s.name == name), None)
        if found is None:
            out.append(Check("subscription", name, False, f"missing on {node} (database {e.database}, publication "
                                                          f"{e.publication} of {e.publisher_cluster})"))
            continue
        out.append(_subscription_check(node, found, earlier(node, name)))
    for ns in snap.nodes.values():
        if ns.reachable and not ns.in_recovery:
            out.extend(_subscription_check(ns.node, s, earlier(ns.node, s.name))
                       for s in ns.subscriptions if (ns.node, s.name) not in expected)
    return out


def _subscription_check(node: str, s: snapshot.SubscriptionState,
                        before: snapshot.SubscriptionState | None = None) -> Check:
    old_errors = ""
    if before is not None and (s.apply_errors, s.sync_errors) == (before.apply_errors, before.sync_errors) \
            and (s.apply_errors or s.sync_errors):
        # Counted before this run; the probe through this channel decides whether it works now.
        old_errors = f" (no new error during this run; {s.apply_errors} apply and {s.sync_errors} sync errors earlier)"
        s = replace(s, apply_errors=0, sync_errors=0, last_error=None)
    issues = subscription_issues(node, s)
    if issues:
        return Check("subscription", s.name, False, "; ".join(msg for _sev, msg in issues))
    return Check("subscription", s.name, True, f"on {node}: enabled, worker running, "
                                               f"{s.tables_ready}/{s.tables_total} tables ready, no errors{old_errors}")

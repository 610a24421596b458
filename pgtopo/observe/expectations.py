"""What pgtopo expects of a running topology, beside what the file says: shared by ``status``
and ``verify``.

A recorded failover moves each cluster's primary (``primaries``: cluster -> current primary)
and with it the upstream of every replica and the node of every subscription. The helpers on a
``NodeSnapshot`` read what a node is configured for (``configured_upstream``), which logical
slots a missing standby holds back (``held_back``), which slots are mirrors of the primary's
(``slot_is_mirror``), and what is wrong with a subscription (``subscription_issues``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import psycopg
from psycopg.conninfo import conninfo_to_dict

from pgtopo.model.topology import PG_PORT, Topology
from pgtopo.observe import snapshot
from pgtopo.observe.snapshot import NodeSnapshot

DEFAULT_MAX_RETAINED = 64 * 1024 * 1024


def expected_upstream(topo: Topology, node: str, primaries: Mapping[str, str]) -> str | None:
    """The node ``node`` should stream from: the file's upstream, moved by a recorded failover.

    A replica that named the old primary follows the new one, and a demoted primary becomes
    a replica of the new one (the rule ``deploy`` applies when it creates nodes).
    """
    cluster = topo.cluster_of(node)
    current = primaries.get(cluster, topo.clusters[cluster].primary_name)
    if node == current:
        return None
    upstream = topo.node(node).upstream
    if upstream is None or upstream == topo.clusters[cluster].primary_name:
        return current
    return upstream


def failed_over(topo: Topology, primaries: Mapping[str, str]) -> set[str]:
    """Clusters whose current primary is not the file's."""
    return {c for c, cl in topo.clusters.items() if primaries.get(c, cl.primary_name) != cl.primary_name}


@dataclass(frozen=True)
class ExpectedSubscription:
    name: str
    cluster: str
    node: str  # the subscribing cluster's current primary
    database: str
    publisher_cluster: str
    publisher_node: str
    publisher_database: str
    publication: str


def expected_subscriptions(topo: Topology, primaries: Mapping[str, str]) -> list[ExpectedSubscription]:
    out = []
    for cname, cl in topo.clusters.items():
        for sname, sub in cl.subscriptions.items():
            pub = topo.clusters[sub.publisher].publications[sub.publication]
            out.append(ExpectedSubscription(
                name=sname, cluster=cname, node=primaries.get(cname, cl.primary_name),
                database=sub.database or pub.database, publisher_cluster=sub.publisher,
                publisher_node=primaries.get(sub.publisher, topo.clusters[sub.publisher].primary_name),
                publisher_database=pub.database, publication=sub.publication))
    return out


def configured_upstream(topo: Topology, ns: NodeSnapshot) -> str | None:
    """The node primary_conninfo points at (whether or not the receiver manages to stream)."""
    return conninfo_target(topo, ns.settings.get("primary_conninfo") or "")


def conninfo_target(topo: Topology, raw: str) -> str | None:
    """The node a connection string made by pgtopo points at (a replica's upstream, a subscription's
    publisher): its name in the same region, a relay port across regions."""
    if not raw:
        return None
    try:
        info = conninfo_to_dict(raw)
        port = int(info.get("port") or PG_PORT)
    except (ValueError, psycopg.Error):
        return None
    host = info.get("host")
    return snapshot.resolve_sender(topo, host=str(host) if host else None, port=port)


def held_back(ns: NodeSnapshot) -> tuple[list[str], list[str]]:
    """On a writable node: (standby slots in synchronized_standby_slots that are missing or
    inactive, failover logical slots that therefore get no changes). Empty when nothing waits.

    PostgreSQL 17 makes logical walsenders of failover slots wait until every listed standby
    slot confirms the WAL: a standby that is down stalls logical replication too.
    """
    if not ns.reachable or ns.in_recovery:
        return [], []
    raw = ns.settings.get("synchronized_standby_slots") or ""
    listed = [n.strip().strip('"') for n in raw.split(",") if n.strip()]
    slots = {s.name: s for s in ns.slots}
    waiting = [n for n in listed if n not in slots or not slots[n].active]
    held = [s.name for s in ns.slots if s.slot_type == "logical" and s.failover]
    return (waiting, held) if waiting and held else ([], [])


def slot_is_mirror(ns: NodeSnapshot, slot: snapshot.Slot) -> bool:
    """A failover slot synced onto a standby: inactive by design, it mirrors the primary's."""
    return slot.synced and bool(ns.in_recovery)


def subscription_issues(node: str, s: snapshot.SubscriptionState) -> list[tuple[str, str]]:
    """(severity, message) for one subscription; verify treats every one as a failure."""
    out = []
    tail = f": {s.last_error}" if s.last_error else ""
    if not s.enabled:
        out.append(("error", f"subscription {s.name} on {node} is disabled{tail}"))
    elif not s.worker_running:
        out.append(("error", f"subscription {s.name} on {node}: apply worker not running{tail}"))
    if s.tables_ready < s.tables_total:
        out.append(("warning", f"subscription {s.name} on {node}: {s.tables_ready}/{s.tables_total} tables ready"))
    if s.apply_errors or s.sync_errors:
        out.append(("warning", f"subscription {s.name} on {node}: {s.apply_errors} apply and {s.sync_errors} "
                               f"sync errors since its statistics were reset{tail}"))
    return out

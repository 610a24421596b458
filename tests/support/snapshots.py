"""Hand-built frozen snapshots (``pgtopo.observe.snapshot``) for the pure deciders: status, verify, failover.

Every builder gives a running, reachable node on timeline 1 at the WAL position ``BASE``, with
the system identifier ``SYSTEM_ID``; keyword arguments set any other field of the record.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from pgtopo.observe.snapshot import Downstream, NodeSnapshot, Slot, Snapshot, SubscriptionState
from pgtopo.postgres.lsn import format_lsn

BASE = 0x3000000
SYSTEM_ID = "7001"
MIB = 1 << 20


def lsn(n: int) -> str:
    return format_lsn(n)


def primary(node: str, region: str, *, cluster: str = "main", at: int = BASE, timeline: int = 1,
            system_identifier: str = SYSTEM_ID, **kw: Any) -> NodeSnapshot:
    """A writable node whose current WAL position is ``at``."""
    return NodeSnapshot(node=node, cluster=cluster, region=region, container="running", reachable=True,
                        in_recovery=False, system_identifier=system_identifier, timeline=timeline,
                        current_lsn=lsn(at), **kw)


def replica(node: str, region: str, *, upstream: str | None, cluster: str = "main", at: int = BASE,
            replay: int | None = None, timeline: int = 1, system_identifier: str = SYSTEM_ID,
            receiver: str | None = None, **kw: Any) -> NodeSnapshot:
    """A node in recovery that received WAL up to ``at`` and replayed it up to ``replay`` (default: ``at``).

    ``upstream`` is the node its WAL receiver streams from; None: the receiver is not connected
    (it waits, unless ``receiver`` says otherwise).
    """
    return NodeSnapshot(node=node, cluster=cluster, region=region, container="running", reachable=True,
                        in_recovery=True, system_identifier=system_identifier, timeline=timeline,
                        receive_lsn=lsn(at), replay_lsn=lsn(at if replay is None else replay), upstream=upstream,
                        receiver_status=receiver or ("streaming" if upstream else "waiting"), **kw)


def down(node: str, region: str, *, cluster: str = "main", container: str = "exited", **kw: Any) -> NodeSnapshot:
    """A node that cannot be reached because its container is not running."""
    return NodeSnapshot(node=node, cluster=cluster, region=region, container=container, reachable=False,
                        error=kw.pop("error", f"container {container}"), **kw)


def downstream(name: str, *, lag: int = 0, replay_lag: float | None = None, sync: str = "async",
               prio: int = 0) -> Downstream:
    """A streaming row of pg_stat_replication for ``name`` (a standby or a subscription)."""
    at = lsn(BASE)
    return Downstream(application_name=name, state="streaming", sent_lsn=at, write_lsn=at, flush_lsn=at, replay_lsn=at,
                      lag_bytes=lag, write_lag_s=None, flush_lag_s=None, replay_lag_s=replay_lag, sync_state=sync,
                      sync_priority=prio)


def subscription(**kw: Any) -> SubscriptionState:
    """inventory_sub, healthy: enabled, its worker running, both tables ready, no error."""
    base: dict[str, Any] = dict(
        name="inventory_sub", database="production", enabled=True, publications=("inventory_pub", "pgtopo_probe"),
        conninfo="host=pgtopo-relay", slot_name="inventory_sub", failover=True, worker_running=True,
        tables_ready=2, tables_total=2, received_lsn=lsn(BASE), latest_end_time_lag_s=1.0, apply_errors=0,
        sync_errors=0, last_error=None)
    base.update(kw)
    return SubscriptionState(**base)


# The failover slot of inventory_sub as a standby holds it once synchronised from the primary.
SYNCED = Slot(name="inventory_sub", slot_type="logical", active=False, retained_bytes=0, wal_status="reserved",
              database="production", failover=True, synced=True)


def snapshot(nodes: dict[str, NodeSnapshot], *, topology: str, taken_at: float = 0.0) -> Snapshot:
    return Snapshot(topology=topology, taken_at=taken_at, nodes=nodes)


def change(nodes: dict[str, NodeSnapshot], name: str, **kw: Any) -> dict[str, NodeSnapshot]:
    """A copy of ``nodes`` with fields of node ``name`` replaced."""
    return {**nodes, name: dataclasses.replace(nodes[name], **kw)}

"""Snapshots of the SAAS and SYNC topologies (``tests.support.topologies``) as a failover finds them.

Keyword arguments replace nodes by name, with ``_`` for ``-`` (``pg_eu=replica(...)``).
"""

from __future__ import annotations

from pgtopo.observe.snapshot import NodeSnapshot, Snapshot

from .snapshots import BASE, SYNCED, down, primary, replica, snapshot, subscription


def saas_snap(**nodes: NodeSnapshot) -> Snapshot:
    """SAAS with pg-us down (killed), every replica equal at BASE and its receiver disconnected
    (pg-eu2 still streams from pg-eu), billing's subscription healthy."""
    default = {
        "pg-us": down("pg-us", "us-east"),
        "pg-eu": replica("pg-eu", "eu-west", upstream=None, slots=(SYNCED,),
                         settings={"primary_conninfo": "host=pgtopo-relay port=10100 user=replicator"}),
        "pg-eu2": replica("pg-eu2", "eu-west", upstream="pg-eu"),
        "pg-us2": replica("pg-us2", "us-east", upstream=None,
                          settings={"primary_conninfo": "host=pg-us port=5432 user=replicator"}),
        "pg-billing": primary("pg-billing", "ap-south", cluster="billing", subscriptions=(subscription(),)),
    }
    default.update({k.replace("_", "-"): v for k, v in nodes.items()})
    return snapshot(default, topology="t-unit")


def sync_snap(**nodes: NodeSnapshot) -> Snapshot:
    """SYNC with pg-a down (killed): pg-b and pg-c at BASE, pg-d (asynchronous) 50 bytes ahead."""
    default = {
        "pg-a": down("pg-a", "dc1"),
        "pg-b": replica("pg-b", "dc1", upstream=None),
        "pg-c": replica("pg-c", "dc1", upstream=None),
        "pg-d": replica("pg-d", "dc1", at=BASE + 50, upstream=None),
    }
    default.update({k.replace("_", "-"): v for k, v in nodes.items()})
    return snapshot(default, topology="t-unit-sync")

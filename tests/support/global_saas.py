"""global-saas.yaml as `pgtopo up` leaves it, as a snapshot: what status and verify are tested on.

pg-us (us-east) is the primary of main, pg-eu (eu-west) streams from it through the relay with
its own slot, and pg-billing (ap-south, cluster billing) receives inventory_pub through
inventory_sub, a failover slot synchronised to pg-eu.
"""

from __future__ import annotations

from typing import Any

from pgtopo.model.loader import load
from pgtopo.model.topology import RELAY_ALIAS, Topology, slot_name
from pgtopo.observe.snapshot import NodeSnapshot, Slot, Snapshot

from .snapshots import downstream, primary, replica, snapshot, subscription
from .topologies import FOUR_REGIONS, GLOBAL_SAAS

GLOBAL = load(GLOBAL_SAAS)
FOUR = load(FOUR_REGIONS)
FILE_PRIMARIES = {"main": "pg-us", "billing": "pg-billing"}
EU_TO_US = GLOBAL.relay_port("eu-west", "pg-us")
CONNINFO_US = (f"host={RELAY_ALIAS} port={EU_TO_US} user=replicator dbname=postgres application_name=pg-eu "
               "passfile=/etc/pgtopo/pgpass connect_timeout=5")
TAKEN_AT = 1_700_000_000.0


def writable(node: str, region: str, **kw: Any) -> NodeSnapshot:
    """A primary with the settings `up` renders for one: no upstream, no slot of its own."""
    settings = kw.pop("settings", {"cluster_name": node, "primary_conninfo": "", "primary_slot_name": ""})
    return primary(node, region, settings=settings, **kw)


def standby(node: str, region: str, *, upstream: str, **kw: Any) -> NodeSnapshot:
    """A replica streaming from pg-us through the relay with its own slot, as `up` configures pg-eu."""
    slot = slot_name(node)
    settings = kw.pop("settings", {"cluster_name": node, "primary_conninfo": CONNINFO_US, "primary_slot_name": slot})
    return replica(node, region, upstream=upstream, upstream_raw=f"{RELAY_ALIAS}:{EU_TO_US}", receiver_slot=slot,
                   settings=settings, **kw)


def healthy() -> dict[str, NodeSnapshot]:
    """global-saas as `up` leaves it."""
    return {
        "pg-us": writable(
            "pg-us", "us-east", downstream=(downstream("inventory_sub"), downstream("pg-eu")),
            slots=(Slot("inventory_sub", "logical", True, 56, "reserved", "production", True, False),
                   Slot("pg_eu", "physical", True, 0, "reserved", None, False, False)),
            settings={"cluster_name": "pg-us", "primary_conninfo": "", "primary_slot_name": "",
                      "synchronized_standby_slots": "pg_eu"}),
        "pg-eu": standby("pg-eu", "eu-west", upstream="pg-us",
                         slots=(Slot("inventory_sub", "logical", False, 56, "reserved", "production", True, True),)),
        "pg-billing": writable("pg-billing", "ap-south", cluster="billing", system_identifier="7002", at=0x1B00000,
                               subscriptions=(subscription(),)),
    }


def snap(nodes: dict[str, NodeSnapshot], topo: Topology = GLOBAL) -> Snapshot:
    return snapshot(nodes, topology=topo.name, taken_at=TAKEN_AT)

"""Names the file cannot take because pgtopo or PostgreSQL already gives them to something.

A node named ``relay`` would be the relay container, ``pgtopo-relay`` answers for the relay on
every region network, ``pgtopo_probe`` is the probe publication, ``postgres`` and the two
templates exist in every cluster, and a subscription's slot is named after the subscription, so
one named like a replica's physical slot takes that slot's place on the publisher.
"""

from __future__ import annotations

from pgtopo.model.topology import (
    HOLD_SLOT,
    PROBE_PUBLICATION,
    RESERVED_DATABASES,
    RESERVED_NODE_NAMES,
    Cluster,
    Topology,
    slot_name,
)


def slot_owner(topo: Topology, name: str) -> str | None:
    """The node whose physical slot is called ``name``, if any."""
    return next((n for n in topo.node_names() if slot_name(n) == name), None)


def slot_clash(name: str, owner: str) -> str:
    return (f"'{name}' is the physical replication slot of node '{owner}' (a subscription's slot takes its name); "
            "choose another name")


def cluster_problems(topo: Topology, cname: str, cluster: Cluster) -> list[str]:
    """Every reserved name the cluster uses, as ``path.to.field: message``."""
    base = f"clusters.{cname}"
    out: list[str] = []
    for nname in cluster.nodes:
        if nname in RESERVED_NODE_NAMES:
            out.append(f"{base}.nodes.{nname}: '{nname}' is {RESERVED_NODE_NAMES[nname]} in every topology; "
                       "choose another name")
        elif slot_name(nname) == HOLD_SLOT:
            out.append(f"{base}.nodes.{nname}: its slot would be '{HOLD_SLOT}', the slot a failover holds WAL with; "
                       "choose another name")
    for dname in cluster.databases:
        if dname in RESERVED_DATABASES:
            out.append(f"{base}.databases.{dname}: '{dname}' exists in every PostgreSQL cluster; choose another name")
    for pname in cluster.publications:
        if pname == PROBE_PUBLICATION:
            out.append(f"{base}.publications.{pname}: '{pname}' is pgtopo's own publication (the probe rows of "
                       "`verify`); choose another name")
    for sname in cluster.subscriptions:
        owner = slot_owner(topo, sname)
        if owner is not None:
            out.append(f"{base}.subscriptions.{sname}: {slot_clash(sname, owner)}")
        elif sname == HOLD_SLOT:
            out.append(f"{base}.subscriptions.{sname}: '{sname}' is the slot a failover holds WAL with (a "
                       "subscription's slot takes its name); choose another name")
    return out

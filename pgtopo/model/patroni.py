"""Render Patroni's and etcd's configuration for ``ha: patroni`` clusters: pure, deterministic.

Each node of a Patroni cluster gets a ``patroni.yml`` derived from the same model as today's
files: its PostgreSQL parameters and pg_hba lines are read back from the ``postgresql.conf``
and ``pg_hba.conf`` pgtopo renders for it (one source of truth), less what Patroni sets itself.
Each etcd member gets an ``etcd.conf.yml``. No secret is written: Patroni reads its passwords
from its environment at run time (``PATRONI_RESTAPI_PASSWORD``, ``PATRONI_SUPERUSER_PASSWORD``,
``PATRONI_REPLICATION_PASSWORD``, ``PATRONI_REWIND_PASSWORD``).

Every address another member uses (Patroni's connect addresses, etcd's advertised URLs and the
etcd hosts Patroni calls) comes from an ``address(member, port)`` function: by default the
production one, ``<member>:<port>``, which ``render`` writes; ``up`` passes the lab's (the relay's
mesh port of the member, so that latency and partitions apply) and installs that variant.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable

from pgtopo.errors import InputError
from pgtopo.model.topology import PG_PORT, DcsMember, Topology, slot_name

PATRONI_API_PORT = 8008
ETCD_CLIENT_PORT = 2379
ETCD_PEER_PORT = 2380
NAMESPACE = "/pgtopo/"
REST_API_USER = "patroni"
SUPERUSER = "postgres"
REPLICATION_USER = "replicator"
REWIND_USER = "pgtopo"  # pg_rewind connects over TCP: pg_hba lets only pgtopo's roles do that
DATA_DIR = "/var/lib/postgresql/data/data"  # pgtopo's PGDATA: the node's volume holds it
ETCD_DATA_DIR = "/var/lib/etcd/data"
PASSFILE = "/var/run/postgresql/patroni.pgpass"  # Patroni writes it from its environment
SECRET_VARIABLES = ("PATRONI_RESTAPI_PASSWORD", "PATRONI_SUPERUSER_PASSWORD", "PATRONI_REPLICATION_PASSWORD",
                    "PATRONI_REWIND_PASSWORD")
# Parameters Patroni sets from its own configuration (addresses, replication source, the
# synchronous standbys it elects) or replaces (pg_hba, permanent slots instead of PostgreSQL
# 17's slot synchronisation, which needs a dbname in a primary_conninfo Patroni writes).
PATRONI_OWNED = frozenset({
    "cluster_name", "listen_addresses", "port", "hba_file", "primary_conninfo", "primary_slot_name",
    "synchronous_standby_names", "recovery_target_timeline", "sync_replication_slots",
    "synchronized_standby_slots",
})
# Patroni's dynamic configuration holds these: one value for the whole cluster.
CLUSTER_WIDE = frozenset({
    "max_connections", "max_locks_per_transaction", "max_worker_processes", "max_prepared_transactions",
    "wal_level", "track_commit_timestamp", "max_wal_senders", "max_replication_slots", "wal_log_hints",
    "hot_standby",
})
# etcd's tuning guide: a heartbeat near the largest round trip between members, an election
# timeout about ten heartbeats; never below etcd's own defaults.
ETCD_MIN_HEARTBEAT_MS = 100
ETCD_ELECTIONS_PER_HEARTBEAT = 10

Address = Callable[[str, int], str]  # (member, port) -> "host:port" where the others reach it


def production_address(member: str, port: int) -> str:
    """A member reached by its own name: what the rendered files say (production VMs)."""
    return f"{member}:{port}"


_ASSIGNMENT = re.compile(r"^([a-z_][a-z0-9_.]*)\s*=\s*('(?:[^']|'')*'|[^\s#]+)")


def refuse_around(topo: Topology, clusters: list[str], command: str) -> None:
    """Commands that would act *around* Patroni (promote, fence, rewind, create or drop slots
    behind its back) refuse a Patroni cluster until they go through its REST API."""
    for cluster in dict.fromkeys(clusters):
        if cluster in topo.clusters and topo.clusters[cluster].ha == "patroni":
            raise InputError(f"clusters.{cluster}.ha: patroni: `pgtopo {command}` on cluster {cluster} goes through "
                             "Patroni: not yet (Patroni fails over by itself; `pgtopo status` shows what it did)")


def refuse_subscriber(topo: Topology, cluster: str, command: str) -> None:
    """add- and remove-subscription go through Patroni for a Patroni *publisher* (its permanent
    slots, ``PATCH /config``); a Patroni *subscriber* is refused: they would create tables and the
    subscription on its PostgreSQL directly, and ``up`` does not make such a cluster a subscriber."""
    if cluster in topo.clusters and topo.clusters[cluster].ha == "patroni":
        raise InputError(f"clusters.{cluster}.ha: patroni: `pgtopo {command}` does not act on Patroni cluster "
                         f"{cluster} as a subscriber: it would change tables and the subscription on its PostgreSQL "
                         "around Patroni (a Patroni publisher goes through Patroni)")


def conf_parameters(conf: str) -> dict[str, str]:
    """``key = value`` lines of a rendered postgresql.conf, values unquoted."""
    out: dict[str, str] = {}
    for line in conf.splitlines():
        m = _ASSIGNMENT.match(line)
        if m:
            value = m.group(2)
            if value.startswith("'"):
                value = value[1:-1].replace("''", "'").replace("\\\\", "\\")
            out[m.group(1)] = value
    return out


def hba_lines(hba: str) -> list[str]:
    """The rule lines of a rendered pg_hba.conf, one space between fields."""
    return [" ".join(line.split()) for line in hba.splitlines() if line.strip() and not line.startswith("#")]


def etcd_hosts(topo: Topology, address: Address = production_address) -> list[str]:
    return [address(m.name, ETCD_CLIENT_PORT) for m in topo.dcs_members()]


def permanent_slots(topo: Topology, cluster: str) -> dict[str, dict[str, str]]:
    """Slots Patroni keeps on every member, so that they survive a failover: each member's
    physical slot (Patroni skips the one named after the member itself) and the logical slot of
    every subscription to this cluster (named after the subscription, as CREATE SUBSCRIPTION does)."""
    slots: dict[str, dict[str, str]] = {slot_name(n): {"type": "physical"} for n in topo.clusters[cluster].nodes}
    for cl in topo.clusters.values():
        for sname, sub in cl.subscriptions.items():
            if sub.publisher == cluster:
                pub = topo.clusters[cluster].publications[sub.publication]
                slots[sname] = {"type": "logical", "database": pub.database, "plugin": "pgoutput"}
    return slots


def ignored_slots(topo: Topology, cluster: str) -> list[dict[str, str]]:
    """Slots Patroni must leave alone (its ``ignore_slots``): the pgoutput logical slots of the
    databases this cluster publishes to a subscriber. A subscription's initial copy makes a
    slot per table (``pg_<subscription oid>_sync_<table oid>_<system id>``) on the publisher and
    drops it when the copy ends; Patroni drops every slot it does not know by name at its next
    loop, so without this a table added later (pgtopo's probe table) never finishes its copy.
    Patroni matches by exact name only, hence type + plugin + database. The subscriptions' own
    slots stay permanent slots: Patroni keeps managing those."""
    databases = {topo.clusters[cluster].publications[sub.publication].database
                 for cl in topo.clusters.values() for sub in cl.subscriptions.values() if sub.publisher == cluster}
    return [{"type": "logical", "database": db, "plugin": "pgoutput"} for db in sorted(databases)]


def subscription_slot_change(topo: Topology, cluster: str, sub_name: str) -> dict[str, object]:
    """The ``PATCH /config`` body that brings Patroni's dynamic configuration of ``cluster`` (a
    publisher) in line with ``topo``, the file after add- or remove-subscription edited it, for
    the subscription ``sub_name``: its logical slot is a permanent slot when ``topo`` has the
    subscription, removed (``None``) when not; ``ignore_slots`` as ``topo`` derives it (``None``
    removes the key: no database published to a subscriber any more)."""
    slot = permanent_slots(topo, cluster).get(sub_name)
    if slot is not None and slot.get("type") != "logical":
        raise ValueError(f"{sub_name} names a physical slot of cluster {cluster}")
    return {"slots": {sub_name: slot}, "ignore_slots": ignored_slots(topo, cluster) or None}


def synchronous_count(topo: Topology, node: str) -> int | None:
    """How many synchronous standbys Patroni keeps in ``node``'s cluster when ``node`` may be one
    of them (its rendered tags do not say ``nosync``); None when it never is one.

    The file's primary may serve as a synchronous standby once a failover has made it a replica:
    were it `nosync`, a second failover would find no synchronous candidate and Patroni would
    promote nobody (seen in the patroni-primary-crash drill run twice)."""
    cl = topo.clusters[topo.cluster_of(node)]
    if cl.synchronous is None or (node not in cl.synchronous.standbys and node != cl.primary_name):
        return None
    return cl.synchronous.count


def patroni_config(topo: Topology, *, node: str, conf: str, hba: str, cluster_confs: dict[str, str],
                   address: Address = production_address) -> dict[str, object]:
    """The patroni.yml of ``node`` as a mapping. ``conf`` and ``hba`` are the node's rendered
    files, ``cluster_confs`` every node's postgresql.conf in its cluster (what they all share
    goes into Patroni's dynamic configuration), ``address`` where members reach each other."""
    cluster = topo.cluster_of(node)
    cl = topo.clusters[cluster]
    n = topo.node(node)
    spec = cl.patroni_spec
    mine = {k: v for k, v in conf_parameters(conf).items() if k not in PATRONI_OWNED}
    every = [conf_parameters(text) for text in cluster_confs.values()]
    shared = {k: v for k, v in mine.items() if k in CLUSTER_WIDE or all(p.get(k) == v for p in every)}
    local = {k: v for k, v in mine.items() if k not in shared}
    dcs: dict[str, object] = {
        "ttl": spec.ttl, "loop_wait": spec.loop_wait, "retry_timeout": spec.retry_timeout,
        "maximum_lag_on_failover": spec.maximum_lag_on_failover,
    }
    if cl.synchronous is not None:
        # ANY n: Patroni's quorum commit; FIRST n: its synchronous mode with n standbys.
        dcs["synchronous_mode"] = "quorum" if cl.synchronous.method == "any" else True
        dcs["synchronous_node_count"] = cl.synchronous.count
    dcs["postgresql"] = {"use_pg_rewind": True, "use_slots": True, "parameters": shared}
    dcs["slots"] = permanent_slots(topo, cluster)
    ignored = ignored_slots(topo, cluster)
    if ignored:
        dcs["ignore_slots"] = ignored
    tags: dict[str, object] = {
        "failover_priority": n.failover_priority,
        "nofailover": n.failover_priority == 0,  # pgtopo's 0: never promoted, as Patroni's tag says
    }
    if cl.synchronous is not None:
        tags["nosync"] = synchronous_count(topo, node) is None
    if n.upstream is not None and n.upstream != cl.primary_name:
        tags["replicatefrom"] = n.upstream
    return {
        "scope": cluster,
        "namespace": f"{NAMESPACE}{topo.name}/",
        "name": node,
        "restapi": {
            "listen": f"0.0.0.0:{PATRONI_API_PORT}",
            "connect_address": address(node, PATRONI_API_PORT),
            "authentication": {"username": REST_API_USER},
        },
        "etcd3": {"hosts": etcd_hosts(topo, address)},
        "bootstrap": {
            "dcs": dcs,
            "initdb": [{"encoding": "UTF8"}, {"locale": "C.UTF-8"}, "data-checksums", {"auth-local": "peer"},
                       {"auth-host": "scram-sha-256"}],
        },
        "postgresql": {
            "listen": f"0.0.0.0:{PG_PORT}",
            "connect_address": address(node, PG_PORT),
            "data_dir": DATA_DIR,
            "bin_dir": f"/usr/lib/postgresql/{topo.postgres.version}/bin",
            "pgpass": PASSFILE,
            "use_unix_socket": True,
            # A clone starts at once, as pgtopo's own clones do, not after a spread checkpoint.
            "basebackup": [{"checkpoint": "fast"}],
            "authentication": {
                "superuser": {"username": SUPERUSER},
                "replication": {"username": REPLICATION_USER},
                "rewind": {"username": REWIND_USER},
            },
            "parameters": local,
            "pg_hba": hba_lines(hba),
        },
        "tags": tags,
    }


def etcd_config(topo: Topology, member: DcsMember, address: Address = production_address) -> dict[str, object]:
    members = topo.dcs_members()
    rtt = max((topo.rtt_ms(a.region, b.region) + 2 * _jitter(topo, a.region, b.region)
               for a in members for b in members), default=0.0)
    heartbeat = max(ETCD_MIN_HEARTBEAT_MS, math.ceil(rtt))
    return {
        "name": member.name,
        "data-dir": ETCD_DATA_DIR,
        "listen-client-urls": f"http://0.0.0.0:{ETCD_CLIENT_PORT}",
        "advertise-client-urls": f"http://{address(member.name, ETCD_CLIENT_PORT)}",
        "listen-peer-urls": f"http://0.0.0.0:{ETCD_PEER_PORT}",
        "initial-advertise-peer-urls": f"http://{address(member.name, ETCD_PEER_PORT)}",
        "initial-cluster": ",".join(f"{m.name}=http://{address(m.name, ETCD_PEER_PORT)}" for m in members),
        "initial-cluster-state": "new",
        "initial-cluster-token": f"pgtopo-{topo.name}",
        "heartbeat-interval": heartbeat,
        "election-timeout": heartbeat * ETCD_ELECTIONS_PER_HEARTBEAT,
    }


def _jitter(topo: Topology, a: str, b: str) -> float:
    link = topo.link(a, b)
    return link.jitter_ms if link else 0.0


# -- a small YAML writer: every string Patroni's YAML 1.1 parser could read as something else
# (on, no, 1e3, 08:00) is double-quoted; JSON strings are valid YAML double-quoted scalars.

_PLAIN = re.compile(r"^[A-Za-z_/][A-Za-z0-9_./:@=,-]*$")
_YAML11_WORDS = frozenset({"y", "n", "yes", "no", "on", "off", "true", "false", "null"})


def _scalar(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    text = str(value)
    if _PLAIN.match(text) and text.lower() not in _YAML11_WORDS and not text.endswith(":"):
        return text
    return json.dumps(text)


def to_yaml(value: object, indent: int = 0) -> str:
    pad = " " * indent
    lines: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, dict | list) and item:
                lines.append(f"{pad}{_scalar(key)}:")
                lines.append(to_yaml(item, indent + 2))
            else:
                lines.append(f"{pad}{_scalar(key)}: {_empty_or_scalar(item)}")
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, dict) and item:
                first, *rest = to_yaml(item, indent + 2).splitlines()
                lines.append(f"{pad}- {first.lstrip()}")
                lines.extend(rest)
            else:
                lines.append(f"{pad}- {_empty_or_scalar(item)}")
    return "\n".join(lines)


def _empty_or_scalar(value: object) -> str:
    if isinstance(value, dict):
        return "{}"
    if isinstance(value, list):
        return "[]"
    return _scalar(value)

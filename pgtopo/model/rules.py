"""The semantic rules of the topology file: how its parts refer to each other.

Pydantic (``pgtopo.model.topology``) has checked structure and names; these rules check primaries,
upstreams and cycles, synchronous standbys, publications and subscriptions against schemas,
regions and latencies, ports and subnets. Every problem is returned, none raised.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

from pgtopo.errors import InputError
from pgtopo.model import pgsettings, reserved
from pgtopo.model.files import FileRefused
from pgtopo.model.schema_file import TableColumns, read_schema, schema_columns, schema_tables
from pgtopo.model.sqlcheck import schema_problems
from pgtopo.model.topology import MAX_NODES, Cluster, Topology


def problems(topo: Topology, path: Path) -> list[str]:
    """Every semantic problem of a structurally valid topology, as ``path.to.field: message``."""
    p: list[str] = []
    seen_nodes: dict[str, str] = {}
    schemas: dict[tuple[str, str], set[str] | None] = {}
    columns: dict[tuple[str, str], dict[str, TableColumns | None]] = {}

    for cname, cluster in topo.clusters.items():
        base = f"clusters.{cname}"
        primaries = [n for n, node in cluster.nodes.items() if node.role == "primary"]
        if len(primaries) != 1:
            found = ", ".join(primaries) if primaries else "none"
            p.append(f"{base}.nodes: a cluster needs exactly one primary (found: {found})")
        p.extend(reserved.cluster_problems(topo, cname, cluster))
        for dname, db in cluster.databases.items():
            try:
                text = read_schema(path, db)
            except FileRefused as exc:
                why = "No such file or directory" if exc.missing else exc.message
                p.append(f"{base}.databases.{dname}.schema_file: cannot read '{db.schema_file}' ({why})")
                text = None
            if text is not None:
                field = "schema_file" if db.schema_file is not None else "schema"
                p.extend(f"{base}.databases.{dname}.{field}: {msg}" for msg in schema_problems(text))
            schemas[(cname, dname)] = schema_tables(text) if text is not None else None
            columns[(cname, dname)] = schema_columns(text) if text is not None else {}
        for nname, node in cluster.nodes.items():
            npath = f"{base}.nodes.{nname}"
            for key, setting in node.settings.items():
                bad = pgsettings.problem(key, setting, version=topo.postgres.version)
                if bad:
                    p.append(f"{npath}.settings.{key}: {bad}")
            if nname in seen_nodes:
                p.append(f"{npath}: node name already used in cluster '{seen_nodes[nname]}'")
            seen_nodes.setdefault(nname, cname)
            if node.region not in topo.regions:
                p.append(f"{npath}.region: unknown region '{node.region}'")
            if node.role == "primary" and node.upstream is not None:
                p.append(f"{npath}.upstream: a primary has no upstream")
            if node.role == "replica":
                if node.upstream is None:
                    p.append(f"{npath}.upstream: a replica needs an upstream")
                elif node.upstream not in cluster.nodes:
                    other = " (it is in another cluster)" if node.upstream in seen_nodes or any(
                        node.upstream in c.nodes for c in topo.clusters.values()
                    ) else ""
                    p.append(f"{npath}.upstream: unknown node '{node.upstream}' in cluster '{cname}'{other}")
        p.extend(_cycle_problems(base, cluster))
        p.extend(_sync_problems(base, cluster))
        for pname, pub in cluster.publications.items():
            ppath = f"{base}.publications.{pname}"
            if pub.database not in cluster.databases:
                p.append(f"{ppath}.database: unknown database '{pub.database}' in cluster '{cname}'")
                continue
            known = schemas.get((cname, pub.database))
            for i, table in enumerate(pub.table_list()):
                if known is not None and table.name not in known:
                    p.append(f"{ppath}.tables.{i}: table '{table.name}' is not created by the schema of '{pub.database}'")
                cols = columns[(cname, pub.database)].get(table.name)
                for j, col in enumerate(table.columns or []):
                    if cols is not None and col not in cols.names:
                        p.append(f"{ppath}.tables.{i}.columns.{j}: column '{col}' is not in table '{table.name}' of the "
                                 f"schema of '{pub.database}'")
                if table.where is not None and topo.postgres.version < 15:
                    p.append(f"{ppath}.tables.{i}.where: row filters need PostgreSQL 15 or later")

    if len(seen_nodes) > MAX_NODES:
        p.append(f"clusters: at most {MAX_NODES} nodes")
    p.extend(_subscription_problems(topo, schemas, columns))
    p.extend(_region_problems(topo))
    p.extend(_ha_problems(topo))
    ports: dict[int, str] = {}
    for cname, nname, node in topo.all_nodes():
        if node.port is not None:
            if node.port in ports:
                p.append(f"clusters.{cname}.nodes.{nname}.port: port {node.port} already used by node '{ports[node.port]}'")
            ports.setdefault(node.port, nname)
    return p


def _cycle_problems(base: str, cluster: Cluster) -> list[str]:
    out: list[str] = []
    for start in cluster.nodes:
        seen = [start]
        cur = cluster.nodes[start].upstream
        while cur is not None and cur in cluster.nodes:
            if cur in seen:
                if cur == start:
                    chain = " -> ".join([*seen, cur])
                    out.append(f"{base}.nodes.{start}.upstream: replication cycle {chain}")
                break
            seen.append(cur)
            cur = cluster.nodes[cur].upstream
    return out


def _sync_problems(base: str, cluster: Cluster) -> list[str]:
    sync = cluster.synchronous
    if sync is None:
        return []
    out: list[str] = []
    primaries = [n for n, node in cluster.nodes.items() if node.role == "primary"]
    primary = primaries[0] if len(primaries) == 1 else None
    for i, name in enumerate(sync.standbys):
        if name not in cluster.nodes:
            out.append(f"{base}.synchronous.standbys.{i}: unknown node '{name}'")
        elif primary is not None and cluster.nodes[name].upstream != primary:
            out.append(
                f"{base}.synchronous.standbys.{i}: '{name}' is not a direct standby of the primary "
                f"'{primary}' (a cascaded standby never counts as synchronous)"
            )
    if len(set(sync.standbys)) != len(sync.standbys):
        out.append(f"{base}.synchronous.standbys: a standby is listed twice")
    if sync.count > len(sync.standbys):
        out.append(f"{base}.synchronous.count: {sync.count} is more than the {len(sync.standbys)} standbys listed")
    return out


def _subscription_problems(topo: Topology, schemas: dict[tuple[str, str], set[str] | None],
                           columns: dict[tuple[str, str], dict[str, TableColumns | None]]) -> list[str]:
    out: list[str] = []
    for cname, cluster in topo.clusters.items():
        for sname, sub in cluster.subscriptions.items():
            spath = f"clusters.{cname}.subscriptions.{sname}"
            if sub.publisher not in topo.clusters:
                out.append(f"{spath}.publisher: unknown cluster '{sub.publisher}'")
                continue
            if sub.publisher == cname:
                out.append(f"{spath}.publisher: a cluster cannot subscribe to itself")
                continue
            pub = topo.clusters[sub.publisher].publications.get(sub.publication)
            if pub is None:
                out.append(f"{spath}.publication: cluster '{sub.publisher}' has no publication '{sub.publication}'")
                continue
            dbname = sub.database or pub.database
            if dbname not in cluster.databases:
                out.append(f"{spath}.database: unknown database '{dbname}' in cluster '{cname}'")
                continue
            known = schemas.get((cname, dbname))
            if known is not None and not pub.all_tables:
                for table in pub.table_list():
                    if table.name not in known:
                        out.append(
                            f"{spath}: table '{table.name}' of publication '{sub.publication}' is not "
                            f"created by the schema of '{dbname}' in cluster '{cname}'"
                        )
                        continue
                    mine = columns.get((cname, dbname), {}).get(table.name)
                    sent = _published_columns(table.columns, columns.get((sub.publisher, pub.database), {}).get(table.name))
                    missing = [c for c in sent if c not in mine.names] if mine is not None else []
                    for col in missing:
                        out.append(f"{spath}: column '{col}' of table '{table.name}' (publication "
                                   f"'{sub.publication}') is not in table '{table.name}' of the schema of '{dbname}' "
                                   f"in cluster '{cname}'")
            if sub.failover and topo.postgres.version < 17:
                out.append(f"{spath}.failover: failover slots need PostgreSQL 17")
        names = [s for c in topo.clusters.values() for s in c.subscriptions]
        for sname in cluster.subscriptions:
            if names.count(sname) > 1:
                out.append(f"clusters.{cname}.subscriptions.{sname}: subscription name used in more than one cluster")
    return sorted(set(out), key=out.index)


def _published_columns(listed: list[str] | None, publisher: TableColumns | None) -> list[str]:
    """The columns a subscriber receives: the column list, else every column the publisher's
    schema gives the table (generated ones are never sent); none when that is unknown."""
    if listed is not None:
        return listed
    if publisher is None:
        return []
    return sorted(publisher.names - publisher.generated)


def _region_problems(topo: Topology) -> list[str]:
    out: list[str] = []
    seen: set[frozenset[str]] = set()
    for i, link in enumerate(topo.latency):
        a, b = link.between
        for r in (a, b):
            if r not in topo.regions:
                out.append(f"latency.{i}.between: unknown region '{r}'")
        if a == b:
            out.append(f"latency.{i}.between: a link joins two different regions")
        key = frozenset((a, b))
        if key in seen:
            out.append(f"latency.{i}.between: {a} <-> {b} is declared twice")
        seen.add(key)
        if link.jitter_ms > link.rtt_ms:
            out.append(f"latency.{i}.jitter_ms: jitter {link.jitter_ms} ms is larger than the round trip {link.rtt_ms} ms")
    regions = list(topo.regions)
    needed = _paths(topo)
    for x, a in enumerate(regions):
        for b in regions[x + 1 :]:
            if frozenset((a, b)) not in seen:
                why = needed.get(frozenset((a, b)), "clients and failover can use any path")
                out.append(f"latency: no latency declared between '{a}' and '{b}' (needed: {why})")
    nets: list[tuple[str, ipaddress.IPv4Network | ipaddress.IPv6Network]] = []
    for rname, region in topo.regions.items():
        if region.subnet:
            net = ipaddress.ip_network(region.subnet)
            for other, onet in nets:
                if net.overlaps(onet):
                    out.append(f"regions.{rname}.subnet: {net} overlaps region '{other}' ({onet})")
            nets.append((rname, net))
    return out


def _paths(topo: Topology) -> dict[frozenset[str], str]:
    """Region pairs used by a replication path, with a description of the first such path."""
    out: dict[frozenset[str], str] = {}
    for _c, nname, node in topo.all_nodes():
        if node.upstream:
            try:
                up = topo.node(node.upstream)
            except InputError:
                continue
            if up.region != node.region:
                out.setdefault(frozenset((node.region, up.region)), f"{nname} streams from {node.upstream}")
    for cluster in topo.clusters.values():
        for sname, sub in cluster.subscriptions.items():
            pub_cluster = topo.clusters.get(sub.publisher)
            if pub_cluster is None or len([n for n in cluster.nodes.values() if n.role == "primary"]) != 1:
                continue
            prim = [n for n in pub_cluster.nodes.values() if n.role == "primary"]
            if len(prim) != 1:
                continue
            a = cluster.nodes[cluster.primary_name].region
            if a != prim[0].region:
                out.setdefault(frozenset((a, prim[0].region)), f"subscription {sname}")
    return out


# Parameters Patroni keeps in its dynamic configuration, the same on every member: a value
# given on one node only would be overridden without a word.
PATRONI_CLUSTER_WIDE = ("max_connections", "max_locks_per_transaction", "max_prepared_transactions",
                        "max_worker_processes")


def _ha_problems(topo: Topology) -> list[str]:
    """``ha:``, ``patroni:`` and ``dcs:``: what Patroni and etcd need to keep a cluster alive."""
    out: list[str] = []
    patroni = topo.patroni_clusters()
    for cname, cluster in topo.clusters.items():
        base = f"clusters.{cname}"
        if cluster.patroni is not None and cluster.ha != "patroni":
            out.append(f"{base}.patroni: Patroni settings apply only with ha: patroni (this cluster is ha: manual)")
        if cluster.ha != "patroni":
            continue
        for key in PATRONI_CLUSTER_WIDE:
            values = {repr(node.settings.get(key)) for node in cluster.nodes.values()}
            if len(values) > 1:
                first = next(n for n, node in cluster.nodes.items() if key in node.settings)
                out.append(f"{base}.nodes.{first}.settings.{key}: Patroni sets {key} for the whole cluster (its "
                           f"dynamic configuration): give every node of '{cname}' the same value")
    if patroni and topo.postgres.image is not None and not topo.postgres.image.startswith("pgtopo/postgres:"):
        out.append(f"postgres.image: '{topo.postgres.image}' has no Patroni or etcd; ha: patroni (cluster "
                   f"'{patroni[0]}') runs on pgtopo's own image: remove postgres.image")
    out.extend(_dcs_name_problems(topo))
    if topo.dcs is None:
        return out
    if not patroni:
        out.append("dcs: no cluster has ha: patroni; the etcd members would serve nothing")
    for i, region in enumerate(topo.dcs.regions):
        if region not in topo.regions:
            out.append(f"dcs.regions.{i}: unknown region '{region}'")
    n = len(topo.dcs.regions)
    majority = n // 2 + 1
    if n < 3:
        out.append(f"dcs.regions: {n} etcd member{'s' if n > 1 else ''} cannot lose one: etcd needs a majority "
                   f"({majority} of {n}) to keep a leader lock, so one lost member stops every automatic failover; "
                   "declare 3 (or 5)")
    elif n % 2 == 0:
        out.append(f"dcs.regions: {n} etcd members survive no more losses than {n - 1} (a majority is {majority} of "
                   f"{n}), and a partition into two halves leaves neither with a majority; declare an odd number")
    return out


def _dcs_name_problems(topo: Topology) -> list[str]:
    nodes = set(topo.node_names())
    return [f"{f'dcs.regions.{i}' if topo.dcs else 'dcs'}: the etcd member '{member.name}' takes the name of a node; "
            "rename the node" for i, member in enumerate(topo.dcs_members()) if member.name in nodes]

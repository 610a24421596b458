"""A request for a new logical replication channel, checked against the file: pure, no Docker.

``read_intent`` resolves what the user typed (``AddRequest``) into an ``Intent``: the subscriber
and publisher nodes (each its cluster's current primary), the publication to use, extend or
create, the databases and the subscription's name. A refusal is an ``InputError``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pgtopo.errors import InputError
from pgtopo.model import reserved
from pgtopo.model.rowfilter import row_filter_problem
from pgtopo.model.topology import PublishedTable, Topology, _check_identifier


def _ident(option: str, value: str) -> str:
    try:
        return _check_identifier(value)
    except ValueError as exc:
        raise InputError(f"{option}: {exc}") from None


@dataclass(frozen=True)
class AddRequest:
    """What the user asked for, as typed (``row_filters`` 'table:expr', ``columns`` 'table:a,b')."""

    subscriber: str
    publication: str | None = None
    publisher: str | None = None
    tables: tuple[str, ...] = ()
    row_filters: tuple[str, ...] = ()
    columns: tuple[str, ...] = ()
    database: str | None = None
    name: str | None = None
    copy_data: bool = True


@dataclass(frozen=True)
class Intent:
    """The request resolved against the file: nodes, clusters, databases, names."""

    subscriber: str
    subscriber_cluster: str
    publisher: str
    publisher_cluster: str
    publication: str
    mode: Literal["use", "extend", "create"]
    new_tables: tuple[PublishedTable, ...]
    publisher_db: str
    subscriber_db: str
    name: str
    copy_data: bool
    failover: bool | None  # None: PostgreSQL before 17 has no failover slots


def default_name(publication: str, subscriber: str) -> str:
    stem = publication[: -len("_pub")] if publication.endswith("_pub") and len(publication) > 4 else publication
    return f"{stem}_{subscriber.replace('-', '_')}_sub"


def _split(option: str, raw: str, *, tables: list[str]) -> tuple[str, str]:
    table, sep, rest = raw.partition(":")
    table = table.strip()
    if not sep or not table or not rest.strip():
        raise InputError(f"{option}: '{raw}' is not TABLE:VALUE")
    if table not in tables:
        raise InputError(f"{option}: table '{table}' is not in --tables ({', '.join(tables)})")
    return table, rest.strip()


def _requested_tables(req: AddRequest) -> list[PublishedTable]:
    names = [t.strip() for raw in req.tables for t in raw.split(",") if t.strip()]
    if not names and (req.row_filters or req.columns):
        raise InputError("--row-filter and --columns apply to --tables")
    for t in names:
        _ident("--tables", t)
    dupes = sorted({t for t in names if names.count(t) > 1})
    if dupes:
        raise InputError(f"--tables: '{dupes[0]}' is listed twice")
    where: dict[str, str] = {}
    for raw in req.row_filters:
        table, expr = _split("--row-filter", raw, tables=names)
        if table in where:
            raise InputError(f"--row-filter: table '{table}' has two row filters")
        problem = row_filter_problem(expr)
        if problem:
            raise InputError(f"--row-filter: table '{table}': {problem}")
        where[table] = expr
    cols: dict[str, list[str]] = {}
    for raw in req.columns:
        table, rest = _split("--columns", raw, tables=names)
        if table in cols:
            raise InputError(f"--columns: table '{table}' has two column lists")
        cols[table] = [_ident("--columns", c.strip()) for c in rest.split(",") if c.strip()]
    return [PublishedTable(name=t, where=where.get(t), columns=cols.get(t)) for t in names]


def _node(topo: Topology, option: str, name: str) -> str:
    if name not in topo.node_names():
        raise InputError(f"{option}: unknown node '{name}' (known: {', '.join(topo.node_names())})")
    return name


def _primary(option: str, node: str, *, cluster: str, primaries: Mapping[str, str], why: str) -> None:
    if primaries[cluster] != node:
        raise InputError(f"{option}: {node} is not the primary of cluster '{cluster}' ({primaries[cluster]} is): {why}")


def read_intent(topo: Topology, req: AddRequest, *, primaries: Mapping[str, str], path: Path) -> Intent:
    """Every check that needs only the file and the recorded primaries (no Docker)."""
    tables = _requested_tables(req)
    if not tables and not req.publication:
        raise InputError("give --publication NAME, or --publisher NODE and --tables T1,T2")
    if tables and not req.publisher:
        raise InputError("--tables needs --publisher NODE: the primary that publishes them")
    sub_node = _node(topo, "--subscriber", req.subscriber)
    sub_cluster = topo.cluster_of(sub_node)
    if req.publication is not None:
        _ident("--publication", req.publication)
    if req.publisher is not None:
        pub_node = _node(topo, "--publisher", req.publisher)
        pub_cluster = topo.cluster_of(pub_node)
    else:
        assert req.publication is not None
        owners = [c for c, cl in topo.clusters.items() if req.publication in cl.publications]
        if not owners:
            raise InputError(f"--publication: unknown publication '{req.publication}' (no cluster in {path} has it)")
        if len(owners) > 1:
            raise InputError(f"--publication: clusters {', '.join(owners)} all have a publication "
                             f"'{req.publication}': name the publisher with --publisher")
        pub_cluster = owners[0]
        pub_node = primaries[pub_cluster]
    if sub_cluster == pub_cluster:
        raise InputError(f"--subscriber: {sub_node} is in cluster '{sub_cluster}', the publisher's own cluster: "
                         "a cluster cannot subscribe to itself")
    _primary("--subscriber", sub_node, cluster=sub_cluster, primaries=primaries,
             why="subscriptions live on a cluster's primary")
    _primary("--publisher", pub_node, cluster=pub_cluster, primaries=primaries,
             why="publications live on a cluster's primary")

    pcl = topo.clusters[pub_cluster]
    publication = req.publication or f"{tables[0].name}_pub"
    _ident("--publication", publication)
    spec = pcl.publications.get(publication)
    mode: Literal["use", "extend", "create"] = "use" if not tables else ("extend" if spec else "create")
    if mode == "use" and spec is None:
        raise InputError(f"--publication: unknown publication '{publication}' in cluster '{pub_cluster}' "
                         f"(known: {', '.join(pcl.publications) or 'none'})")
    if spec is not None:
        publisher_db = spec.database
    elif req.database is not None:
        publisher_db = _ident("--database", req.database)
    elif len(pcl.databases) == 1:
        publisher_db = next(iter(pcl.databases))
    else:
        raise InputError(f"--database: cluster '{pub_cluster}' has {len(pcl.databases)} databases: name one")
    if publisher_db not in pcl.databases:
        raise InputError(f"--database: cluster '{pub_cluster}' has no database '{publisher_db}' in {path}")
    subscriber_db = _ident("--database", req.database) if req.database else publisher_db
    if subscriber_db not in topo.clusters[sub_cluster].databases:
        raise InputError(f"--database: cluster '{sub_cluster}' has no database '{subscriber_db}' in {path} "
                         f"(known: {', '.join(topo.clusters[sub_cluster].databases) or 'none'})")
    if mode == "extend":
        assert spec is not None
        if spec.all_tables:
            raise InputError(f"--tables: publication '{publication}' of cluster '{pub_cluster}' already publishes "
                             "all tables")
        have = {t.name for t in spec.table_list()}
        for t in tables:
            if t.name in have and (t.where is not None or t.columns is not None):
                raise InputError(f"--tables: table '{t.name}' is already in publication '{publication}'; its row "
                                 "filter and column list stay as they are")
        tables = [t for t in tables if t.name not in have]
        users = [f"{s} (cluster {c})" for c, cl in topo.clusters.items() for s, sub in cl.subscriptions.items()
                 if sub.publisher == pub_cluster and sub.publication == publication]
        if tables and users:
            # Their subscribers would not receive the new tables before a REFRESH PUBLICATION, and
            # the file would then promise tables their databases may not have.
            raise InputError(f"--publication: '{publication}' already feeds {', '.join(users)}; adding tables would "
                             "change what they receive: publish the tables in a new publication")
        if not tables:
            mode = "use"

    name = _ident("--name", req.name) if req.name else default_name(publication, sub_node)
    if not req.name:
        _ident("--name (default)", name)
    owner = reserved.slot_owner(topo, name)
    if owner is not None:
        raise InputError(f"--name{'' if req.name else ' (default)'}: {reserved.slot_clash(name, owner)}")
    for c, cl in topo.clusters.items():
        if name in cl.subscriptions:
            raise InputError(f"--name: subscription '{name}' already exists in {path} (cluster '{c}')")
    failover = None
    if topo.postgres.version >= 17:
        failover = len(pcl.nodes) > 1  # a failover slot only matters if a standby can take over
    return Intent(subscriber=sub_node, subscriber_cluster=sub_cluster, publisher=pub_node, publisher_cluster=pub_cluster,
                  publication=publication, mode=mode, new_tables=tuple(tables), publisher_db=publisher_db,
                  subscriber_db=subscriber_db, name=name, copy_data=req.copy_data, failover=failover)

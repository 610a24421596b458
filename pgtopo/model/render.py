"""Render every node's postgresql.conf, pg_hba.conf and SQL: the exact files ``up`` uses.

Pure and deterministic: the same topology gives byte-identical files. SQL identifiers and
literals are quoted by psycopg's ``sql`` module; templates only lay statements out.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from psycopg import sql

from pgtopo.errors import InputError
from pgtopo.model import patroni
from pgtopo.model.files import FileRefused
from pgtopo.model.rowfilter import row_filter_problem
from pgtopo.model.schema_file import read_schema
from pgtopo.model.topology import (
    PG_PORT,
    PROBE_PUBLICATION,
    PROBE_SCHEMA,
    DcsMember,
    PublishedTable,
    Topology,
    endpoint,
    slot_name,
)

if TYPE_CHECKING:
    import jinja2


def _templates() -> Path:
    # A checkout (editable install) has templates/ beside the package; a wheel has it inside.
    package = Path(__file__).resolve().parents[1]
    inside = package / "templates"
    return inside if (inside / "postgresql.conf.j2").exists() else package.parent / "templates"


TEMPLATES = _templates()
CONF_DIR = "/etc/pgtopo"
PASSFILE = f"{CONF_DIR}/pgpass"
PROBE_TABLE = "probe"
PROBE = sql.Identifier(PROBE_SCHEMA, PROBE_TABLE)
ROLES = ("pgtopo", "replicator", "app")
PGTOPO_SCRAM_ITERATIONS = 64  # for the pgtopo role's random password only: see init_sql


def _env() -> jinja2.Environment:
    import jinja2  # here, not at the top: commands that render nothing (status, failover) skip its 60 ms import

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )


def q(stmt: sql.Composable) -> str:
    """A composed statement as text; identifiers and literals quoted by psycopg."""
    return stmt.as_string(None)


def conninfo(*, host: str, port: int | str, user: str, application_name: str, dbname: str) -> str:
    """A libpq connection string with no password (the passfile supplies it)."""
    return (
        f"host={host} port={port} user={user} dbname={dbname} application_name={application_name} "
        f"passfile={PASSFILE} connect_timeout=5 keepalives_idle=5 keepalives_interval=2 keepalives_count=3"
    )


def multi_host_conninfo(topo: Topology, *, cluster: str, from_region: str, application_name: str,
                        dbname: str) -> str:
    """Every node of a Patroni cluster, the writable one chosen at each connection: a failover
    Patroni makes on its own keeps a subscription going with nobody re-pointing it."""
    eps = [endpoint(topo, from_region=from_region, node=n) for n in topo.clusters[cluster].nodes]
    return conninfo(host=",".join(e.host for e in eps), port=",".join(str(e.port) for e in eps), user="replicator",
                    application_name=application_name, dbname=dbname) + " target_session_attrs=read-write"


def _conf_value(value: str | int | float | bool) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, int | float):
        return str(value)
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def synchronous_standby_names(topo: Topology, cluster: str) -> str:
    sync = topo.clusters[cluster].synchronous
    if sync is None:
        return ""
    names = ", ".join(f'"{n}"' for n in sync.standbys)
    return f"{sync.method.upper()} {sync.count} ({names})"


def publishes(topo: Topology, cluster: str) -> bool:
    return bool(topo.clusters[cluster].publications)


def failover_slot_standbys(topo: Topology, cluster: str) -> list[str]:
    """Direct standbys of the primary that sync failover slots (PostgreSQL 17)."""
    cl = topo.clusters[cluster]
    if topo.postgres.version < 17 or not publishes(topo, cluster):
        return []
    return [n for n, node in cl.nodes.items() if node.upstream == cl.primary_name]


def subscription_failover(topo: Topology, cluster: str, sub_name: str) -> bool:
    """Failover slot when asked, or by default on 17 when the publisher has replicas."""
    sub = topo.clusters[cluster].subscriptions[sub_name]
    if sub.failover is not None:
        return sub.failover
    return topo.postgres.version >= 17 and len(topo.clusters[sub.publisher].nodes) > 1


def carries_probe(topo: Topology, *, cluster: str, sub_name: str) -> bool:
    """Whether a subscription also subscribes to ``pgtopo_probe``: only the first one between
    the same two databases does. A second would receive every probe row again and stop at the
    duplicate key on ``pgtopo.probe`` (seen on 17), stalling its own tables with it."""
    cl = topo.clusters[cluster]

    def databases(name: str) -> tuple[str, str, str]:
        sub = cl.subscriptions[name]
        pub_db = topo.clusters[sub.publisher].publications[sub.publication].database
        return sub.publisher, pub_db, sub.database or pub_db

    mine = databases(sub_name)
    return next(n for n in cl.subscriptions if databases(n) == mine) == sub_name


@dataclass(frozen=True)
class NodeFiles:
    node: str
    files: dict[str, str]


def _common(topo: Topology, source: str, cluster: str, node: str) -> dict[str, object]:
    return {"source": source, "topology": topo.name, "cluster": cluster, "node": node,
            "region": topo.node(node).region}


def postgresql_conf(topo: Topology, *, cluster: str, node: str, source: str) -> str:
    n = topo.node(node)
    cl = topo.clusters[cluster]
    is_primary = n.role == "primary"
    primary_conninfo = ""
    if n.upstream:
        ep = endpoint(topo, from_region=n.region, node=n.upstream)
        primary_conninfo = conninfo(host=ep.host, port=ep.port, user="replicator", application_name=node,
                                    dbname="postgres")
    role = "primary" if is_primary else (
        f"replica of {n.upstream}" + (" (cascading)" if n.upstream != cl.primary_name else ""))
    slot_standbys = failover_slot_standbys(topo, cluster)
    return _env().get_template("postgresql.conf.j2").render(
        **_common(topo, source, cluster, node),
        role_description=role,
        port=PG_PORT,
        version=topo.postgres.version,
        wal_level="logical" if publishes(topo, cluster) else "replica",
        synchronous_standby_names=synchronous_standby_names(topo, cluster) if is_primary else "",
        sync_replication_slots=node in slot_standbys,
        synchronized_standby_slots=", ".join(slot_name(s) for s in slot_standbys) if is_primary else "",
        primary_conninfo=primary_conninfo,
        primary_slot_name=slot_name(node),
        settings=sorted((k, _conf_value(v)) for k, v in n.settings.items()),
    )


def pg_hba_conf(topo: Topology, *, cluster: str, node: str, source: str) -> str:
    return _env().get_template("pg_hba.conf.j2").render(**_common(topo, source, cluster, node))


def _create_missing(create: sql.Composable, *, catalog: str, column: str, name: str) -> str:
    """A query for psql's ``\\gexec``: it returns ``create`` (run next) only when ``name`` is missing."""
    return q(sql.SQL("SELECT {} WHERE NOT EXISTS (SELECT FROM pg_catalog.{} WHERE {} = {})").format(
        sql.Literal(q(create)), sql.Identifier(catalog), sql.Identifier(column), sql.Literal(name)))


def init_sql(topo: Topology, *, cluster: str, topo_path: Path, source: str) -> str:
    """The primary's init.sql, safe to run again (see the header of templates/init.sql.j2)."""
    cl = topo.clusters[cluster]
    role_creates = [_create_missing(sql.SQL("CREATE ROLE {}").format(sql.Identifier(r)), catalog="pg_roles",
                                    column="rolname", name=r) for r in ROLES]
    # pgtopo's own role logs in on every command, to every node it looks at: the SCRAM client's
    # PBKDF2 (4096 iterations by default) was most of a connection's CPU on the host (about 3 of 4 ms:
    # 50 connections for a `status` of 30 nodes). Iterations slow down guessing a password from its
    # stored verifier; the lab's password is 32 random characters (192 bits), which no guessing
    # reaches either way, so pgtopo's `up` asks for a verifier made with few iterations by setting
    # PGTOPO_SCRAM_ITERATIONS (PostgreSQL 16 and later). Run elsewhere, with a password someone
    # chose, the file keeps PostgreSQL's default; the app's and the replicator's always do.
    few = topo.postgres.version >= 16
    roles = [
        *([r"\getenv pgtopo_scram_iterations PGTOPO_SCRAM_ITERATIONS", r"\if :{?pgtopo_scram_iterations}",
           "SET scram_iterations = :pgtopo_scram_iterations", r"\endif"] if few else []),
        q(sql.SQL("ALTER ROLE {} WITH LOGIN SUPERUSER PASSWORD :'pgtopo_password'").format(sql.Identifier("pgtopo"))),
        *([q(sql.SQL("RESET scram_iterations"))] if few else []),
        q(sql.SQL("ALTER ROLE {} WITH LOGIN REPLICATION PASSWORD :'replicator_password'").format(
            sql.Identifier("replicator"))),
        q(sql.SQL("ALTER ROLE {} WITH LOGIN PASSWORD :'app_password'").format(sql.Identifier("app"))),
        # Schema "pgtopo" would otherwise come first on the pgtopo role's search_path ("$user").
        q(sql.SQL("ALTER ROLE {} SET search_path = public").format(sql.Identifier("pgtopo"))),
    ]
    dbs = []
    probe = PROBE
    for dname, db in cl.databases.items():
        ident = sql.Identifier(dname)
        setup = [
            q(sql.SQL("CREATE SCHEMA {} AUTHORIZATION {}").format(sql.Identifier(PROBE_SCHEMA), sql.Identifier("pgtopo"))),
            q(sql.SQL("COMMENT ON SCHEMA {} IS {}").format(
                sql.Identifier(PROBE_SCHEMA), sql.Literal("owned by pgtopo: probe rows for `pgtopo verify`"))),
            q(sql.SQL("CREATE TABLE {} (id bigint PRIMARY KEY, origin text NOT NULL, "
                      "sent_at timestamptz NOT NULL DEFAULT clock_timestamp())").format(probe)),
            q(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.Identifier(PROBE_SCHEMA), sql.Identifier("replicator"))),
            q(sql.SQL("GRANT SELECT ON {} TO {}").format(probe, sql.Identifier("replicator"))),
        ]
        grants = [q(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {}").format(sql.Identifier("replicator")))]
        pubs = []
        has_pub = False
        for pname, pub in cl.publications.items():
            if pub.database != dname:
                continue
            has_pub = True
            pubs.append(q(publication_statement(pname, pub.all_tables, pub.table_list())))
        if has_pub:
            pubs.append(q(sql.SQL("CREATE PUBLICATION {} FOR TABLE {}").format(
                sql.Identifier(PROBE_PUBLICATION), probe)))
        try:
            schema = read_schema(topo_path, db)
        except FileRefused as exc:
            raise InputError(f"clusters.{cluster}.databases.{dname}.schema_file: cannot read '{db.schema_file}' "
                             f"({exc.message})") from None
        dbs.append({
            "name": dname,
            "create": _create_missing(sql.SQL("CREATE DATABASE {} OWNER {}").format(ident, sql.Identifier("app")),
                                      catalog="pg_database", column="datname", name=dname),
            "connect": dname,
            # Schema "pgtopo" is created in the same transaction as everything else in this
            # database: it exists exactly when that transaction committed.
            "pending": q(sql.SQL("SELECT NOT EXISTS (SELECT FROM pg_catalog.pg_namespace WHERE nspname = {}) "
                                 "AS pgtopo_setup").format(sql.Literal(PROBE_SCHEMA))),
            "setup": setup,
            "schema": schema_block(schema.strip()) if schema and schema.strip() else "",
            "grants": grants,
            "publications": pubs,
        })
    return _env().get_template("init.sql.j2").render(
        **_common(topo, source, cluster, cl.primary_name), role_creates=role_creates, roles=roles, databases=dbs)


def schema_block(schema: str) -> str:
    """The user's schema as one string the server executes: psql never reads it.

    psql would act on a meta-command (``\\!`` runs a shell) or substitute a ``:variable`` (the
    passwords are variables in init.sql) anywhere in text it reads. Inside a dollar quote it
    does neither; the server runs the statements in order, in one transaction.
    """
    outer, inner = (_dollar_tag(schema, stem) for stem in ("pgtopo_do", "pgtopo_schema"))
    return f"DO {outer} BEGIN EXECUTE {inner}\n{schema}\n{inner}; END {outer};"


def _dollar_tag(text: str, stem: str) -> str:
    """``$stem$``, or ``$stem_N$`` with the first N the text does not contain."""
    tag, n = f"${stem}$", 0
    while tag in text:
        n += 1
        tag = f"${stem}_{n}$"
    return tag


def publication_statement(name: str, all_tables: bool, tables: list[PublishedTable]) -> sql.Composed:
    if all_tables:
        return sql.SQL("CREATE PUBLICATION {} FOR ALL TABLES").format(sql.Identifier(name))
    parts = []
    for t in tables:
        part: sql.Composable = sql.Identifier(t.name)
        if t.columns:
            part = sql.SQL("{} ({})").format(part, sql.SQL(", ").join(sql.Identifier(c) for c in t.columns))
        if t.where:
            # A row filter is an SQL expression by nature, written by the file's author; the
            # model refused anything but one expression, and this stays true on every path.
            problem = row_filter_problem(t.where)
            if problem:
                raise InputError(f"row filter of table '{t.name}': {problem}")
            part = sql.SQL("{} WHERE ({})").format(part, sql.SQL(t.where))
        parts.append(part)
    return sql.SQL("CREATE PUBLICATION {} FOR TABLE {}").format(sql.Identifier(name), sql.SQL(", ").join(parts))


def create_physical_slot(slot: str, *, reserve_wal: bool = False) -> sql.Composed:
    """The one statement that creates a replica's physical slot; does nothing if it exists.

    ``reserve_wal``: keep WAL from now on (a slot created for a replica that is re-pointed
    while running); without it WAL is kept from the replica's first connection (a clone).
    """
    args = sql.SQL("{}, true").format(sql.Literal(slot)) if reserve_wal else sql.Literal(slot)
    return sql.SQL("SELECT pg_create_physical_replication_slot({}) WHERE NOT EXISTS "
                   "(SELECT 1 FROM pg_replication_slots WHERE slot_name = {})").format(args, sql.Literal(slot))


def copy_physical_slot(slot: str, *, source: str) -> sql.Composed:
    """Create ``slot`` keeping WAL from where ``source`` keeps it (``reserve_wal`` from now if there is
    no ``source``); does nothing if ``slot`` exists."""
    return sql.SQL("SELECT (CASE WHEN EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = {src}) "
                   "THEN pg_copy_physical_replication_slot({src}, {dst}) ELSE pg_create_physical_replication_slot("
                   "{dst}, true) END) WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = {dst})"
                   ).format(src=sql.Literal(source), dst=sql.Literal(slot))


def drop_idle_slot(slot: str, *, standby_only: bool = False) -> sql.Composed:
    """Drop ``slot`` if it exists and nothing streams from it (``standby_only``: only on a standby)."""
    return sql.SQL("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = {} "
                   "AND NOT active" + (" AND pg_is_in_recovery()" if standby_only else "")).format(sql.Literal(slot))


def slots_sql(topo: Topology, *, cluster: str, node: str, source: str) -> str | None:
    downstream = [n for n, nd in topo.clusters[cluster].nodes.items() if nd.upstream == node]
    if not downstream:
        return None
    stmts = [q(create_physical_slot(slot_name(d))) for d in downstream]
    return _env().get_template("slots.sql.j2").render(**_common(topo, source, cluster, node), slots=stmts)


def subscription_publications(topo: Topology, *, cluster: str, sub_name: str) -> list[str]:
    """The publications a subscription subscribes to: its own, and pgtopo's probe publication
    when ``carries_probe`` says so. Its initial copy copies every table of these."""
    pubs = [topo.clusters[cluster].subscriptions[sub_name].publication]
    if carries_probe(topo, cluster=cluster, sub_name=sub_name):
        pubs.append(PROBE_PUBLICATION)
    return pubs


def subscription_statement(topo: Topology, *, cluster: str, sub_name: str, publisher_node: str,
                           slot_ready: bool = False) -> str:
    """The subscription's CREATE SUBSCRIPTION, as the file describes it.

    ``slot_ready``: not what the file renders, but what `up` runs when it created the
    subscription's slot (named as the subscription) on the publisher itself and found every
    table of its publications empty in that slot's snapshot: nothing to copy, so
    ``copy_data = false`` and the subscription uses that slot (``create_slot = false``).
    """
    cl = topo.clusters[cluster]
    sub = cl.subscriptions[sub_name]
    pub = topo.clusters[sub.publisher].publications[sub.publication]
    subscriber_region = topo.node(cl.primary_name).region
    if topo.clusters[sub.publisher].ha == "patroni":
        info = multi_host_conninfo(topo, cluster=sub.publisher, from_region=subscriber_region,
                                   application_name=sub_name, dbname=pub.database)
    else:
        ep = endpoint(topo, from_region=subscriber_region, node=publisher_node)
        info = conninfo(host=ep.host, port=ep.port, user="replicator", application_name=sub_name,
                        dbname=pub.database)
    copy_data = sub.copy_data and not slot_ready
    opts = [sql.SQL("copy_data = {}").format(sql.SQL("true" if copy_data else "false"))]
    if topo.clusters[sub.publisher].ha == "patroni" or slot_ready:
        # Patroni's: the slot is one of Patroni's permanent slots (kept on every member through
        # a failover): Patroni creates it on the leader, the subscription uses it.
        opts.append(sql.Composed([sql.SQL("create_slot = false")]))
    if slot_ready:
        opts.append(sql.SQL("slot_name = {}").format(sql.Literal(sub_name)))
    if topo.postgres.version >= 17:
        failover = subscription_failover(topo, cluster, sub_name)
        opts.append(sql.SQL("failover = {}").format(sql.SQL("true" if failover else "false")))
    pubs = [sql.Identifier(p) for p in subscription_publications(topo, cluster=cluster, sub_name=sub_name)]
    return q(sql.SQL("CREATE SUBSCRIPTION {} CONNECTION {} PUBLICATION {} WITH ({})").format(
        sql.Identifier(sub_name), sql.Literal(info), sql.SQL(", ").join(pubs), sql.SQL(", ").join(opts)))


def subscriptions_sql(topo: Topology, *, cluster: str, source: str,
                      publisher_nodes: dict[str, str] | None = None) -> str | None:
    """``publisher_nodes`` maps a publishing cluster to its current primary (after failovers)."""
    cl = topo.clusters[cluster]
    if not cl.subscriptions:
        return None
    subs = []
    for sname, sub in cl.subscriptions.items():
        pnode = (publisher_nodes or {}).get(sub.publisher, topo.clusters[sub.publisher].primary_name)
        pub = topo.clusters[sub.publisher].publications[sub.publication]
        subs.append({
            "name": sname, "publication": sub.publication, "publisher": sub.publisher,
            "publisher_node": pnode, "connect": sub.database or pub.database,
            "create": subscription_statement(topo, cluster=cluster, sub_name=sname, publisher_node=pnode),
        })
    return _env().get_template("subscriptions.sql.j2").render(
        **_common(topo, source, cluster, cl.primary_name), subscriptions=subs)


def patroni_yml(topo: Topology, *, node: str, source: str,
                address: patroni.Address = patroni.production_address) -> str:
    """A Patroni cluster node's patroni.yml: the file a user takes to a production VM (``up``
    installs the lab's variant: ``address`` gives the relay's mesh ports)."""
    cluster = topo.cluster_of(node)
    confs = {n: postgresql_conf(topo, cluster=cluster, node=n, source=source) for n in topo.clusters[cluster].nodes}
    config = patroni.patroni_config(topo, node=node, conf=confs[node],
                                    hba=pg_hba_conf(topo, cluster=cluster, node=node, source=source), cluster_confs=confs,
                                    address=address)
    header = (
        f"# Generated by pgtopo from {source} (topology {topo.name}). Do not edit: re-render.\n"
        f"# Node {node}, cluster {cluster} (ha: patroni), region {topo.node(node).region}: Patroni's configuration.\n"
        "# No secret is written here: Patroni reads its passwords from its environment at run time\n"
        f"# ({', '.join(patroni.SECRET_VARIABLES)}).\n"
    )
    return header + patroni.to_yaml(config) + "\n"


def etcd_yml(topo: Topology, *, member: DcsMember, source: str,
             address: patroni.Address = patroni.production_address) -> str:
    header = (
        f"# Generated by pgtopo from {source} (topology {topo.name}). Do not edit: re-render.\n"
        f"# etcd member {member.name} in region {member.region}: the consensus that holds the Patroni leader locks.\n"
        "# Heartbeat near the largest round trip between members, election timeout ten heartbeats.\n"
    )
    return header + patroni.to_yaml(patroni.etcd_config(topo, member, address)) + "\n"


def render_node(topo: Topology, *, node: str, topo_path: Path) -> NodeFiles:
    source = topo_path.name
    cluster = topo.cluster_of(node)
    files = {
        "postgresql.conf": postgresql_conf(topo, cluster=cluster, node=node, source=source),
        "pg_hba.conf": pg_hba_conf(topo, cluster=cluster, node=node, source=source),
    }
    if topo.clusters[cluster].ha == "patroni":
        files["patroni.yml"] = patroni_yml(topo, node=node, source=source)
    if topo.node(node).role == "primary":
        files["init.sql"] = init_sql(topo, cluster=cluster, topo_path=topo_path, source=source)
        subs = subscriptions_sql(topo, cluster=cluster, source=source)
        if subs:
            files["subscriptions.sql"] = subs
    slots = slots_sql(topo, cluster=cluster, node=node, source=source)
    if slots:
        files["slots.sql"] = slots
    return NodeFiles(node=node, files=files)


def render_all(topo: Topology, *, topo_path: Path) -> list[NodeFiles]:
    nodes = [render_node(topo, node=n, topo_path=topo_path) for n in topo.node_names()]
    members = [NodeFiles(node=m.name, files={"etcd.conf.yml": etcd_yml(topo, member=m, source=topo_path.name)})
               for m in topo.dcs_members()]
    return nodes + members


def write(rendered: list[NodeFiles], out_dir: Path) -> list[Path]:
    written = []
    try:
        for nf in rendered:
            d = out_dir / nf.node
            d.mkdir(parents=True, exist_ok=True)
            for name, text in sorted(nf.files.items()):
                p = d / name
                p.write_text(text)
                written.append(p)
    except OSError as exc:
        raise InputError(f"--out {out_dir}: cannot write there ({exc.strerror}: {exc.filename})") from None
    return written

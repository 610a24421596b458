"""Add or remove one logical replication channel on a running topology, and record it in the file.

The order is the house pattern: check the request against the file (no Docker), read a frozen
snapshot of the publisher and the subscriber, decide the plan with pure functions, rehearse
every transactional statement inside a transaction that is rolled back, then act. A step that
fails undoes what this command created, in reverse order, before the error is reported.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import psycopg
from psycopg import sql

from pgtopo import connect, deploy, render, runtime, topofile, topology
from pgtopo.errors import InputError, OperationFailed, PgtopoError
from pgtopo.topology import PublishedTable, Topology, _check_identifier, endpoint, read_schema, schema_tables

Progress = Callable[[str, str], None]
Conn = psycopg.Connection[tuple[Any, ...]]
READY_TIMEOUT_S = 300.0
# The table sync worker retries a failed copy every wal_retrieve_retry_interval (1 s here):
# one error may be a dropped connection, the third in a row is not going to heal.
SYNC_ERROR_LIMIT = 3
# CREATE and DROP SUBSCRIPTION connect to the publisher, and that wait ignores connect_timeout:
# behind a blackhole partition (the relay accepts, nothing passes) it would never end.
# A statement timeout interrupts it (seen on 17).
STATEMENT_TIMEOUT = "30s"
DROP_TIMEOUT = "15s"
PROBE = sql.Identifier(render.PROBE_SCHEMA, render.PROBE_TABLE)


def _ident(option: str, value: str) -> str:
    try:
        return _check_identifier(value)
    except ValueError as exc:
        raise InputError(f"{option}: {exc}") from None


def _quiet(subject: str, message: str) -> None:
    return None


# -- the request, checked against the file ---------------------------------------------------------

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
    for c, cl in topo.clusters.items():
        if name in cl.subscriptions:
            raise InputError(f"--name: subscription '{name}' already exists in {path} (cluster '{c}')")
    failover = None
    if topo.postgres.version >= 17:
        failover = len(pcl.nodes) > 1  # a failover slot only matters if a standby can take over
    return Intent(subscriber=sub_node, subscriber_cluster=sub_cluster, publisher=pub_node, publisher_cluster=pub_cluster,
                  publication=publication, mode=mode, new_tables=tuple(tables), publisher_db=publisher_db,
                  subscriber_db=subscriber_db, name=name, copy_data=req.copy_data, failover=failover)


# -- the live snapshot ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Column:
    name: str
    type: str
    not_null: bool
    has_default: bool = False
    generated: bool = False


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...] = ()
    rows: int = 0
    replicator_reads: bool = True

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)


@dataclass(frozen=True)
class Snapshot:
    """What the publisher and the subscriber hold now, for the tables involved."""

    publisher_in_recovery: bool
    wal_level: str
    standby_slots: str
    publication: Mapping[str, tuple[str, ...]] | None  # "schema.table" or "table" -> published columns
    publisher_tables: Mapping[str, Table]
    probe_publication: bool
    publisher_probe_table: bool
    slot_exists: bool
    subscriber_in_recovery: bool
    subscriber_tables: Mapping[str, Table]
    subscription_exists: bool
    subscriber_probe_table: bool


_TABLES_SQL = """
SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, a.atthasdef,
       a.attgenerated <> '', array_position(i.indkey::int2[], a.attnum),
       has_table_privilege('replicator', c.oid, 'SELECT')
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
LEFT JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND c.relname = ANY(%s)
ORDER BY c.relname, a.attnum
"""


def _tables(conn: Conn, names: list[str], *, count_rows: bool) -> dict[str, Table]:
    rows: dict[str, list[tuple[Any, ...]]] = {}
    for r in conn.execute(_TABLES_SQL, (names,)).fetchall():
        rows.setdefault(r[0], []).append(r)
    out = {}
    for tname, cols in rows.items():
        pk = tuple(r[1] for r in sorted((r for r in cols if r[6] is not None), key=lambda r: r[6]))
        count = 0
        if count_rows:
            found = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(tname))).fetchone()
            count = int(found[0]) if found else 0
        out[tname] = Table(name=tname, primary_key=pk, rows=count, replicator_reads=bool(cols[0][7]),
                           columns=tuple(Column(name=r[1], type=r[2], not_null=r[3], has_default=r[4], generated=r[5])
                                         for r in cols))
    return out


def _one(conn: Conn, query: str, params: tuple[Any, ...] = ()) -> Any:
    row = conn.execute(query, params).fetchone()
    return row[0] if row else None


def read_snapshot(pub: Conn, sub: Conn, *, intent: Intent) -> Snapshot:
    published: dict[str, tuple[str, ...]] | None = None
    if _one(pub, "SELECT count(*) FROM pg_publication WHERE pubname = %s", (intent.publication,)):
        published = {}
        for schema, table, cols in pub.execute(
                "SELECT schemaname, tablename, attnames FROM pg_publication_tables WHERE pubname = %s",
                (intent.publication,)).fetchall():
            published[table if schema == "public" else f"{schema}.{table}"] = tuple(cols or ())
    names = sorted({*(published or {}), *(t.name for t in intent.new_tables)})
    return Snapshot(
        publisher_in_recovery=bool(_one(pub, "SELECT pg_is_in_recovery()")),
        wal_level=str(_one(pub, "SHOW wal_level")),
        standby_slots=str(_one(pub, "SHOW synchronized_standby_slots") or "") if intent.failover is not None else "",
        publication=published,
        publisher_tables=_tables(pub, names, count_rows=False),
        probe_publication=bool(_one(pub, "SELECT count(*) FROM pg_publication WHERE pubname = %s",
                                    (render.PROBE_PUBLICATION,))),
        publisher_probe_table=_one(pub, "SELECT to_regclass('pgtopo.probe') IS NOT NULL") is True,
        slot_exists=bool(_one(pub, "SELECT count(*) FROM pg_replication_slots WHERE slot_name = %s", (intent.name,))),
        subscriber_in_recovery=bool(_one(sub, "SELECT pg_is_in_recovery()")),
        subscriber_tables=_tables(sub, names, count_rows=True),
        subscription_exists=bool(_one(sub, "SELECT count(*) FROM pg_subscription WHERE subname = %s", (intent.name,))),
        subscriber_probe_table=_one(sub, "SELECT to_regclass('pgtopo.probe') IS NOT NULL") is True,
    )


# -- the plan (pure) --------------------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class Step:
    """One statement on one node, and the statement that undoes it."""

    node: str
    database: str
    what: str
    statement: str
    undo: str | None = None
    role: str | None = None  # run as this role (tables belong to app, as the file's schema makes them)
    transactional: bool = True
    subscription: str | None = None  # creates this subscription: undone by drop_subscription()


@dataclass
class AddPlan:
    intent: Intent
    publisher_steps: list[Step]
    checks: list[tuple[str, str]]  # (table, statement): must succeed once the publication includes it
    subscriber_steps: list[Step]
    tables: list[str]  # tables the subscription receives (schema public)
    rows_before: dict[str, int]
    new_text: str
    diff: str
    warnings: list[str] = field(default_factory=list)
    subscribe: Step | None = None
    probe: bool = True


def table_ddl(table: Table, columns: tuple[str, ...] | None = None) -> sql.Composed:
    """CREATE TABLE for a subscriber: the published columns, their types, NOT NULL, primary key.

    Defaults, identity, checks and foreign keys are left out on purpose: every value comes from
    the publisher, and a foreign key would need tables this subscriber may not receive.
    """
    cols = [c for c in table.columns if not c.generated and (columns is None or c.name in columns)]
    parts: list[sql.Composable] = []
    for c in cols:
        # format_type() prints a valid, already quoted type name: it is not an identifier to quote.
        parts.append(sql.SQL("    {} {}{}").format(sql.Identifier(c.name), sql.SQL(c.type),
                                                    sql.SQL(" NOT NULL" if c.not_null else "")))
    if table.primary_key and all(k in {c.name for c in cols} for k in table.primary_key):
        parts.append(sql.SQL("    PRIMARY KEY ({})").format(sql.SQL(", ").join(map(sql.Identifier, table.primary_key))))
    return sql.SQL("CREATE TABLE {} (\n{}\n)").format(sql.Identifier(table.name), sql.SQL(",\n").join(parts))


def incompatibility(pub_table: Table, sub_table: Table, *, columns: tuple[str, ...]) -> str | None:
    """Why ``sub_table`` cannot receive ``columns`` of ``pub_table``, or None."""
    for name in columns:
        pc = pub_table.column(name)
        sc = sub_table.column(name)
        if pc is None:
            continue
        if sc is None:
            return f"column '{name}' ({pc.type}) is missing"
        if sc.type != pc.type:
            return f"column '{name}' is {sc.type} there but {pc.type} on the publisher"
    for sc in sub_table.columns:
        if sc.name not in columns and sc.not_null and not sc.has_default and not sc.generated:
            return f"column '{sc.name}' is NOT NULL without a default and is not published"
    return None


def _published_columns(table: Table, listed: list[str] | None) -> tuple[str, ...]:
    return tuple(c.name for c in table.columns if not c.generated and (listed is None or c.name in listed))


def _publication_steps(intent: Intent, snap: Snapshot) -> list[Step]:
    node, db, pub = intent.publisher, intent.publisher_db, intent.publication
    steps: list[Step] = []
    for t in intent.new_tables:
        if not snap.publisher_tables[t.name].replicator_reads:
            steps.append(Step(
                node=node, database=db, what=f"let replicator read {t.name} (the initial copy reads it)",
                statement=render.q(sql.SQL("GRANT SELECT ON {} TO replicator").format(sql.Identifier(t.name))),
                undo=render.q(sql.SQL("REVOKE SELECT ON {} FROM replicator").format(sql.Identifier(t.name)))))
    if intent.mode == "create":
        steps.append(Step(node=node, database=db, what=f"create publication {pub}",
                          statement=render.q(render.publication_statement(pub, False, list(intent.new_tables))),
                          undo=render.q(sql.SQL("DROP PUBLICATION {}").format(sql.Identifier(pub)))))
    elif intent.mode == "extend":
        for t in intent.new_tables:
            one = render.publication_statement(pub, False, [t])
            # "CREATE PUBLICATION p FOR TABLE <spec>" -> "ALTER PUBLICATION p ADD TABLE <spec>"
            spec = render.q(one).split(" FOR TABLE ", 1)[1]
            steps.append(Step(
                node=node, database=db, what=f"add {t.name} to publication {pub}",
                statement=render.q(sql.SQL("ALTER PUBLICATION {} ADD TABLE ").format(sql.Identifier(pub))) + spec,
                undo=render.q(sql.SQL("ALTER PUBLICATION {} DROP TABLE {}").format(
                    sql.Identifier(pub), sql.Identifier(t.name)))))
    return steps


def _probe_steps(node: str, *, db: str, table: bool, publication: bool | None) -> list[Step]:
    """pgtopo.probe and the pgtopo_probe publication where missing (``publication`` None: not wanted)."""
    steps = []
    if not table:
        steps.append(Step(node=node, database=db, what="create pgtopo.probe (verify's probe rows)", statement="; ".join([
            render.q(sql.SQL("CREATE SCHEMA IF NOT EXISTS {} AUTHORIZATION pgtopo").format(sql.Identifier(render.PROBE_SCHEMA))),
            render.q(sql.SQL("CREATE TABLE {} (id bigint PRIMARY KEY, origin text NOT NULL, "
                             "sent_at timestamptz NOT NULL DEFAULT clock_timestamp())").format(PROBE)),
            render.q(sql.SQL("GRANT USAGE ON SCHEMA {} TO replicator").format(sql.Identifier(render.PROBE_SCHEMA))),
            render.q(sql.SQL("GRANT SELECT ON {} TO replicator").format(PROBE)),
        ]), undo=render.q(sql.SQL("DROP TABLE {}").format(PROBE))))
    if publication is False:
        steps.append(Step(node=node, database=db, what=f"create publication {render.PROBE_PUBLICATION}",
                          statement=render.q(sql.SQL("CREATE PUBLICATION {} FOR TABLE {}").format(
                              sql.Identifier(render.PROBE_PUBLICATION), PROBE)),
                          undo=render.q(sql.SQL("DROP PUBLICATION {}").format(sql.Identifier(render.PROBE_PUBLICATION)))))
    return steps


def decide(topo: Topology, *, intent: Intent, snap: Snapshot, path: Path, text: str,
           subscriber_schema: str | None) -> AddPlan:
    """Refuse, or plan every statement and the file edit. Pure: no I/O.

    ``subscriber_schema`` is the SQL the file gives the subscriber's database (None: none).
    """
    i = intent
    if snap.publisher_in_recovery:
        raise InputError(f"--publisher: {i.publisher} is in recovery (a standby), not a primary")
    if snap.subscriber_in_recovery:
        raise InputError(f"--subscriber: {i.subscriber} is in recovery (a standby), not a primary")
    if snap.wal_level != "logical":
        raise InputError(
            f"--publisher: {i.publisher} runs with wal_level = {snap.wal_level} (cluster '{i.publisher_cluster}' had no "
            "publication when it was created); logical replication needs wal_level = logical, which only a restart "
            "applies: add a publication to the cluster in the file and re-create it (pgtopo down, pgtopo up)")
    if snap.subscription_exists:
        raise InputError(f"--name: a subscription '{i.name}' already exists on {i.subscriber}")
    if snap.slot_exists:
        raise InputError(f"--name: a replication slot '{i.name}' already exists on {i.publisher}")
    if i.mode == "create" and snap.publication is not None:
        raise InputError(f"--publication: '{i.publication}' already exists on {i.publisher} but not in {path}: "
                         "add it to the file, or choose another name")
    if i.mode != "create" and snap.publication is None:
        raise InputError(f"--publication: '{i.publication}' is in {path} but not on {i.publisher} (run pgtopo up)")
    for t in i.new_tables:
        table = snap.publisher_tables.get(t.name)
        if table is None:
            raise InputError(f"--tables: unknown table '{t.name}' in database '{i.publisher_db}' on {i.publisher}")
        for col in t.columns or []:
            if table.column(col) is None:
                raise InputError(f"--columns: table '{t.name}' on {i.publisher} has no column '{col}'")

    # What the subscription receives: the publication's tables after this command.
    receives: dict[str, tuple[str, ...]] = {}
    for key, cols in (snap.publication or {}).items():
        if "." in key:
            if key.startswith(f"{render.PROBE_SCHEMA}."):
                continue
            raise InputError(f"--publication: '{i.publication}' publishes {key}; only tables in schema public "
                             "can be subscribed by pgtopo")
        receives[key] = cols
    for t in i.new_tables:
        receives[t.name] = _published_columns(snap.publisher_tables[t.name], t.columns)
    if not receives:
        raise InputError(f"--publication: '{i.publication}' on {i.publisher} publishes no table")

    doc = topofile.Document(text, source=str(path))
    sub_steps = _probe_steps(i.subscriber, db=i.subscriber_db, table=snap.subscriber_probe_table, publication=None)
    in_schema = schema_tables(subscriber_schema or "")
    for tname, cols in receives.items():
        pub_table = snap.publisher_tables.get(tname)
        if pub_table is None:
            raise InputError(f"--publication: '{i.publication}' publishes '{tname}', which is not a plain table in "
                             f"schema public on {i.publisher}")
        existing = snap.subscriber_tables.get(tname)
        ddl = render.q(table_ddl(pub_table, cols))
        if existing is not None:
            why = incompatibility(pub_table, existing, columns=cols)
            if why:
                raise InputError(f"table '{tname}' on {i.subscriber} cannot receive publication '{i.publication}' "
                                 f"of {i.publisher}: {why}")
        else:
            # Owned by app and readable by replicator, as the file's schema and init.sql make tables.
            grant = render.q(sql.SQL("GRANT SELECT ON {} TO replicator").format(sql.Identifier(tname)))
            sub_steps.append(Step(node=i.subscriber, database=i.subscriber_db, what=f"create table {tname}",
                                  statement=f"{ddl};\n{grant}", role="app",
                                  undo=render.q(sql.SQL("DROP TABLE {}").format(sql.Identifier(tname)))))
        if tname not in in_schema:
            # The file must create the table too, or a fresh `up` could not create this subscription.
            topofile.append_schema(doc, cluster=i.subscriber_cluster, database=i.subscriber_db, ddl=ddl + ";")

    pub_steps = _probe_steps(i.publisher, db=i.publisher_db, table=snap.publisher_probe_table,
                             publication=snap.probe_publication) + _publication_steps(i, snap)
    checks = [(t.name, render.q(sql.SQL("EXPLAIN DELETE FROM {}").format(sql.Identifier(t.name)))) for t in i.new_tables]

    if i.mode == "create":
        topofile.add_publication(doc, cluster=i.publisher_cluster, name=i.publication, database=i.publisher_db,
                                 tables=list(i.new_tables))
    elif i.mode == "extend" and i.new_tables:
        topofile.add_publication_tables(doc, cluster=i.publisher_cluster, publication=i.publication,
                                        tables=list(i.new_tables))
    topofile.add_subscription(doc, cluster=i.subscriber_cluster, name=i.name, publisher=i.publisher_cluster,
                              publication=i.publication,
                              database=i.subscriber_db if i.subscriber_db != i.publisher_db else None,
                              copy_data=i.copy_data, failover=i.failover)
    new_text = doc.text()
    warnings = []
    if i.failover and not snap.standby_slots:
        warnings.append(f"{i.publisher} has no synchronized_standby_slots: its standbys may lag behind the failover "
                        f"slot '{i.name}', which a failover would then lose")
    return AddPlan(intent=i, publisher_steps=pub_steps, checks=checks, subscriber_steps=sub_steps,
                   tables=sorted(receives), rows_before={t: snap.subscriber_tables[t].rows for t in receives
                                                         if t in snap.subscriber_tables},
                   new_text=new_text, diff=topofile.unified_diff(text, new_text, path=path), warnings=warnings)


def subscription_step(topo: Topology, intent: Intent, *, probe: bool) -> Step:
    """CREATE SUBSCRIPTION as ``up`` writes it, from the subscriber's region to the live publisher."""
    i = intent
    ep = endpoint(topo, from_region=topo.node(i.subscriber).region, node=i.publisher)
    info = render.conninfo(host=ep.host, port=ep.port, user="replicator", application_name=i.name,
                           dbname=i.publisher_db)
    pubs = [sql.Identifier(i.publication)] + ([sql.Identifier(render.PROBE_PUBLICATION)] if probe else [])
    opts = [sql.SQL("copy_data = {}").format(sql.SQL("true" if i.copy_data else "false"))]
    if i.failover is not None:
        opts.append(sql.SQL("failover = {}").format(sql.SQL("true" if i.failover else "false")))
    stmt = sql.SQL("CREATE SUBSCRIPTION {} CONNECTION {} PUBLICATION {} WITH ({})").format(
        sql.Identifier(i.name), sql.Literal(info), sql.SQL(", ").join(pubs), sql.SQL(", ").join(opts))
    return Step(node=i.subscriber, database=i.subscriber_db, what=f"create subscription {i.name}",
                statement=render.q(stmt), undo=render.q(sql.SQL("DROP SUBSCRIPTION {}").format(sql.Identifier(i.name))),
                transactional=False, subscription=i.name)


# -- acting -----------------------------------------------------------------------------------------

def _message(exc: psycopg.Error) -> str:
    diag = exc.diag
    text = diag.message_primary or str(exc).strip().splitlines()[0]
    return f"{text} ({diag.message_detail})" if diag.message_detail else text


def _run(conn: Conn, step: Step) -> None:
    if not step.transactional:
        conn.execute(step.statement.encode())
        return
    with conn.transaction():
        if step.role:
            conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(step.role)))
        conn.execute(step.statement.encode())


def rehearse(pub: Conn, sub: Conn, *, plan: AddPlan) -> None:
    """Run the transactional steps and checks inside transactions that are rolled back."""
    for conn, steps, checks in ((pub, plan.publisher_steps, plan.checks), (sub, plan.subscriber_steps, [])):
        current = "statement"
        try:
            with conn.transaction(force_rollback=True):
                for step in steps:
                    current = step.what
                    if step.role:
                        conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(step.role)))
                    conn.execute(step.statement.encode())
                    if step.role:
                        conn.execute("RESET ROLE")
                for table, check in checks:
                    current = f"check {table}"
                    try:
                        conn.execute(check.encode())
                    except psycopg.Error as exc:
                        raise InputError(f"publishing table '{table}' in '{plan.intent.publication}' would make UPDATE "
                                         f"and DELETE on it fail on {plan.intent.publisher}: {_message(exc)}") from None
        except psycopg.Error as exc:
            node = plan.intent.publisher if conn is pub else plan.intent.subscriber
            raise InputError(f"{node}: {current}: {_message(exc)}") from None


def drop_subscription(conn: Conn, name: str) -> str | None:
    """DROP SUBSCRIPTION; if the publisher cannot be reached, detach the slot and drop anyway.

    Returns the slot left on the publisher in that case (the user drops it by hand), else None.
    """
    ident = sql.Identifier(name)
    try:
        conn.execute(sql.SQL("SET statement_timeout = {}").format(sql.Literal(DROP_TIMEOUT)))
        conn.execute(sql.SQL("DROP SUBSCRIPTION {}").format(ident))
        return None
    except psycopg.OperationalError as exc:
        # Refused or timed out: the slot on the publisher cannot be dropped from here.
        if not isinstance(exc, psycopg.errors.QueryCanceled) and "could not connect to publisher" not in str(exc):
            raise
    finally:
        conn.execute(sql.SQL("SET statement_timeout = {}").format(sql.Literal(STATEMENT_TIMEOUT)))
    slot = _one(conn, "SELECT subslotname FROM pg_subscription WHERE subname = %s", (name,))
    conn.execute(sql.SQL("ALTER SUBSCRIPTION {} DISABLE").format(ident))
    conn.execute(sql.SQL("ALTER SUBSCRIPTION {} SET (slot_name = NONE)").format(ident))
    conn.execute(sql.SQL("DROP SUBSCRIPTION {}").format(ident))
    return str(slot) if slot else name


def _undo(conns: Mapping[str, Conn], done: list[Step]) -> list[str]:
    """Undo in reverse; returns what could not be undone, for the user to clean up."""
    left: list[str] = []
    for step in reversed(done):
        if step.undo is None:
            continue
        conn = conns[step.node]
        try:
            if step.subscription is not None:
                slot = drop_subscription(conn, step.subscription)
                if slot:
                    left.append(f"replication slot {slot} on the publisher (SELECT pg_drop_replication_slot('{slot}'))")
            else:
                with conn.transaction():
                    conn.execute(step.undo.encode())
        except psycopg.Error as exc:
            left.append(f"{step.node}: {step.undo} failed: {_message(exc)}")
    return left


@dataclass(frozen=True)
class TableCopy:
    table: str
    rows: int


@dataclass
class AddResult:
    plan: AddPlan
    copies: list[TableCopy] = field(default_factory=list)
    seconds: float = 0.0
    dry_run: bool = False


def _wait_ready(topo: Topology, sub: Conn, *, intent: Intent, timeout: float) -> None:
    query = ("SELECT count(*) FILTER (WHERE r.srsubstate <> 'r'), count(r.srrelid), "
             "coalesce(max(st.sync_error_count), 0), coalesce(max(st.apply_error_count), 0) "
             "FROM pg_subscription s LEFT JOIN pg_subscription_rel r ON r.srsubid = s.oid "
             "LEFT JOIN pg_stat_subscription_stats st ON st.subid = s.oid WHERE s.subname = %s")
    deadline = time.monotonic() + timeout
    step = f"initial copy of {intent.name}"
    while True:
        row = sub.execute(query, (intent.name,)).fetchone()
        assert row is not None
        pending, total, sync_errors, apply_errors = (int(v) for v in row)
        if total and not pending:
            return
        if sync_errors >= SYNC_ERROR_LIMIT or apply_errors >= SYNC_ERROR_LIMIT:
            c = runtime.find(topo.name, intent.subscriber)
            raise OperationFailed(f"{sync_errors} table copy and {apply_errors} apply errors; {pending} of {total} "
                                  "tables not ready", node=intent.subscriber, step=step,
                                  logs=runtime.logs(c) if c is not None else None)
        if time.monotonic() > deadline:
            raise OperationFailed(f"timed out after {timeout:.0f} s: {pending} of {total} tables not ready",
                                  node=intent.subscriber, step=step)
        time.sleep(0.25)


def _connect(topo: Topology, node: str, *, db: str) -> Conn:
    conn = connect.connect(topo.name, node, dbname=db)
    conn.execute(sql.SQL("SET statement_timeout = {}").format(sql.Literal(STATEMENT_TIMEOUT)))
    # The pgtopo role has a schema of its own name ("$user" comes first in the default path):
    # unqualified table names must mean public, as they do in the file's schema.
    conn.execute("SET search_path = public")
    return conn


@contextmanager
def _connections(topo: Topology, *pairs: tuple[str, str]) -> Iterator[list[Conn]]:
    with ExitStack() as stack:
        yield [stack.enter_context(_connect(topo, node, db=db)) for node, db in pairs]


def add_subscription(path: Path, req: AddRequest, *, dry_run: bool = False, progress: Progress = _quiet,
                     timeout: float = READY_TIMEOUT_S) -> AddResult:
    """Plan, rehearse, then create the channel and record it in ``path`` (``dry_run``: plan only)."""
    text = path.read_text()
    topo = topology.load(path)
    intent = read_intent(topo, req, primaries=deploy.current_primaries(topo), path=path)
    schema = read_schema(path, topo.clusters[intent.subscriber_cluster].databases[intent.subscriber_db])
    with _connections(topo, (intent.publisher, intent.publisher_db), (intent.subscriber, intent.subscriber_db)) as (pub, sub):
        snap = read_snapshot(pub, sub, intent=intent)
        plan = decide(topo, intent=intent, snap=snap, path=path, text=text, subscriber_schema=schema)
        try:
            new_topo = topofile.validate_text(path, plan.new_text)
        except PgtopoError as exc:
            raise InputError(f"the edited file would not be valid: {exc.message}", details=exc.details) from None
        plan.probe = render.carries_probe(new_topo, cluster=intent.subscriber_cluster, sub_name=intent.name)
        plan.subscribe = subscription_step(new_topo, intent, probe=plan.probe)
        rehearse(pub, sub, plan=plan)
        if dry_run:
            return AddResult(plan=plan, dry_run=True)
        return _execute(topo, path, text=text, plan=plan, pub=pub, sub=sub, progress=progress, timeout=timeout)


def _execute(topo: Topology, path: Path, *, text: str, plan: AddPlan, pub: Conn, sub: Conn, progress: Progress,
             timeout: float) -> AddResult:
    i = plan.intent
    assert plan.subscribe is not None
    conns = {i.publisher: pub, i.subscriber: sub}
    done: list[Step] = []
    current = plan.subscribe
    try:
        for step in [*plan.publisher_steps, *plan.subscriber_steps, plan.subscribe]:
            current = step
            progress(step.node, step.what)
            _run(conns[step.node], step)
            done.append(step)
        started = time.monotonic()
        progress(i.subscriber, f"initial copy of {', '.join(plan.tables)}" if i.copy_data else "waiting for the tables")
        current = replace(plan.subscribe, what=f"initial copy of {i.name}")
        _wait_ready(topo, sub, intent=i, timeout=timeout)
        seconds = time.monotonic() - started
        copies = []
        for t in plan.tables:
            now = int(_one(sub, render.q(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(t)))) or 0)
            copies.append(TableCopy(table=t, rows=now - plan.rows_before.get(t, 0)))
        current = replace(plan.subscribe, what=f"write {path}")
        topofile.write(path, original=text, text=plan.new_text)
    except (PgtopoError, psycopg.Error, KeyboardInterrupt) as exc:
        progress(i.subscriber, "failed: undoing what this command created")
        left = _undo(conns, done)
        if isinstance(exc, KeyboardInterrupt):
            raise
        hint = ("undone: " + ", ".join(s.what for s in reversed(done) if s.undo)) if done else "nothing was changed"
        if left:
            hint += "; NOT undone, clean up by hand: " + "; ".join(left)
        if isinstance(exc, OperationFailed):
            exc.hint = "; ".join(h for h in (exc.hint, hint) if h)
            raise
        message = exc.message if isinstance(exc, PgtopoError) else _message(exc)
        raise OperationFailed(message, node=current.node, step=current.what, hint=hint) from None
    return AddResult(plan=plan, copies=copies, seconds=seconds)


# -- removing -----------------------------------------------------------------------------------------

@dataclass
class RemovePlan:
    name: str
    subscriber: str
    database: str
    cluster: str | None  # None: not in the file, only live
    publisher: str | None
    live: bool
    slot: str | None
    oid: int | None  # its table sync slots on the publisher are pg_<oid>_sync_<table>_<system>
    statements: list[Step]
    probe_handover: Step | None
    new_text: str
    diff: str


@dataclass
class RemoveResult:
    plan: RemovePlan
    slot_left: str | None = None  # the publisher could not be reached: drop this slot by hand
    slots_remaining: list[str] | None = None  # None: the publisher could not be checked
    dry_run: bool = False


def _find_live(topo: Topology, name: str, primaries: Mapping[str, str]) -> tuple[str, str] | None:
    for node in primaries.values():
        try:
            with connect.connect(topo.name, node) as conn:
                db = _one(conn, "SELECT d.datname FROM pg_subscription s JOIN pg_database d ON d.oid = s.subdbid "
                                "WHERE s.subname = %s", (name,))
        except PgtopoError:
            continue
        if db:
            return node, str(db)
    return None


def plan_remove(topo: Topology, *, text: str, name: str, path: Path) -> RemovePlan:
    primaries = deploy.current_primaries(topo)
    cluster = next((c for c, cl in topo.clusters.items() if name in cl.subscriptions), None)
    publisher = None
    if cluster is not None:
        sub = topo.clusters[cluster].subscriptions[name]
        db = sub.database or topo.clusters[sub.publisher].publications[sub.publication].database
        subscriber = primaries[cluster]
        publisher = primaries[sub.publisher]
    else:
        found = _find_live(topo, name, primaries)
        if found is None:
            raise InputError(f"unknown subscription '{name}': not in {path} nor on any primary")
        subscriber, db = found
    with _connect(topo, subscriber, db=db) as conn:
        row = conn.execute("SELECT subslotname, 'pgtopo_probe' = ANY(subpublications), oid FROM pg_subscription "
                           "WHERE subname = %s AND subdbid = (SELECT oid FROM pg_database WHERE datname = "
                           "current_database())", (name,)).fetchone()
        live = row is not None
        slot = str(row[0]) if row and row[0] else None
        oid = int(row[2]) if row else None
        carried_probe = bool(row[1]) if row else False
        new_text = text
        handover = None
        if cluster is not None:
            doc = topofile.Document(text, source=str(path))
            topofile.remove_subscription(doc, cluster=cluster, name=name)
            new_text = doc.text()
            after = topofile.validate_text(path, new_text)  # before anything is dropped
            if carried_probe:
                handover = _probe_handover(conn, after, cluster=cluster, publisher=topo.clusters[cluster]
                                           .subscriptions[name].publisher, node=subscriber, db=db)
    stmts = [Step(node=subscriber, database=db, what=f"drop subscription {name}",
                  statement=render.q(sql.SQL("DROP SUBSCRIPTION {}").format(sql.Identifier(name))),
                  transactional=False)] if live else []
    return RemovePlan(name=name, subscriber=subscriber, database=db, cluster=cluster, publisher=publisher, live=live,
                      slot=slot, oid=oid, statements=stmts, probe_handover=handover, new_text=new_text,
                      diff=topofile.unified_diff(text, new_text, path=path))


def _probe_handover(conn: Conn, after: Topology, *, cluster: str, publisher: str, node: str, db: str) -> Step | None:
    """The subscription now first between the same two databases takes the probe publication over."""
    for sname, sub in after.clusters[cluster].subscriptions.items():
        pub_db = after.clusters[sub.publisher].publications[sub.publication].database
        if sub.publisher != publisher or (sub.database or pub_db) != db:
            continue
        if not render.carries_probe(after, cluster=cluster, sub_name=sname):
            continue
        has = _one(conn, "SELECT 'pgtopo_probe' = ANY(subpublications) FROM pg_subscription WHERE subname = %s", (sname,))
        if has is False:
            return Step(node=node, database=db, what=f"let {sname} carry the probe publication from now on",
                        statement=render.q(sql.SQL("ALTER SUBSCRIPTION {} ADD PUBLICATION {} WITH (copy_data = false)")
                                           .format(sql.Identifier(sname), sql.Identifier(render.PROBE_PUBLICATION))),
                        transactional=False)
    return None


def remove_subscription(path: Path, name: str, *, dry_run: bool = False, progress: Progress = _quiet) -> RemoveResult:
    """Drop the subscription (and with it its slot on the publisher) and remove it from the file."""
    text = path.read_text()
    topo = topology.load(path)
    plan = plan_remove(topo, text=text, name=name, path=path)
    if dry_run:
        return RemoveResult(plan=plan, dry_run=True)
    result = RemoveResult(plan=plan)
    if plan.live:
        with _connect(topo, plan.subscriber, db=plan.database) as conn:
            for step in [*plan.statements, *([plan.probe_handover] if plan.probe_handover else [])]:
                progress(plan.subscriber, step.what)
                try:
                    if step in plan.statements:
                        result.slot_left = drop_subscription(conn, name)
                    else:
                        _run(conn, step)
                except psycopg.Error as exc:
                    raise OperationFailed(_message(exc), node=plan.subscriber, step=step.what) from None
    if plan.cluster is not None:
        topofile.write(path, original=text, text=plan.new_text)
    if plan.publisher is not None and plan.slot and result.slot_left is None:
        result.slots_remaining = _slots_left(topo, plan.publisher, slot=plan.slot, oid=plan.oid)
        if result.slots_remaining:
            raise OperationFailed(f"replication slot(s) {', '.join(result.slots_remaining)} still exist after the drop",
                                  node=plan.publisher, step="check slots")
    return result


def _slots_left(topo: Topology, publisher: str, *, slot: str, oid: int | None) -> list[str] | None:
    """Slots of the dropped subscription still on the publisher; None if it cannot be asked."""
    try:
        with connect.connect(topo.name, publisher) as conn:
            rows = conn.execute("SELECT slot_name FROM pg_replication_slots WHERE slot_name = %s OR slot_name LIKE %s",
                                (slot, f"pg\\_{oid}\\_sync\\_%")).fetchall()
    except PgtopoError:
        return None
    return [str(r[0]) for r in rows]

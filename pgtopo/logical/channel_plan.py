"""The plan of a new logical replication channel: pure decisions on a frozen snapshot.

``decide`` reads the ``Intent`` (``pgtopo.logical.channel_request``) and a ``ChannelState`` of the publisher
and the subscriber (read by ``pgtopo.logical.channels``) and refuses, or returns every statement
to run (with the statement that undoes it, where there is one) and the edit of the file;
``subscription_step`` writes the CREATE SUBSCRIPTION. No I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from psycopg import sql

from pgtopo.errors import InputError
from pgtopo.logical.channel_request import Intent
from pgtopo.model import render, topofile
from pgtopo.model.schema_file import schema_tables
from pgtopo.model.topology import PROBE_PUBLICATION, PROBE_SCHEMA, Topology, endpoint

PROBE = render.PROBE


# -- what the plan is decided on (read live by pgtopo.logical.channels) --------------------------------

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
class ChannelState:
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


# -- the plan ---------------------------------------------------------------------------------------

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
    # A Patroni publisher: the PATCH /config body that makes the subscription's slot permanent
    # (sent, and the slot awaited on the leader, just before the subscription is created).
    slot_change: dict[str, object] | None = None


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


def _publication_steps(intent: Intent, snap: ChannelState) -> list[Step]:
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
            render.q(sql.SQL("CREATE SCHEMA IF NOT EXISTS {} AUTHORIZATION pgtopo").format(sql.Identifier(PROBE_SCHEMA))),
            render.q(sql.SQL("CREATE TABLE {} (id bigint PRIMARY KEY, origin text NOT NULL, "
                             "sent_at timestamptz NOT NULL DEFAULT clock_timestamp())").format(PROBE)),
            render.q(sql.SQL("GRANT USAGE ON SCHEMA {} TO replicator").format(sql.Identifier(PROBE_SCHEMA))),
            render.q(sql.SQL("GRANT SELECT ON {} TO replicator").format(PROBE)),
        ]), undo=render.q(sql.SQL("DROP TABLE {}").format(PROBE))))
    if publication is False:
        steps.append(Step(node=node, database=db, what=f"create publication {PROBE_PUBLICATION}",
                          statement=render.q(sql.SQL("CREATE PUBLICATION {} FOR TABLE {}").format(
                              sql.Identifier(PROBE_PUBLICATION), PROBE)),
                          undo=render.q(sql.SQL("DROP PUBLICATION {}").format(sql.Identifier(PROBE_PUBLICATION)))))
    return steps


def decide(topo: Topology, *, intent: Intent, snap: ChannelState, path: Path, text: str,
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
            if key.startswith(f"{PROBE_SCHEMA}."):
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
    if topo.clusters[i.publisher_cluster].ha == "patroni":
        # Exactly as `up` writes it: a multi-host conninfo to the members and Patroni's permanent
        # slot (create_slot = false); ``topo`` is the edited file, which has the subscription.
        stmt_text = render.subscription_statement(topo, cluster=i.subscriber_cluster, sub_name=i.name,
                                                  publisher_node=i.publisher)
        return Step(node=i.subscriber, database=i.subscriber_db, what=f"create subscription {i.name}",
                    statement=stmt_text,
                    undo=render.q(sql.SQL("DROP SUBSCRIPTION {}").format(sql.Identifier(i.name))),
                    transactional=False, subscription=i.name)
    ep = endpoint(topo, from_region=topo.node(i.subscriber).region, node=i.publisher)
    info = render.conninfo(host=ep.host, port=ep.port, user="replicator", application_name=i.name,
                           dbname=i.publisher_db)
    pubs = [sql.Identifier(i.publication)] + ([sql.Identifier(PROBE_PUBLICATION)] if probe else [])
    opts = [sql.SQL("copy_data = {}").format(sql.SQL("true" if i.copy_data else "false"))]
    if i.failover is not None:
        opts.append(sql.SQL("failover = {}").format(sql.SQL("true" if i.failover else "false")))
    stmt = sql.SQL("CREATE SUBSCRIPTION {} CONNECTION {} PUBLICATION {} WITH ({})").format(
        sql.Identifier(i.name), sql.Literal(info), sql.SQL(", ").join(pubs), sql.SQL(", ").join(opts))
    return Step(node=i.subscriber, database=i.subscriber_db, what=f"create subscription {i.name}",
                statement=render.q(stmt), undo=render.q(sql.SQL("DROP SUBSCRIPTION {}").format(sql.Identifier(i.name))),
                transactional=False, subscription=i.name)

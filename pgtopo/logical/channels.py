"""Add or remove one logical replication channel on a running topology, and record it in the file.

The order is the house pattern: check the request against the file (no Docker,
``pgtopo.logical.channel_request``), read a frozen snapshot of the publisher and the subscriber, decide
the plan with pure functions (``pgtopo.logical.channel_plan``), rehearse every transactional statement
inside a transaction that is rolled back, then act. A step that fails undoes what this command
created, in reverse order, before the error is reported.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from pgtopo.errors import DockerUnavailable, InputError, OperationFailed, PgtopoError
from pgtopo.logical.channel_plan import AddPlan, ChannelState, Column, Step, Table, decide, subscription_step
from pgtopo.logical.channel_request import AddRequest, Intent, read_intent
from pgtopo.model import loader, patroni, render, topofile
from pgtopo.model.schema_file import read_schema
from pgtopo.model.topology import PROBE_PUBLICATION, Topology
from pgtopo.patroni import api
from pgtopo.postgres import connect
from pgtopo.postgres import sql as sql_errors
from pgtopo.progress import Progress, quiet
from pgtopo.runtime import gateway, state
from pgtopo.runtime.waiting import wait_for

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
# Patroni creates (or drops) a permanent slot on the leader at its next loop (loop_wait, 10 s
# by default), once the changed configuration has reached it through the DCS.
SLOT_TIMEOUT_S = 120.0


# -- the live snapshot ------------------------------------------------------------------------------

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


def read_snapshot(pub: Conn, sub: Conn, *, intent: Intent) -> ChannelState:
    published: dict[str, tuple[str, ...]] | None = None
    if _one(pub, "SELECT count(*) FROM pg_publication WHERE pubname = %s", (intent.publication,)):
        published = {}
        for schema, table, cols in pub.execute(
                "SELECT schemaname, tablename, attnames FROM pg_publication_tables WHERE pubname = %s",
                (intent.publication,)).fetchall():
            published[table if schema == "public" else f"{schema}.{table}"] = tuple(cols or ())
    names = sorted({*(published or {}), *(t.name for t in intent.new_tables)})
    return ChannelState(
        publisher_in_recovery=bool(_one(pub, "SELECT pg_is_in_recovery()")),
        wal_level=str(_one(pub, "SHOW wal_level")),
        standby_slots=str(_one(pub, "SHOW synchronized_standby_slots") or "") if intent.failover is not None else "",
        publication=published,
        publisher_tables=_tables(pub, names, count_rows=False),
        probe_publication=bool(_one(pub, "SELECT count(*) FROM pg_publication WHERE pubname = %s",
                                    (PROBE_PUBLICATION,))),
        publisher_probe_table=_one(pub, "SELECT to_regclass('pgtopo.probe') IS NOT NULL") is True,
        slot_exists=bool(_one(pub, "SELECT count(*) FROM pg_replication_slots WHERE slot_name = %s", (intent.name,))),
        subscriber_in_recovery=bool(_one(sub, "SELECT pg_is_in_recovery()")),
        subscriber_tables=_tables(sub, names, count_rows=True),
        subscription_exists=bool(_one(sub, "SELECT count(*) FROM pg_subscription WHERE subname = %s", (intent.name,))),
        subscriber_probe_table=_one(sub, "SELECT to_regclass('pgtopo.probe') IS NOT NULL") is True,
    )


# -- acting -----------------------------------------------------------------------------------------

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
                                         f"and DELETE on it fail on {plan.intent.publisher}: {sql_errors.message(exc)}") from None
        except psycopg.Error as exc:
            node = plan.intent.publisher if conn is pub else plan.intent.subscriber
            raise InputError(f"{node}: {current}: {sql_errors.message(exc)}") from None


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
            left.append(f"{step.node}: {step.undo} failed: {sql_errors.message(exc)}")
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
    step = f"initial copy of {intent.name}"
    progress = "no table ready yet"

    def ready() -> bool:
        nonlocal progress
        row = sub.execute(query, (intent.name,)).fetchone()
        assert row is not None
        pending, total, sync_errors, apply_errors = (int(v) for v in row)
        progress = f"{pending} of {total} tables not ready"
        if sync_errors >= SYNC_ERROR_LIMIT or apply_errors >= SYNC_ERROR_LIMIT:
            c = gateway.find(topo.name, intent.subscriber)
            raise OperationFailed(f"{sync_errors} table copy and {apply_errors} apply errors; {progress}",
                                  node=intent.subscriber, step=step, logs=gateway.logs(c) if c is not None else None)
        return bool(total and not pending)

    wait_for(ready, timeout=timeout, what="every table to be copied", step=step, node=intent.subscriber, interval=0.25,
             last_seen=lambda: progress)


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


def add_subscription(path: Path, req: AddRequest, *, dry_run: bool = False, progress: Progress = quiet,
                     timeout: float = READY_TIMEOUT_S) -> AddResult:
    """Plan, rehearse, then create the channel and record it in ``path`` (``dry_run``: plan only)."""
    topo = loader.load(path)  # first: a missing or unreadable file is bad input (exit 2)
    text = path.read_text()
    intent = read_intent(topo, req, primaries=state.current_primaries(topo), path=path)
    # A Patroni publisher: the subscription's slot becomes one of Patroni's permanent slots
    # (PATCH /config) before the subscription uses it. A Patroni subscriber is refused. Checked
    # once the publisher is known (found from the publication when not named), for the CLI and a
    # drill's step alike.
    patroni.refuse_subscriber(topo, intent.subscriber_cluster, "add-subscription")
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
        if topo.clusters[intent.publisher_cluster].ha == "patroni":
            plan.slot_change = patroni.subscription_slot_change(new_topo, intent.publisher_cluster, intent.name)
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
    patroni_ep: api.Endpoint | None = None
    try:
        for step in [*plan.publisher_steps, *plan.subscriber_steps, plan.subscribe]:
            if step is plan.subscribe and plan.slot_change is not None:
                current = replace(step, node=i.publisher, what=f"permanent slot {i.name} (PATCH /config)")
                progress(i.publisher, f"Patroni: make {i.name} a permanent slot (PATCH /config)")
                ep = api.endpoint(topo.name, i.publisher, password=api.rest_password(topo.name))
                api.patch_config(ep, plan.slot_change)
                patroni_ep = ep
                progress(i.publisher, f"waiting for Patroni to create the slot {i.name} on the leader")
                _wait_slot(pub, i.name, present=True, node=i.publisher)
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
        if patroni_ep is not None:
            # Back to the file as it was: the slot is no longer permanent, then it goes.
            undo_change = patroni.subscription_slot_change(topo, i.publisher_cluster, i.name)
            try:
                forget_slot(patroni_ep, pub, undo_change, slot=i.name)
            except (PgtopoError, psycopg.Error) as undo_exc:
                why = undo_exc.message if isinstance(undo_exc, PgtopoError) else sql_errors.message(undo_exc)
                left.append(f"Patroni's permanent slot {i.name}: {why} (PATCH /config "
                            f'{{"slots": {{"{i.name}": null}}}}, then drop the slot on the leader)')
        if isinstance(exc, KeyboardInterrupt):
            raise
        hint = ("undone: " + ", ".join(s.what for s in reversed(done) if s.undo)) if done else "nothing was changed"
        if left:
            hint += "; NOT undone, clean up by hand: " + "; ".join(left)
        if isinstance(exc, OperationFailed):
            exc.hint = "; ".join(h for h in (exc.hint, hint) if h)
            raise
        message = exc.message if isinstance(exc, PgtopoError) else sql_errors.message(exc)
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
    # A Patroni publisher: the PATCH /config body that removes the slot from its permanent slots
    # (the subscription is dropped without its slot first, then Patroni forgets it and it goes).
    slot_change: dict[str, object] | None = None


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
        except DockerUnavailable:
            raise  # not "unknown subscription": nothing could be asked
        except PgtopoError:
            continue  # this node is down: the others may still have it
        if db:
            return node, str(db)
    return None


def plan_remove(topo: Topology, *, text: str, name: str, path: Path) -> RemovePlan:
    primaries = state.current_primaries(topo)
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
        slot_change = None
        if cluster is not None:
            doc = topofile.Document(text, source=str(path))
            topofile.remove_subscription(doc, cluster=cluster, name=name)
            new_text = doc.text()
            after = topofile.validate_text(path, new_text)  # before anything is dropped
            pub_cluster = topo.clusters[cluster].subscriptions[name].publisher
            if topo.clusters[pub_cluster].ha == "patroni":
                slot_change = patroni.subscription_slot_change(after, pub_cluster, name)
            if carried_probe:
                handover = _probe_handover(conn, after, cluster=cluster, publisher=topo.clusters[cluster]
                                           .subscriptions[name].publisher, node=subscriber, db=db)
    ident = sql.Identifier(name)
    drop = Step(node=subscriber, database=db, what=f"drop subscription {name}",
                statement=render.q(sql.SQL("DROP SUBSCRIPTION {}").format(ident)), transactional=False)
    if slot_change is not None and slot:
        # The slot is Patroni's (a permanent slot): the subscription lets go of it, Patroni forgets it.
        stmts = [Step(node=subscriber, database=db, what=f"disable subscription {name}", transactional=False,
                      statement=render.q(sql.SQL("ALTER SUBSCRIPTION {} DISABLE").format(ident))),
                 Step(node=subscriber, database=db, what=f"detach it from Patroni's permanent slot {slot}",
                      transactional=False,
                      statement=render.q(sql.SQL("ALTER SUBSCRIPTION {} SET (slot_name = NONE)").format(ident))),
                 drop]
    else:
        stmts = [drop]
    return RemovePlan(name=name, subscriber=subscriber, database=db, cluster=cluster, publisher=publisher,
                      live=live, slot=slot, oid=oid, statements=stmts if live else [], probe_handover=handover,
                      new_text=new_text, diff=topofile.unified_diff(text, new_text, path=path), slot_change=slot_change)


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
                                           .format(sql.Identifier(sname), sql.Identifier(PROBE_PUBLICATION))),
                        transactional=False)
    return None


def remove_subscription(path: Path, name: str, *, dry_run: bool = False, progress: Progress = quiet) -> RemoveResult:
    """Drop the subscription (and with it its slot on the publisher) and remove it from the file.

    The file's edit is staged before the drop and committed right after it: a file that cannot be
    written stops the command before anything is dropped, and a drop that fails leaves the file as
    it was, so the file and the running topology agree either way.
    """
    topo = loader.load(path)
    text = path.read_text()
    plan = plan_remove(topo, text=text, name=name, path=path)
    if dry_run:
        return RemoveResult(plan=plan, dry_run=True)
    result = RemoveResult(plan=plan)
    edit = (topofile.staged(path, original=text, text=plan.new_text) if plan.cluster is not None
            else nullcontext(_nothing_to_write))
    with edit as commit:
        if not plan.live:
            commit()
        else:
            with _connect(topo, plan.subscriber, db=plan.database) as conn:
                if plan.slot_change is not None and plan.slot:  # Patroni's permanent slot: not dropped from here
                    for step in plan.statements:
                        progress(plan.subscriber, step.what)
                        try:
                            _run(conn, step)
                        except psycopg.Error as exc:
                            raise OperationFailed(sql_errors.message(exc), node=plan.subscriber,
                                                  step=step.what) from None
                else:
                    for step in plan.statements:
                        progress(plan.subscriber, step.what)
                        try:
                            result.slot_left = drop_subscription(conn, name)
                        except psycopg.Error as exc:
                            raise OperationFailed(sql_errors.message(exc), node=plan.subscriber,
                                                  step=step.what) from None
                commit()
                if plan.probe_handover is not None:
                    step = plan.probe_handover
                    progress(plan.subscriber, step.what)
                    try:
                        _run(conn, step)
                    except psycopg.Error as exc:
                        done = f"subscription {name} was dropped" + (f" and removed from {path}" if plan.cluster else "")
                        raise OperationFailed(sql_errors.message(exc), node=plan.subscriber, step=step.what,
                                              hint=f"{done}; run this by hand: {step.statement};") from None
    if plan.slot_change is not None and plan.publisher is not None:
        _forget_on(topo, plan, result)
    if plan.publisher is not None and plan.slot and result.slot_left is None:
        result.slots_remaining = _slots_left(topo, plan.publisher, slot=plan.slot, oid=plan.oid)
        if result.slots_remaining:
            raise OperationFailed(f"replication slot(s) {', '.join(result.slots_remaining)} still exist after the drop",
                                  node=plan.publisher, step="check slots")
    return result


def _wait_slot(conn: Conn, slot: str, *, present: bool, node: str) -> None:
    query = "SELECT count(*) FROM pg_replication_slots WHERE slot_name = %s"
    wait_for(lambda: (_one(conn, query, (slot,)) == 1) == present, timeout=SLOT_TIMEOUT_S,
             what=f"Patroni to {'create' if present else 'drop'} the permanent slot {slot}",
             step=f"slot {slot}", node=node, interval=0.5)


def forget_slot(ep: api.Endpoint, conn: Conn, change: dict[str, object], *, slot: str) -> None:
    """Patroni no longer keeps ``slot`` (``change``: its PATCH /config body, the slot set to
    null), then the slot goes from the leader (``conn``): Patroni drops a slot it does not know
    unless ``ignore_slots`` covers it, so pgtopo drops it once it is inactive (a subscription
    disabled or dropped lets go of it within moments)."""
    api.patch_config(ep, change)

    def gone() -> bool:
        row = conn.execute("SELECT active FROM pg_replication_slots WHERE slot_name = %s", (slot,)).fetchone()
        if row is None:
            return True
        if not row[0]:
            try:
                conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
            except (psycopg.errors.UndefinedObject, psycopg.errors.ObjectInUse):
                return False  # Patroni dropped it first, or a walsender still holds it: look again
            return True
        return False

    wait_for(gone, timeout=SLOT_TIMEOUT_S, what=f"the slot {slot} to go from the leader", step=f"slot {slot}",
             node=ep.node, interval=0.5)


def _forget_on(topo: Topology, plan: RemovePlan, result: RemoveResult) -> None:
    """Patroni's permanent slot of a dropped subscription: out of its configuration, off the leader."""
    assert plan.publisher is not None and plan.slot_change is not None
    step = f"remove the permanent slot {plan.name} (PATCH /config)"
    try:
        ep = api.endpoint(topo.name, plan.publisher, password=api.rest_password(topo.name))
        with connect.connect(topo.name, plan.publisher) as conn:
            forget_slot(ep, conn, plan.slot_change, slot=plan.slot or plan.name)
    except PgtopoError as exc:
        done = f"subscription {plan.name} was dropped" + (" and removed from the file" if plan.cluster else "")
        raise OperationFailed(exc.message, node=plan.publisher, step=step,
                              hint=f"{done}; by hand: PATCH /config {{\"slots\": {{\"{plan.name}\": null}}}} on a "
                                   f"member of {plan.publisher}'s cluster, then SELECT pg_drop_replication_slot("
                                   f"'{plan.slot or plan.name}') on its leader") from None


def undo_created(topo: Topology, plan: AddPlan, *, progress: Progress = quiet) -> list[str]:
    """Undo what an add-subscription created besides the subscription (remove it first): the
    publication or the tables it added to one, the subscriber's tables, probe objects, grants,
    in reverse order, each on its cluster's current primary. So the same channel can be added
    again on the same topology (a drill run twice). Returns what could not be undone."""
    primaries = state.current_primaries(topo)
    left: list[str] = []
    for step in reversed([*plan.publisher_steps, *plan.subscriber_steps]):
        if step.undo is None or step.subscription is not None:
            continue
        node = primaries[topo.cluster_of(step.node)]
        progress(node, f"undo: {step.what}")
        try:
            with _connect(topo, node, db=step.database) as conn, conn.transaction():
                conn.execute(step.undo.encode())
        except (PgtopoError, psycopg.Error) as exc:
            why = exc.message if isinstance(exc, PgtopoError) else sql_errors.message(exc)
            left.append(f"{node}: {step.undo} failed: {why}")
    return left


def _nothing_to_write() -> None:
    """The commit of a removal that leaves the file alone (the subscription was only live)."""


def _slots_left(topo: Topology, publisher: str, *, slot: str, oid: int | None) -> list[str] | None:
    """Slots of the dropped subscription still on the publisher; None if it cannot be asked."""
    try:
        with connect.connect(topo.name, publisher) as conn:
            rows = conn.execute("SELECT slot_name FROM pg_replication_slots WHERE slot_name = %s OR slot_name LIKE %s",
                                (slot, f"pg\\_{oid}\\_sync\\_%")).fetchall()
    except PgtopoError:
        return None
    return [str(r[0]) for r in rows]

"""add-subscription and remove-subscription: one logical channel, live and in the file."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from pgtopo.cli import output
from pgtopo.cli.app import Commands, NoWaitOption, TopologyFile, changing
from pgtopo.cli.app import load_topology as _load
from pgtopo.cli.completion import complete_node, complete_publication, complete_subscription
from pgtopo.model.patroni import refuse_subscriber

commands = Commands()


def _print_steps(steps: list[tuple[str, str, str, str]]) -> None:
    """(node, database, what, statement) grouped under the node they run on."""
    where = None
    for node, db, what, statement in steps:
        if (node, db) != where:
            output.info(f"-- on {node}, database {db}:")
            where = (node, db)
        output.info(f"-- {what}")
        output.info(f"{statement};")


def _print_patroni(node: str, change: dict[str, object] | None, what: str) -> None:
    """A Patroni publisher's configuration change, as the REST call it is."""
    if change is None:
        return
    output.info(f"-- Patroni, through {node}'s REST API: {what}")
    output.info(f"PATCH /config {json.dumps(change)}")


@commands.command("add-subscription")
def add_subscription(
    file: TopologyFile,
    subscriber: Annotated[str, typer.Option(help="The node that subscribes: its cluster's current primary.",
                                            autocompletion=complete_node)],
    publication: Annotated[str | None, typer.Option(
        help="An existing publication; with --tables, the one to create or extend (default <first table>_pub).",
        autocompletion=complete_publication)] = None,
    publisher: Annotated[str | None, typer.Option(help="The publishing node: its cluster's current primary.",
                                                  autocompletion=complete_node)] = None,
    tables: Annotated[str | None, typer.Option(help="Tables to publish, comma-separated (needs --publisher).")] = None,
    row_filter: Annotated[list[str] | None, typer.Option(
        "--row-filter", help="TABLE:EXPRESSION, a row filter for one of --tables (repeatable).")] = None,
    columns: Annotated[list[str] | None, typer.Option(
        help="TABLE:COL1,COL2, a column list for one of --tables (repeatable).")] = None,
    database: Annotated[str | None, typer.Option(help="The database (default: the publication's).")] = None,
    name: Annotated[str | None, typer.Option(
        help="The subscription's name (default <publication>_<subscriber>_sub).")] = None,
    no_copy: Annotated[bool, typer.Option("--no-copy", help="Do not copy the rows already there.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the SQL and the file change; change nothing.")] = False,
    no_wait: NoWaitOption = False,
) -> None:
    """Add a logical replication channel to the running topology and record it in the file."""
    from pgtopo.logical import channel_request, channels

    req = channel_request.AddRequest(
        subscriber=subscriber, publication=publication, publisher=publisher,
        tables=(tables,) if tables else (), row_filters=tuple(row_filter or ()), columns=tuple(columns or ()),
        database=database, name=name, copy_data=not no_copy)
    topo = _load(file)
    # A Patroni publisher goes through Patroni (its permanent slots); a Patroni subscriber is refused.
    if subscriber in topo.node_names():
        refuse_subscriber(topo, topo.cluster_of(subscriber), "add-subscription")
    with changing(topo.name, no_wait=no_wait, dry_run=dry_run):
        result = channels.add_subscription(file, req, dry_run=dry_run, progress=output.StepPrinter())
    plan = result.plan
    i = plan.intent
    for w in plan.warnings:
        output.warn(w)
    if result.dry_run:
        assert plan.subscribe is not None
        steps = [*plan.publisher_steps, *plan.subscriber_steps, plan.subscribe]
        _print_steps([(s.node, s.database, s.what + (f" (as role {s.role})" if s.role else ""), s.statement)
                      for s in steps[:-1]])
        _print_patroni(i.publisher, plan.slot_change, f"make {i.name} a permanent slot; wait until the leader has it")
        _print_steps([(s.node, s.database, s.what, s.statement) for s in steps[-1:]])
        output.info(plan.diff.rstrip("\n"))
        output.success(f"dry run: nothing changed (subscription {i.name} on {i.subscriber} to {i.publication} "
                       f"on {i.publisher})")
        return
    output.table(None, ["table", "rows copied"], [[c.table, str(c.rows)] for c in result.copies])
    how = {"create": " (created)", "extend": " (tables added)", "use": ""}[i.mode]
    n = len(result.copies)
    output.success(f"{i.name} on {i.subscriber} (database {i.subscriber_db}) receives publication {i.publication}"
                   f"{how} from {i.publisher}: {n} table{'s' if n != 1 else ''} ready in {result.seconds:.1f} s"
                   f"{', failover slot' if i.failover else ''}; {file} updated")


@commands.command("remove-subscription")
def remove_subscription(
    file: TopologyFile,
    name: Annotated[str, typer.Argument(help="The subscription to drop.", show_default=False,
                                         autocompletion=complete_subscription)],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the SQL and the file change; change nothing.")] = False,
    no_wait: NoWaitOption = False,
) -> None:
    """Drop a subscription (and its slot on the publisher) and remove it from the file."""
    from pgtopo.logical import channels

    topo = _load(file)
    for cluster in [c for c, cl in topo.clusters.items() if name in cl.subscriptions]:
        refuse_subscriber(topo, cluster, "remove-subscription")
    with changing(topo.name, no_wait=no_wait, dry_run=dry_run):
        result = channels.remove_subscription(file, name, dry_run=dry_run, progress=output.StepPrinter())
    plan = result.plan
    steps = [*plan.statements, *([plan.probe_handover] if plan.probe_handover else [])]
    if result.dry_run:
        _print_steps([(s.node, s.database, s.what, s.statement) for s in steps])
        _print_patroni(plan.publisher or "the publisher", plan.slot_change,
                       f"{name} is no longer a permanent slot; then the slot goes from the leader")
        if plan.diff:
            output.info(plan.diff.rstrip("\n"))
        output.success(f"dry run: nothing changed (subscription {name} on {plan.subscriber})")
        return
    if not plan.live:
        output.warn(f"subscription {name} was not on {plan.subscriber}: removed from {file} only")
    if result.slot_left:
        output.warn(f"{plan.publisher or 'the publisher'} could not be reached: its replication slot "
                    f"{result.slot_left} is still there and keeps WAL; once it is back, drop it by hand with "
                    f"SELECT pg_drop_replication_slot('{result.slot_left}')")
    checked = (f"; no slot left on {plan.publisher}" if result.slots_remaining == [] else "")
    where = f"; {file} updated" if plan.cluster is not None else ""
    output.success(f"subscription {name} dropped on {plan.subscriber}{checked}{where}")

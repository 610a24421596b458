"""High availability: `failover`, `switchover`, `rejoin` and `kill` (a crash, for drills)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from pgtopo.cli import output
from pgtopo.cli.app import ClusterOption, Commands, NoWaitOption, TopologyFile, changing
from pgtopo.cli.app import load_topology as _load
from pgtopo.cli.completion import complete_node
from pgtopo.cli.output import Block, Line, TableData
from pgtopo.errors import InputError, OperationFailed
from pgtopo.ha.failover import DEFAULT_MAX_LAG, RANKING_COLUMNS, Unfinished, last_line, ranking_rows
from pgtopo.model.patroni import refuse_around
from pgtopo.postgres.connect import Held

if TYPE_CHECKING:
    from pgtopo.ha.failover import Plan
    from pgtopo.ha.manager import ManagedOutcome, ManagedPlan
    from pgtopo.ha.promotion import Outcome
    from pgtopo.model.topology import Topology

commands = Commands()

def plan_screen(plan: Plan) -> list[Block]:
    blocks: list[Block] = [TableData(f"candidates for cluster {plan.cluster}", RANKING_COLUMNS, ranking_rows(plan))]
    for i, line in enumerate(plan.lines()):
        style = "warning" if "warning:" in line or "RE-SYNCHRONISE" in line else ("info" if i == 0 else "")
        blocks.append(Line(line, style))
    return blocks


def outcome_screen(o: Outcome) -> list[Block]:
    p = o.plan
    head = (f"{p.candidate} is the primary of cluster {p.cluster} (timeline {o.timeline}); recovery time "
            f"{o.recovery_s:.2f} s from the command start to the first write accepted (pg_promote: "
            f"{o.promote_s:.2f} s)")
    blocks: list[Block] = [Line(head, "success")]
    if o.fence is not None:
        blocks.append(Line(f"fenced {o.fence.node}: {o.fence.method} ({o.fence.detail})"))
    if o.loss is not None:
        style = "warning" if o.loss.bytes else ""
        blocks.append(Line(f"data lost: {o.loss.text()}", style))
        if o.loss.commits and p.sync_before is not None and not p.forced:
            blocks.append(Line(f"  {p.candidate} was a synchronous standby: those commits were written on "
                               f"{p.old_primary} but never acknowledged to their clients (they waited for a standby)"))
    blocks.extend(Line(r) for r in o.replicas)
    for s in o.subscribers:
        style = "alarm" if s.action in ("resynced", "failed") else ""
        blocks.append(Line(f"subscription {s.subscription} on {s.node}: {s.action}: {s.detail}", style))
    sync = o.sync_after.text() if o.sync_after else "''"
    blocks.append(Line(f"{p.candidate}: synchronous_standby_names = {sync}; synchronized_standby_slots = "
                       f"{', '.join(o.standby_slots) or '-'}"))
    blocks.append(TableData("timings (s since the command started)", ["step", "s"],
                            [[name, f"{t:.2f}"] for name, t in o.steps]))
    blocks.extend(Line(f"warning: {w}", "warning") for w in o.warnings if w not in p.warnings)
    return blocks


def managed_plan_screen(plan: ManagedPlan) -> list[Block]:
    blocks: list[Block] = []
    if plan.ranking:
        blocks.append(TableData(f"pgtopo's ranking for cluster {plan.cluster}", RANKING_COLUMNS, plan.ranking_rows()))
    for i, line in enumerate(plan.lines()):
        blocks.append(Line(line, "warning" if "warning:" in line else ("info" if i == 0 else "")))
    return blocks


def managed_outcome_screen(o: ManagedOutcome) -> list[Block]:
    p = o.plan
    blocks: list[Block] = [Line(f"{p.candidate} is the leader of cluster {p.cluster} (timeline {o.timeline}), by "
                                f"Patroni; recovery time {o.recovery_s:.2f} s from the command start to the first "
                                "write accepted", "success")]
    blocks.extend(Line(f"  {m}") for m in o.members)
    blocks.append(TableData("timings (s since the command started)", ["step", "s"],
                            [[name, f"{t:.2f}"] for name, t in o.steps]))
    blocks.extend(Line(f"warning: {w}", "warning") for w in o.warnings)
    return blocks


def _managed_cluster(topo: Topology, cluster: str | None, to: str | None) -> str | None:
    """The cluster the command acts on when Patroni keeps it alive, else None (the manual path then
    reports any bad option itself, as before)."""
    from pgtopo.ha import failover as planning

    try:
        c = planning.choose_cluster(topo, cluster=cluster, to=to)
    except InputError:
        return None
    # From the file, without importing the manager (its Patroni client: 20 ms of a manual
    # failover's outage otherwise).
    return c if c in topo.patroni_clusters() else None


def _through_patroni(topo: Topology, *, mode: str, cluster: str, to: str | None, max_lag: int, force: bool,
                     dry_run: bool, yes: bool, started: float) -> None:
    from pgtopo.ha import manager

    plan = manager.plan_live(topo, mode=mode, cluster=cluster, to=to, max_lag=max_lag, force=force)
    output.show(managed_plan_screen(plan))
    if dry_run:
        output.info("dry run: nothing changed")
        return
    waited = 0.0 if yes else _confirm(f"ask Patroni to make {plan.candidate} the leader ({mode})?")
    out = manager.execute(topo, plan, started=started + waited, progress=output.StepPrinter())
    output.show(managed_outcome_screen(out))


def _confirm(question: str) -> float:
    """Ask; returns the seconds spent waiting for the answer (not counted in the recovery time)."""
    t = time.monotonic()
    try:
        ok = typer.confirm(question, default=False)
    except typer.Abort:
        ok = False
    if not ok:
        raise InputError("not confirmed: nothing changed (--yes skips the question)")
    return time.monotonic() - t


def _carry_out(plan: Plan, *, file: Path, dry_run: bool, yes: bool, question: str,
               execute: Callable[[float, Callable[[], None]], Outcome], plan_when_writable: bool = False) -> None:
    """Show the plan; stop on --dry-run; confirm unless --yes (time spent waiting for the answer is
    not counted in the recovery time); execute and show the outcome; fail (exit 1) when part of the
    plan is not done, the last line saying what and the command that finishes it.

    ``plan_when_writable`` (a failover with --yes): nobody reads the plan before it runs, so it is
    shown once the new primary accepts writes (``execute`` calls its second argument then), or when
    the run stops before that: rendering it would otherwise add to the outage (tens of ms at 30 nodes).
    """
    shown = False

    def show_plan() -> None:
        nonlocal shown
        if not shown:
            shown = True
            output.show(plan_screen(plan))

    if not (plan_when_writable and yes) or dry_run:
        show_plan()
    if dry_run:
        output.info("dry run: nothing changed")
        return
    waited = 0.0 if yes else _confirm(question)
    try:
        out = execute(waited, show_plan)
    finally:
        show_plan()
    output.show(outcome_screen(out))
    _fail_if_unfinished(f"the {plan.mode} of cluster {plan.cluster} to {plan.candidate}", out.unfinished, file=file)


def _fail_if_unfinished(what: str, unfinished: list[Unfinished], *, file: Path) -> None:
    if unfinished:
        raise OperationFailed(f"{what} is done only in part: {len(unfinished)} step(s) not done",
                              hint=last_line(unfinished, file=str(file)))


def _resume(file: Path, cluster: str | None, *, dry_run: bool, yes: bool) -> str:
    """Finish what a failover left undone; returns the cluster."""
    from pgtopo.ha import resume

    topo = _load(file)
    refuse_around(topo, [cluster] if cluster else [], "failover --resume")
    plan = resume.plan_live(topo, cluster=cluster)
    refuse_around(topo, [plan.cluster], "failover --resume")
    for i, line in enumerate(plan.lines()):
        output.show([Line(line, "info" if i == 0 else "")])
    todo = [r for r in plan.replicas if r.action == "rejoin"] + [s for s in plan.subscribers if s.action != "ok"]
    if dry_run:
        output.info("dry run: nothing changed")
        return plan.cluster
    if todo and not yes:
        _confirm(f"rejoin and move {len(todo)} replica(s) and subscription(s)?")
    out = resume.resume(topo, plan, progress=output.StepPrinter())
    blocks: list[Block] = [Line(r) for r in out.replicas]
    for s in out.subscribers:
        blocks.append(Line(f"subscription {s.subscription} on {s.node}: {s.action}: {s.detail}",
                           "alarm" if s.action in ("resynced", "failed") else ""))
    sync = out.sync_after.text() if out.sync_after else "''"
    blocks.append(Line(f"{plan.primary}: synchronous_standby_names = {sync}; synchronized_standby_slots = "
                       f"{', '.join(out.standby_slots) or '-'}"))
    output.show(blocks)
    _fail_if_unfinished(f"resuming cluster {plan.cluster}", out.unfinished, file=file)
    output.success(f"cluster {plan.cluster}: every replica and subscriber that can follows {plan.primary}")
    return plan.cluster


@commands.command()
def failover(
    file: TopologyFile,
    cluster: ClusterOption = None,
    to: Annotated[str | None, typer.Option("--to", help="Promote this replica (default: the best ranked).",
                                                 autocompletion=complete_node)] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the ranking and the plan; change nothing.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Promote even an unsafe candidate (data at risk).")] = False,
    max_lag: Annotated[int, typer.Option("--max-lag", help="Largest acceptable lag of the candidate, in bytes.")]
    = DEFAULT_MAX_LAG,
    resume: Annotated[bool, typer.Option("--resume", help="Promote nothing: finish what the last failover left "
                                         "undone (rejoin replicas that do not stream, move subscribers).")] = False,
    no_wait: NoWaitOption = False,
) -> None:
    """Promote the best replica of a cluster whose primary failed; fence the old one, re-point the rest.

    Without --cluster: the cluster of --to, else the only cluster with replicas (with several, --cluster is
    needed). A failover that cannot finish part of its plan (a replica or subscriber behind a partition)
    exits 1; its last line names what is not done and the command that finishes it (--resume).
    """
    from pgtopo.ha import pending, promotion

    started = time.monotonic()
    if resume and (to is not None or force):
        raise InputError("--resume promotes nothing: it takes no --to nor --force")
    topo = _load(file)
    with changing(topo.name, no_wait=no_wait, dry_run=dry_run):  # planned under the lock: on what really is
        through = _managed_cluster(topo, cluster, to)
        if through is not None:
            if resume:
                raise InputError(f"--resume: cluster {through} is kept alive by Patroni, which finishes a failover "
                                 "itself (`pgtopo status` shows its members)")
            _through_patroni(topo, mode="failover", cluster=through, to=to, max_lag=max_lag, force=force,
                             dry_run=dry_run, yes=yes, started=started)
            return
        if resume:
            done = _resume(file, cluster, dry_run=dry_run, yes=yes)
            if not dry_run:
                pending.finished(topo, done)
            return
        found = pending.unfinished(topo, cluster=cluster, to=to)
        if found is not None:
            rec, promoted = found
            said = rec.summary(file=str(file))[:-1]  # without "finish it with": this command does
            output.show([Line(line, "warning") for line in [*said, f"this run finishes it (begun at {rec.at})"]])
            if promoted:  # finish that one: never plan another failover of a half-changed cluster
                done = _resume(file, rec.cluster, dry_run=dry_run, yes=yes)
                if not dry_run:
                    pending.finished(topo, done)
                return
            to = to or rec.to
        # Unattended, the plan's connections stay open for the steps up to the first write.
        with Held() as held:
            keep = held if yes and not dry_run else None
            plan = promotion.plan_live(topo, mode="failover", cluster=cluster, to=to, max_lag=max_lag, force=force,
                                       unattended=keep is not None, held=keep)
            _carry_out(plan, file=file, dry_run=dry_run, yes=yes,
                       question=f"fence {plan.old_primary} and promote {plan.candidate}?", plan_when_writable=True,
                       execute=lambda waited, writable: promotion.execute_failover(
                           topo, plan, started=started + waited, progress=output.StepPrinter(), on_writable=writable,
                           held=keep))


@commands.command()
def switchover(
    file: TopologyFile,
    to: Annotated[str, typer.Option("--to", help="The replica to promote.", show_default=False,
                                       autocompletion=complete_node)],
    cluster: ClusterOption = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan; change nothing.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    no_wait: NoWaitOption = False,
) -> None:
    """Planned change of primary with zero loss; the old primary becomes a replica of the new one.

    The cluster is the one --to belongs to; --cluster, if given, must name that one.
    """
    from pgtopo.ha import promotion
    from pgtopo.ha import switchover as planned

    started = time.monotonic()
    topo = _load(file)
    with changing(topo.name, no_wait=no_wait, dry_run=dry_run):
        through = _managed_cluster(topo, cluster, to)
        if through is not None:
            _through_patroni(topo, mode="switchover", cluster=through, to=to, max_lag=0, force=False,
                             dry_run=dry_run, yes=yes, started=started)
            return
        plan = promotion.plan_live(topo, mode="switchover", cluster=cluster, to=to)
        _carry_out(plan, file=file, dry_run=dry_run, yes=yes,
                   question=f"stop {plan.old_primary} and promote {plan.candidate}?",
                   execute=lambda waited, _writable: planned.execute_switchover(topo, plan, started=started + waited,
                                                                                progress=output.StepPrinter()))


@commands.command()
def rejoin(
    file: TopologyFile,
    node: Annotated[str, typer.Argument(help="The former primary (or broken replica) to bring back.",
                                       autocompletion=complete_node)],
    reclone: Annotated[bool, typer.Option("--reclone", help="If pg_rewind fails, copy the node afresh.")] = False,
    reinit: Annotated[bool, typer.Option("--reinit", help="ha: patroni: ask Patroni to clone the member afresh "
                                         "(POST /reinitialize) instead of waiting for its own rejoin.")] = False,
    no_wait: NoWaitOption = False,
) -> None:
    """Bring a fenced or failed node back as a replica of the current primary (pg_rewind).

    On a cluster Patroni keeps alive: start its container if it is stopped and wait until Patroni has
    rejoined it (Patroni rewinds a former leader itself); --reinit asks Patroni to clone it afresh."""
    from pgtopo.ha import manager
    from pgtopo.ha import rejoin as rj

    topo = _load(file)
    if manager.managed(topo, topo.cluster_of(node)):
        if reclone:
            raise InputError("--reclone: Patroni clones a member itself; use --reinit on a cluster with ha: patroni")
        with changing(topo.name, no_wait=no_wait):
            got = manager.rejoin(topo, node, reinit=reinit, progress=output.StepPrinter())
        if got.method == "already streaming":
            output.success(f"{node} already streams from {got.leader} (timeline {got.timeline}): nothing to do")
            return
        started = "; its container was started" if got.started_container else ""
        role = f" as Patroni's {got.role}" if got.role != "replica" else ""
        output.success(f"{node} streams from {got.leader} on timeline {got.timeline}{role} ({got.method}) in "
                       f"{got.seconds:.1f} s{started}")
        return
    if reinit:
        raise InputError(f"--reinit: cluster {topo.cluster_of(node)} is not kept alive by Patroni (ha: manual); "
                         "use --reclone")
    with changing(topo.name, no_wait=no_wait):
        res = rj.rejoin(topo, node, reclone=reclone, progress=output.StepPrinter())
    if res.method == "already streaming":
        output.success(f"{res.detail}: nothing to do")
        return
    sync = res.sync_after.text() if res.sync_after else "''"
    output.success(f"{node} streams from {res.upstream} ({res.method}: {res.detail}) in {res.seconds:.1f} s; "
                   f"synchronous_standby_names on {res.primary} = {sync}")


@commands.command()
def kill(
    file: TopologyFile,
    node: Annotated[str, typer.Argument(help="The node to crash.", autocompletion=complete_node)],
    no_wait: NoWaitOption = False,
) -> None:
    """Crash a node (SIGKILL to its container), for failover drills."""
    from pgtopo.ha import fencing

    topo = _load(file)
    with changing(topo.name, no_wait=no_wait):
        last = fencing.kill_node(topo, node)
    where = f" (its last position was {last})" if last else ""
    output.success(f"killed {node} with SIGKILL{where}")

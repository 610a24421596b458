"""Commands that look at a running topology: `status` and `verify`."""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Annotated

import typer

from pgtopo import errors
from pgtopo.cli import output
from pgtopo.cli.app import Commands, TopologyFile
from pgtopo.cli.app import load_topology as _load
from pgtopo.cli.output import Block, Line, TableData
from pgtopo.postgres.lsn import fmt_bytes

if TYPE_CHECKING:
    from pgtopo.observe.manager import ManagerReport
    from pgtopo.observe.status import Assessment
    from pgtopo.observe.verify import VerifyReport

commands = Commands()

DEFAULT_WATCH_SECONDS = 2.0
PROBLEM_STYLE = {"error": "error", "warning": "warning", "info": "info"}


def _dash(value: object) -> str:
    return "-" if value is None or value == "" else str(value)


def status_screen(a: Assessment) -> list[Block]:
    blocks: list[Block] = [Line(p.message, "alarm") for p in a.problems
                           if p.subject in a.split_brain and p.severity == "error"]
    nodes = []
    for n in a.nodes:
        lag = "-" if n.lag_bytes is None and n.lag_seconds is None else \
            f"{fmt_bytes(n.lag_bytes)} / {output.fmt_seconds(n.lag_seconds)}"
        sync = "-" if n.sync_state is None else f"{n.sync_state} ({n.sync_priority})"
        nodes.append([n.mark, n.node, n.cluster, n.region, n.role, n.state, _dash(n.timeline), _dash(n.current_lsn),
                      _dash(n.received_lsn), _dash(n.replayed_lsn), _dash(n.upstream), lag, sync, "; ".join(n.reasons)])
    blocks.append(TableData(f"{a.topology}: nodes", ["", "node", "cluster", "region", "role", "state", "TL", "current",
                                                   "received", "replayed", "upstream", "lag (bytes / time)", "sync",
                                                   "note"], nodes))
    if a.slots:
        blocks.append(TableData("replication slots", ["node", "slot", "type", "database", "active", "retained WAL",
                                                      "wal_status", "failover / synced"],
                                [[s.node, s.slot, s.type, _dash(s.database), "yes" if s.active else "no",
                                  fmt_bytes(s.retained_bytes), _dash(s.wal_status),
                                  f"{'yes' if s.failover else 'no'} / {'yes' if s.synced else 'no'}"] for s in a.slots]))
    if a.subscriptions:
        blocks.append(TableData("subscriptions", ["node", "subscription", "database", "enabled", "worker", "tables ready",
                                                  "lag (bytes / time)", "errors (apply / sync)", "last error"],
                                [[s.node, s.subscription, s.database, "yes" if s.enabled else "no", s.worker,
                                  f"{s.tables_ready}/{s.tables_total}",
                                  f"{fmt_bytes(s.lag_bytes)} / {output.fmt_seconds(s.lag_seconds)}",
                                  f"{s.apply_errors} / {s.sync_errors}", _dash(s.last_error)] for s in a.subscriptions]))
    if a.links:
        rows = []
        for r in a.links:
            declared = "-" if r.declared_ms is None else f"{r.declared_ms:.0f} ms"
            if r.expected_ms is not None and r.expected_ms != r.declared_ms:
                declared += f" (set to {r.expected_ms:.0f} ms)"
            measured = "-" if r.measured_ms is None else f"{r.measured_ms:.1f} ms"
            rows.append(["" if r.ok else "!", f"{r.a} <-> {r.b}", declared, measured])
        blocks.append(TableData("latency (round trip)", ["", "regions", "declared", "measured"], rows))
    if a.manager is not None:
        blocks.extend(manager_screen(a.manager))
    for p in a.problems:
        blocks.append(Line(f"{p.severity}: {p.message}", PROBLEM_STYLE.get(p.severity, "")))
    if not any(p.severity == "error" for p in a.problems):
        up = sum(n.role != "down" for n in a.nodes)
        blocks.append(Line(f"✓ {up}/{len(a.nodes)} nodes up, replication as the file describes", "success"))
    return blocks


def manager_screen(r: ManagerReport) -> list[Block]:
    """Patroni's members beside what PostgreSQL says, and the etcd members."""
    blocks: list[Block] = []
    for c in r.clusters:
        if c.view is None:
            continue
        leader = c.view.leader.name if c.view.leader else "none"
        rows = [["" if m.agrees else "!", m.member, m.role, m.state, _dash(m.timeline),
                 "-" if m.lag_bytes is None else fmt_bytes(m.lag_bytes), ", ".join(m.pending_restart) or "-", m.tags,
                 m.postgres] for m in r.members if m.cluster == c.cluster]
        blocks.append(TableData(f"Patroni: cluster {c.cluster}, leader {leader} (asked {c.answered_by})",
                                ["", "member", "role", "state", "TL", "lag", "pending restart", "tags", "PostgreSQL"],
                                rows))
    if r.dcs is not None:
        rows = [["" if e.healthy else "!", e.name, e.region, e.container, "yes" if e.healthy else "no",
                 "yes" if e.is_leader else "", _dash(e.status.raft_term if e.status else None), _dash(e.error)]
                for e in r.dcs.members]
        blocks.append(TableData(f"DCS (etcd): {r.dcs.summary()}", ["", "member", "region", "container", "healthy",
                                                                     "leader", "term", "error"], rows))
    return blocks


def _fail_status(a: Assessment, *, listed: bool) -> None:
    if a.ok:
        return
    errs = [p.message for p in a.problems if p.severity == "error"]
    if a.split_brain:
        split = [p.message for p in a.problems if p.subject in a.split_brain]
        raise errors.PgtopoError(split[0], details=split[1:])
    if listed:  # printed with the tables just above: one summary line here
        raise errors.PgtopoError(f"{len(errs)} problem(s) in '{a.topology}' (listed above)")
    raise errors.PgtopoError(f"{len(errs)} problem(s) in '{a.topology}': {errs[0]}", details=errs[1:])


@commands.command()
def status(
    file: TopologyFile,
    seconds: Annotated[float | None, typer.Argument(metavar="SECONDS", show_default=False,
                                                    help="Refresh interval of --watch (default 2).")] = None,
    watch: Annotated[bool, typer.Option("--watch", help="Refresh in place until Ctrl-C: --watch [SECONDS].")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="JSON (schema in pgtopo/status.py); one line per "
                                                         "refresh with --watch.")] = False,
) -> None:
    """What really runs: roles, timelines, LSNs, upstreams, lag, slots, subscriptions, latency.

    Marks what differs from the file (! unexpected, ? unreachable). Exit 1 on any problem,
    split brain included.
    """
    from pgtopo.observe import status as st

    if seconds is not None and not watch:
        raise errors.InputError("SECONDS is the refresh interval of --watch: give --watch too")
    interval = DEFAULT_WATCH_SECONDS if seconds is None else seconds
    if interval <= 0:
        raise errors.InputError(f"the refresh interval must be positive (got {interval:g})")
    topo = _load(file)
    if not watch:
        a = st.observe(topo)
        if as_json:
            output.as_json(a.to_json())
        else:
            output.show(status_screen(a))
        _fail_status(a, listed=not as_json)
        return
    last: Assessment | None = None
    try:
        if as_json:
            while True:
                last = st.observe(topo)
                output.json_line(last.to_json())
                time.sleep(interval)
        with output.live() as update:
            while True:
                last = st.observe(topo)
                stamp = time.strftime("%H:%M:%S")
                update([Line(f"{stamp}  every {interval:g} s, Ctrl-C to stop", "dim"), *status_screen(last)])
                time.sleep(interval)
    except KeyboardInterrupt:
        # Ctrl-C ends a watch normally: the exit code is the last refresh's.
        raise typer.Exit(0 if last is None or last.ok else errors.EXIT_FAILED) from None


def _parse_size(text: str) -> int:
    units = {"": 1, "b": 1, "kb": 1024, "kib": 1024, "mb": 1024**2, "mib": 1024**2, "gb": 1024**3, "gib": 1024**3}
    t = text.strip().lower().replace(" ", "")
    num = t.rstrip("kmgib")
    unit = t[len(num):]
    try:
        value = float(num)
    except ValueError:
        value = -1
    if unit not in units or not math.isfinite(value) or value < 0:
        raise errors.InputError(f"--max-retained: '{text}' is not a size (examples: 64MiB, 1GB, 1048576)")
    return int(value * units[unit])


def verify_lines(r: VerifyReport) -> list[Block]:
    blocks: list[Block] = []
    for c in r.checks:
        blocks.append(Line(f"{'PASS' if c.passed else 'FAIL'}  {c.check:<13} {c.subject:<26} {c.reason}",
                           "" if c.passed else "error"))
    for e in r.edges:
        subject = f"{e.source} -> {e.target}"
        what = f"{e.kind}, {e.database}" + (f", {e.subscription}" if e.subscription else "")
        if e.passed and e.propagation_s is not None:
            detail = f"{output.fmt_seconds(e.propagation_s)} (declared RTT {e.declared_rtt_ms:.0f} ms; {what})"
        else:
            detail = f"{e.reason} ({what})"
        blocks.append(Line(f"{'PASS' if e.passed else 'FAIL'}  {'edge':<13} {subject:<26} {detail}",
                           "" if e.passed else "error"))
    total = r.passed + r.failed
    blocks.append(Line(f"✓ verify: all {total} checks passed" if r.ok else
                       f"verify: {r.failed} of {total} checks failed", "success" if r.ok else "error"))
    return blocks


@commands.command()
def verify(
    file: TopologyFile,
    as_json: Annotated[bool, typer.Option("--json", help="JSON (schema in pgtopo/verify.py).")] = False,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait for a probe row on each node.")] = 10.0,
    max_retained: Annotated[str, typer.Option("--max-retained", help="Most WAL an inactive slot may retain.")] = "64MiB",
) -> None:
    """Prove data flows on every edge (probe rows) and the topology matches the file. Exit 0 only if all pass."""
    from pgtopo.observe import verify as v

    if not math.isfinite(timeout) or timeout <= 0:
        raise errors.InputError(f"--timeout must be a positive number of seconds (got {timeout:g})")
    limit = _parse_size(max_retained)
    topo = _load(file)
    report = v.run(topo, topo_path=file, timeout=timeout, max_retained=limit)
    if as_json:
        output.as_json(report.to_json())
    else:
        output.show(verify_lines(report))
    if not report.ok:
        failed = [f"{c.check} {c.subject}" for c in report.checks if not c.passed]
        failed += [f"edge {e.source}->{e.target}" for e in report.edges if not e.passed]
        raise errors.PgtopoError(f"verify: {report.failed} check(s) failed: {', '.join(failed)}")

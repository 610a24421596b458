"""`pgtopo drill`: run a fault experiment from a drill file, judge it, and write its report."""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from pgtopo import errors
from pgtopo.cli import output
from pgtopo.cli.app import Commands, changing
from pgtopo.cli.output import Block, Line, TableData

if TYPE_CHECKING:
    from pgtopo.drill.runner import LiveStatus
    from pgtopo.drill.verdict import Verdict

commands = Commands("drill", help="Fault experiments: a workload, faults on a timeline, a verdict and a report.")

DrillFile = Annotated[Path, typer.Argument(help="The drill file (YAML).", show_default=False)]
TopologyOverride = Annotated[Path | None, typer.Option(
    "--topology", "-t", help="Run against this topology file instead of the one the drill names.", show_default=False)]
PLAIN_STATUS_EVERY_S = 5.0


def verdict_screen(v: Verdict) -> list[Block]:
    rows = [[c.key, c.subject, c.measured, c.expected, c.result] for c in v.checks]
    blocks: list[Block] = [TableData(f"verdict of drill {v.drill}", ["expectation", "subject", "measured", "expected",
                                                                      "result"], rows)]
    for c in v.failed:
        blocks.append(Line(f"FAIL {c.key} {c.subject}".rstrip(), "error"))
        blocks.extend(Line(f"  {d}", "dim") for d in c.details)
    return blocks


def live_screen(s: LiveStatus) -> list[Block]:
    rows = [[w.writer, f"{w.per_s:.0f}", str(w.errors)] for w in s.writers]
    prim = "; ".join(f"{c}: {', '.join(n) or '-'}" for c, n in s.primaries.items())
    head = f"drill {s.drill}: {s.elapsed:5.1f} s of {s.duration:g} s   writable: {prim}"
    doing = f"running: {s.running}" if s.running else (f"next: {s.next_step}" if s.next_step else "")
    blocks: list[Block] = [Line(head, "info"), TableData(None, ["writer", "commits/s", "errors"], rows)]
    reads = f"reads {s.reads}, stale {s.stale}" + (f"; bank violations {s.bank_violations}" if s.bank_violations else "")
    blocks.append(Line(reads, "warning" if s.stale or s.bank_violations else ""))
    if doing:
        blocks.append(Line(doing))
    blocks.extend(Line(m, "dim") for m in s.messages)
    return blocks


class _PlainStatus:
    """Piped output (CI logs): new messages as they come, a status line every few seconds."""

    def __init__(self) -> None:
        self.shown = 0
        self.last = 0.0

    def __call__(self, s: LiveStatus) -> None:
        new = s.message_count - self.shown
        for m in s.messages[len(s.messages) - min(new, len(s.messages)):] if new > 0 else ():
            output.err.print(m, markup=False)
        self.shown = s.message_count
        if time.monotonic() - self.last >= PLAIN_STATUS_EVERY_S:
            self.last = time.monotonic()
            rates = ", ".join(f"{w.writer} {w.per_s:.0f}/s ({w.errors} errors)" for w in s.writers)
            output.err.print(f"[drill {s.elapsed:5.1f}s] {rates}; reads {s.reads}, stale {s.stale}", markup=False)


def _show(v: Verdict, *, as_json: bool) -> None:
    from pgtopo.drill.report import verdict_json

    if as_json:
        output.as_json(verdict_json(v))
    else:
        output.show(verdict_screen(v))
    if not v.passed:
        failed = ", ".join(f"{c.key} {c.subject}".rstrip() for c in v.failed)
        raise errors.PgtopoError(f"drill {v.drill} FAILED: {len(v.failed)} of "
                                 f"{sum(c.passed is not None for c in v.checks)} checks ({failed})")


@commands.command("run")
def run(
    file: DrillFile,
    topology: TopologyOverride = None,
    report: Annotated[Path | None, typer.Option(
        "--report", "-r", help="The report folder (default drill-reports/<drill>-<time>).", show_default=False)] = None,
    no_report: Annotated[bool, typer.Option("--no-report", help="Write no report folder.")] = False,
    recreate: Annotated[bool, typer.Option(
        "--recreate", help="Remove the topology and its data first, and bring it up afresh.")] = False,
    down: Annotated[bool, typer.Option("--down", help="Remove the topology and its data afterwards.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="The verdict as JSON.")] = False,
) -> None:
    """Run a drill: a workload throughout, its steps on time, then the verdict (exit 1 if an expectation fails).

    The topology is brought up if it is not running; it must be whole (every node up and streaming, no
    partition or latency override). Writes the report folder: index.html, PNG charts, verdict.json, events.json.
    """
    from pgtopo.drill import runner, spec

    d = spec.load(file)
    topo = runner.prepare(file, topology=topology)[2]
    folder = None if no_report else (report or Path("drill-reports") / f"{d.drill}-{datetime.now():%Y%m%d-%H%M%S}")
    printer = output.StepPrinter()
    # A drill changes the topology throughout (faults, failovers): no other command may meanwhile.
    with changing(topo.name, no_wait=False, create=True):
        if output.out.is_terminal and not as_json:
            with output.live() as update:
                result = runner.run(file, topology=topology, recreate=recreate, remove=down, report_dir=folder,
                                    on_status=lambda s: update(live_screen(s)), progress=printer)
        else:
            result = runner.run(file, topology=topology, recreate=recreate, remove=down, report_dir=folder,
                                on_status=_PlainStatus(), progress=printer)
    for note in result.notes:
        output.warn(note)
    if not as_json:
        output.info(f"drill {d.drill}: workload {result.log.ended:.1f} s, wall time {result.wall_s:.1f} s"
                    + (f"; report in {result.report_dir}" if result.report_dir else ""))
    _show(result.verdict, as_json=as_json)


@commands.command("validate")
def validate(file: DrillFile, topology: TopologyOverride = None) -> None:
    """Check a drill file and the names it uses against its topology; print every problem as path: message."""
    from pgtopo.drill import runner

    try:
        d, topo_path, topo, target = runner.prepare(file, topology=topology)
    except errors.ValidationFailed as exc:
        output.error_lines(exc.problems)
        output.error_lines([f"{file}: {len(exc.problems)} problem(s)"])
        raise typer.Exit(errors.EXIT_BAD_INPUT) from None
    subs = f", {len(target.subscribers)} subscriber(s)" if target.subscribers else ""
    n = len(d.steps)
    output.success(f"{file}: drill '{d.drill}' is valid: {n} step{'' if n == 1 else 's'} in {d.duration:g} s against topology "
                   f"'{topo.name}' ({topo_path.name}), cluster {target.cluster}, database {target.database}{subs}")


@commands.command("schema")
def schema() -> None:
    """Print the JSON Schema of the drill file (for editor completion)."""
    from pgtopo.drill.spec import json_schema

    output.as_json(json_schema())


@commands.command("judge")
def judge(
    folder: Annotated[Path, typer.Argument(help="A drill's report folder.", show_default=False)],
    as_json: Annotated[bool, typer.Option("--json", help="The verdict as JSON.")] = False,
) -> None:
    """Judge a report folder's recorded events again (the same verdict, without running anything)."""
    from pgtopo.drill import events, spec, verdict

    try:
        log = events.from_json(json.loads((folder / "events.json").read_text()))
        d = spec.parse(json.loads((folder / "drill.json").read_text()))
    except FileNotFoundError as exc:
        raise errors.InputError(f"{folder}: not a drill report ({Path(str(exc.filename)).name} missing)") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise errors.InputError(f"{folder}: unreadable drill report ({exc})") from None
    _show(verdict.judge(log, d.expect), as_json=as_json)

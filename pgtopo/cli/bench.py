"""`pgtopo bench ryw`: read-your-writes under simulated latency, per routing strategy."""

from __future__ import annotations

from typing import Annotated

import typer

from pgtopo.cli import output
from pgtopo.cli.app import ClusterOption, Commands, NoWaitOption, TopologyFile, changing
from pgtopo.cli.app import load_topology as _load
from pgtopo.cli.completion import complete_region

commands = Commands("bench", help="Benchmarks against a running topology.")


@commands.command("ryw")
def ryw(
    file: TopologyFile,
    region: Annotated[str, typer.Option("--region", "-r", help="Where the sessions run.", show_default=False,
                                          autocompletion=complete_region)],
    strategies: Annotated[str, typer.Option(help="Comma-separated: lsn, time-window, primary-only, replica-only.")]
    = "lsn,time-window,primary-only,replica-only",
    sessions: Annotated[int, typer.Option(help="Concurrent sessions.", min=1, max=64)] = 4,
    ops: Annotated[int, typer.Option(help="Write-then-read operations per session.", min=1)] = 50,
    slow_link: Annotated[float | None, typer.Option(
        "--slow-link", metavar="MS",
        help="RTT between the primary's and the replica's regions during the run (restored afterwards).")] = None,
    max_wait: Annotated[float | None, typer.Option(
        "--max-wait", metavar="MS", help="lsn: longest wait for the replica (default: twice the expected lag).")] = None,
    cluster: ClusterOption = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    no_wait: NoWaitOption = False,
) -> None:
    """Sessions in REGION write a row and read it back at once: stale reads, reads served
    locally, read and write latency per strategy. Uses a table of pgtopo's own, dropped afterwards.

    Without --cluster: the first cluster with replicas (else the first cluster).
    """
    from pgtopo.apps import routing_bench as bench

    chosen = bench.parse_strategies(strategies)
    printer = output.StepPrinter()
    topo = _load(file)
    with changing(topo.name, no_wait=no_wait):  # it slows a link and creates a table of its own
        result = bench.run(topo, region=region, strategies=chosen, sessions=sessions, ops=ops,
                           slow_link_ms=slow_link, cluster=cluster, max_wait_ms=max_wait, progress=printer)
    if as_json:
        output.as_json({"setup": result.setup.__dict__, "strategies": [s.to_json() for s in result.stats]})
        return
    output.info(bench.describe(result.setup))
    output.table(None, bench.columns(), bench.rows(result))

"""Simulated network: the latency matrix, changing a link, partitions and heals."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from pgtopo.cli import output
from pgtopo.cli.app import Commands, NoWaitOption, TopologyFile, changing
from pgtopo.cli.app import load_topology as _load
from pgtopo.cli.completion import complete_region, complete_region_or_node
from pgtopo.errors import InputError

if TYPE_CHECKING:
    from pgtopo.network.latency import LinkSetting

PANEL = "Network simulation"
commands = Commands()
latency = Commands("latency", help="Region-pair round trips: show them, change a link while the topology runs, "
                   "reset to the file's values.", rich_help_panel=PANEL)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:g} ms"


def _setting(s: LinkSetting | None) -> str:
    if s is None:
        return "-"
    return f"{s.rtt_ms:g} ms" + (f" ±{s.jitter_ms:g}" if s.jitter_ms else "")


def _show(file: TopologyFile, *, as_json: bool) -> None:
    from pgtopo.network import latency

    rep = latency.report(_load(file))
    if as_json:
        output.as_json(rep.to_json())
        return
    rows = []
    for r in rep.rows:
        effect = _setting(r.in_effect) + (" (override)" if r.overridden else "")
        state = f"partitioned ({', '.join(r.cut)})" if r.cut else ("" if rep.running else "not running")
        rows.append([f"{r.a} <-> {r.b}", _setting(r.declared), effect if rep.running else "-",
                     _ms(r.measured_ms), state])
    output.table(f"latency of '{rep.topology}' (round trip)",
                 ["regions", "declared", "in effect", "measured", "state"], rows)
    output.info(f"mechanism: {rep.mechanism.describe()}")
    if rep.partitioned:
        output.info(f"partitioned: {', '.join(rep.partitioned)} (heal with `pgtopo heal FILE`)")
    for note in rep.notes:
        output.warn(note)


@latency.command("show")
def latency_show(
    file: TopologyFile,
    as_json: Annotated[bool, typer.Option("--json", help="The matrix as JSON.")] = False,
) -> None:
    """Region-pair round trips: declared (file), in effect (relay) and measured (relay probe)."""
    _show(file, as_json=as_json)


@latency.command("set")
def latency_set(
    file: TopologyFile,
    region_a: Annotated[str, typer.Argument(metavar="REGION_A", help="One end of the link.", show_default=False,
                                               autocompletion=complete_region)],
    region_b: Annotated[str, typer.Argument(metavar="REGION_B", help="The other end.", show_default=False,
                                               autocompletion=complete_region)],
    rtt: Annotated[str, typer.Argument(metavar="RTT", help="The round trip, e.g. 120ms.", show_default=False)],
    jitter: Annotated[str | None, typer.Option(
        "--jitter", help="+/- range of each one-way delay, e.g. 5ms (default 0).", show_default=False)] = None,
    no_wait: NoWaitOption = False,
) -> None:
    """Change a link of the running topology (e.g. us-east eu-west 120ms); the file is left as it is."""
    from pgtopo.network import latency as lat

    topo = _load(file)
    with changing(topo.name, no_wait=no_wait):
        s = lat.set_link(topo, region_a, region_b, rtt=rtt, jitter=jitter)
    output.success(f"{region_a} <-> {region_b}: round trip {_setting(s)} in effect on '{topo.name}'")
    output.info("measure with `pgtopo latency show FILE`")


@latency.command("reset")
def latency_reset(
    file: TopologyFile,
    region_a: Annotated[str | None, typer.Argument(
        metavar="REGION_A", help="One end of the link to reset (default: every link).", show_default=False,
        autocompletion=complete_region)] = None,
    region_b: Annotated[str | None, typer.Argument(
        metavar="REGION_B", help="The other end (give both regions or neither).", show_default=False,
        autocompletion=complete_region)] = None,
    no_wait: NoWaitOption = False,
) -> None:
    """The file's latencies again on the running topology: every link, or only REGION_A <-> REGION_B."""
    from pgtopo.network import latency as lat

    if (region_a is None) != (region_b is None):
        raise InputError("usage: pgtopo latency reset FILE [REGION_A REGION_B] (both regions of the link, or none)")
    topo = _load(file)
    with changing(topo.name, no_wait=no_wait):
        done = lat.reset(topo, (region_a, region_b) if region_a is not None and region_b is not None else None)
    what = ", ".join(k.replace("|", " <-> ") for k in done) or "nothing was overridden"
    output.success(f"the file's latencies are in effect on '{topo.name}' (reset: {what})")
    output.info("measure with `pgtopo latency show FILE`")


@commands.command(rich_help_panel=PANEL)
def partition(
    file: TopologyFile,
    name: Annotated[str, typer.Argument(help="A region or a node to cut off.", show_default=False,
                                         autocompletion=complete_region_or_node)],
    no_wait: NoWaitOption = False,
) -> None:
    """Cut all cross-region traffic of a region or node (blackhole: sockets stay open, nothing passes)."""
    from pgtopo.network import latency

    topo = _load(file)
    with changing(topo.name, no_wait=no_wait):
        ch = latency.partition(topo, name)
    for path in ch.paths:
        output.info(f"  cut: {path}")
    if ch.changed:
        output.success(f"{ch.kind} {name} is partitioned from the other regions of '{topo.name}'; PostgreSQL "
                       "notices within about 5-10 s (wal_sender/wal_receiver_timeout 5 s)")
    else:
        output.success(f"{ch.kind} {name} was already partitioned; nothing changed")


@commands.command(rich_help_panel=PANEL)
def heal(
    file: TopologyFile,
    name: Annotated[str | None, typer.Argument(help="The region or node to heal (default: every partition).",
                                               show_default=False, autocompletion=complete_region_or_node)] = None,
    no_wait: NoWaitOption = False,
) -> None:
    """Restore the traffic a partition cut; blackholed connections are reset so clients reconnect."""
    from pgtopo.network import latency

    topo = _load(file)
    with changing(topo.name, no_wait=no_wait):
        ch = latency.heal(topo, name)
    for path in ch.paths:
        output.info(f"  restored: {path}")
    if not ch.changed:
        output.success(f"nothing was partitioned in '{topo.name}'")
    else:
        left = f"; still partitioned: {', '.join(ch.partitioned)}" if ch.partitioned else ""
        output.success(f"healed {name or 'every partition'} in '{topo.name}'{left}")

"""Commands on the topology file and the running topology's lifecycle."""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from pgtopo import errors
from pgtopo.cli import output
from pgtopo.cli.app import Commands, NoWaitOption, TopologyFile, changing
from pgtopo.cli.app import load_topology as _load

commands = Commands()
image = Commands("image", help="The PostgreSQL image (built locally, no registry needed).")


@commands.command()
def validate(file: TopologyFile) -> None:
    """Check a topology file; print every problem as path.to.field: message."""
    try:
        topo = _load(file)
    except errors.ValidationFailed as exc:
        output.error_lines(exc.shown)
        output.error_lines([f"{file}: {len(exc.problems)} problem(s)"])
        raise typer.Exit(errors.EXIT_BAD_INPUT) from None
    nodes = topo.all_nodes()
    replicas = sum(1 for _c, _n, node in nodes if node.role == "replica")
    pubs = sum(len(c.publications) for c in topo.clusters.values())
    subs = sum(len(c.subscriptions) for c in topo.clusters.values())
    output.success(
        f"{file}: topology '{topo.name}' is valid: {len(topo.regions)} regions, {len(topo.clusters)} clusters, "
        f"{len(nodes)} nodes ({replicas} replicas), {pubs} publications, {subs} subscriptions"
    )


@commands.command()
def render(
    file: TopologyFile,
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory to write <node>/<file> into.")] = Path("rendered"),
) -> None:
    """Write each node's postgresql.conf, pg_hba.conf and SQL: the files `up` uses."""
    from pgtopo.model import render as r

    topo = _load(file)
    written = r.write(r.render_all(topo, topo_path=file), out)
    for p in written:
        output.info(str(p))
    output.success(f"{len(written)} files for {len(topo.node_names())} nodes in {out}")


class GraphFormat(StrEnum):
    tree = "tree"
    mermaid = "mermaid"
    dot = "dot"


@commands.command()
def graph(
    file: TopologyFile,
    fmt: Annotated[GraphFormat, typer.Option("--format", "-f", help="tree, mermaid or dot")] = GraphFormat.tree,
) -> None:
    """Draw the topology: regions, nodes, physical and logical replication, latencies."""
    from pgtopo.model import graph as g

    output.info(g.FORMATS[fmt.value](_load(file)).rstrip("\n"))


@commands.command()
def schema() -> None:
    """Print the JSON Schema of the topology file (for editor completion)."""
    from pgtopo.model.loader import json_schema

    output.as_json(json_schema())


@commands.command()
def up(file: TopologyFile, no_wait: NoWaitOption = False) -> None:
    """Start the topology in Docker; returns when every replica streams and every subscription is ready."""
    from pgtopo.lifecycle import deploy

    topo = _load(file)
    with changing(topo.name, no_wait=no_wait, create=True):
        # Under the lock: what `up` reads (the current primaries) no failover changes meanwhile.
        result = deploy.up(topo, topo_path=file, progress=output.StepPrinter())
    def url(cluster: str, port: int | None) -> str:
        db = next(iter(topo.clusters[cluster].databases), "postgres")
        return f"postgresql://app@127.0.0.1:{port}/{db}" if port else "-"

    rows = [[s.node, s.cluster, s.region, s.role, url(s.cluster, s.port),
             s.this_run] for s in result.summaries]
    output.table(None, ["node", "cluster", "region", "role", "connection (published on 127.0.0.1 only)",
                        "this run"], rows)
    output.info(f"passwords and per-region URLs (through the simulated WAN): pgtopo env {file} --region REGION")
    if result.created_any:
        output.success(f"topology '{topo.name}' is up in {result.phases['total']:.1f} s")
    else:
        output.success(f"topology '{topo.name}' is already up; nothing changed")


DOWN_WITHOUT_FILE = "`pgtopo down --name NAME` removes a topology without reading its file (`pgtopo ls` lists the names)"


@commands.command()
def down(
    file: Annotated[Path | None, typer.Argument(
        help="The topology file (YAML); not needed with --name.", show_default=False)] = None,
    name: Annotated[str | None, typer.Option(
        "--name", help="The topology to remove, by name (see `pgtopo ls`): no file needed, for a file that was "
                       "deleted or no longer loads.", show_default=False)] = None,
    volumes: Annotated[bool, typer.Option("--volumes", "-v", help="Also remove the data volumes.")] = False,
    no_wait: NoWaitOption = False,
) -> None:
    """Remove every container and network labelled for this topology (volumes with --volumes)."""
    from pgtopo.lifecycle import deploy
    from pgtopo.model.topology import check_topology_name

    if (file is None) == (name is None):
        raise errors.InputError("give the topology file or --name NAME, not both" if file is not None else
                                "give the topology file, or --name NAME (`pgtopo ls` lists the names)")
    if file is not None:
        try:
            target = _load(file).name
        except errors.InputError as exc:
            # The file cannot say which topology it is: removing goes by name instead.
            lines = exc.lines()
            raise errors.InputError(lines[0], details=[*lines[1:], _down_hint(file)]) from None
    else:
        assert name is not None
        target = check_topology_name(name)
    with changing(target, no_wait=no_wait):
        removed = deploy.down(target, volumes=volumes)
    output.success(
        f"removed {removed['containers']} containers, {removed['networks']} networks, "
        f"{removed['volumes']} volumes of '{target}'"
    )
    if name is not None and not any(removed.values()) and name not in deploy.running():
        output.warn(f"nothing in Docker is labelled for '{name}': `pgtopo ls` lists the topologies")
    if not volumes and removed["containers"]:
        output.info("the data volumes are kept: `pgtopo up FILE` starts every node again on its data, in the "
                    "role it had; `--volumes` removes them")


def _down_hint(file: Path) -> str:
    """How to remove the topology of a file that does not load: by the name it says, if it says one."""
    from pgtopo.model.loader import load_yaml
    from pgtopo.model.topology import NAME_PATTERN

    try:
        named = load_yaml(file).get("name")
    except errors.InputError:
        named = None
    if isinstance(named, str) and re.match(NAME_PATTERN, named):
        return f"to remove it anyway: `pgtopo down --name {named}` (by label, no file needed; `pgtopo ls` lists the names)"
    return DOWN_WITHOUT_FILE


@commands.command("ls")
def list_topologies(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List the topologies in Docker: running, stopped, or only their data volumes (kept by `down`)."""
    from pgtopo.lifecycle import deploy

    data = deploy.running()
    if as_json:
        output.as_json(data)
        return
    if not data:
        output.info("no topology is in Docker")
        return
    rows = [[n, f"{d['running']}/{d['nodes']}", str(d["volumes"]), str(d["file"] or "-")] for n, d in data.items()]
    output.table(None, ["topology", "nodes running", "volumes", "file"], rows)
    for n, d in data.items():
        if not d["nodes"]:
            output.info(f"{n}: no container, only its data volumes (kept by `down`); "
                        f"`pgtopo down --name {n} --volumes` removes them")


@image.command("build")
def image_build(
    version: Annotated[int, typer.Option(help="PostgreSQL major version.")] = 17,
    tag: Annotated[str | None, typer.Option(help="Image tag (default pgtopo/postgres:VERSION).")] = None,
) -> None:
    """Build the PostgreSQL image from Debian packages (mmdebstrap + docker import)."""
    from pgtopo.runtime import image

    target = tag or f"pgtopo/postgres:{version}"
    printer = output.StepPrinter()
    image.build(target, version=version, progress=lambda m: printer("image", m))
    output.success(f"built {target}")


@image.command("ensure")
def image_ensure(
    version: Annotated[int, typer.Option(help="PostgreSQL major version.")] = 17,
    tag: Annotated[str | None, typer.Option(help="Image tag (default pgtopo/postgres:VERSION).")] = None,
) -> None:
    """Build the image unless it exists and was built from this pgtopo's recipe (packages, suite)."""
    from pgtopo.runtime import image

    target = tag or f"pgtopo/postgres:{version}"
    printer = output.StepPrinter()
    if image.ensure(target, version=version, progress=lambda m: printer("image", m)):
        output.success(f"built {target}")
    else:
        output.info(f"{target} is up to date (recipe {image.recipe(version)})")



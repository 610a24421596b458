"""`pgtopo env`: the URLs an application in a region uses (PRIMARY_DATABASE_URL and friends)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from pgtopo.cli import output
from pgtopo.cli.app import ClusterOption, Commands, TopologyFile
from pgtopo.cli.app import load_topology as _load
from pgtopo.cli.completion import complete_region

commands = Commands()


class EnvFormat(StrEnum):
    shell = "shell"
    json = "json"
    dotenv = "dotenv"


@commands.command()
def env(
    file: TopologyFile,
    region: Annotated[str, typer.Option("--region", "-r", help="Where the application runs.", show_default=False,
                                          autocompletion=complete_region)],
    fmt: Annotated[EnvFormat, typer.Option("--format", "-f", help="shell (export lines), json or dotenv")] = EnvFormat.shell,
    cluster: ClusterOption = None,
) -> None:
    """Print PRIMARY_DATABASE_URL, LOCAL_READ_REPLICA_URL and DATABASE_URL_MULTIHOST as seen from REGION.

    Nodes in other regions are reached through the latency relay, so the application pays the
    declared round trip. Use: eval "$(pgtopo env FILE --region eu-west)".

    Without --cluster: the first cluster with replicas (else the first cluster).
    """
    from pgtopo.apps import endpoints

    ep = endpoints.app_endpoints(_load(file), region=region, cluster=cluster)
    output.info(endpoints.render(ep, fmt=fmt.value))

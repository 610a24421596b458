"""Shell completion of the names a topology file declares: nodes, regions, clusters, publications
and subscriptions.

The functions named after what they complete (``nodes(path, incomplete)``...) are pure over the
file; the ``complete_*`` callbacks give typer the file named earlier on the command line
(``ctx.params["file"]``). A completion never fails: no file yet, or a missing or broken one,
completes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import typer

from pgtopo.model import loader
from pgtopo.model.topology import Topology

Names = Callable[[Path | str | None, str], list[str]]


def _topology(path: Path | str | None) -> Topology | None:
    if not path:
        return None
    try:
        return loader.load(path)
    except Exception:
        # Any failure, not only pgtopo's errors: an exception here would print a traceback into
        # the user's command line at every Tab. A file that cannot be read completes nothing.
        return None


def _matching(names: list[str], incomplete: str) -> list[str]:
    return [n for n in dict.fromkeys(names) if n.startswith(incomplete)]


def nodes(path: Path | str | None, incomplete: str) -> list[str]:
    topo = _topology(path)
    return _matching(topo.node_names(), incomplete) if topo else []


def regions(path: Path | str | None, incomplete: str) -> list[str]:
    topo = _topology(path)
    return _matching(list(topo.regions), incomplete) if topo else []


def regions_and_nodes(path: Path | str | None, incomplete: str) -> list[str]:
    topo = _topology(path)
    return _matching([*topo.regions, *topo.node_names()], incomplete) if topo else []


def clusters(path: Path | str | None, incomplete: str) -> list[str]:
    topo = _topology(path)
    return _matching(list(topo.clusters), incomplete) if topo else []


def publications(path: Path | str | None, incomplete: str) -> list[str]:
    topo = _topology(path)
    return _matching([p for c in topo.clusters.values() for p in c.publications], incomplete) if topo else []


def subscriptions(path: Path | str | None, incomplete: str) -> list[str]:
    topo = _topology(path)
    return _matching([s for c in topo.clusters.values() for s in c.subscriptions], incomplete) if topo else []


def _file_of(ctx: typer.Context) -> Path | str | None:
    """The FILE argument given so far. While an option's value is completed (``--region <Tab>``),
    click stops parsing at that option before it assigns the positional arguments: FILE, the first
    argument of every command that completes names, is then the first of the leftover ``ctx.args``."""
    file: Path | str | None = ctx.params.get("file")
    return file if file else next(iter(ctx.args), None)


def _from_file(names: Names) -> Callable[[typer.Context, str], list[str]]:
    """A typer ``autocompletion`` callback: ``names`` of the topology file given as FILE."""
    def complete(ctx: typer.Context, incomplete: str) -> list[str]:
        return names(_file_of(ctx), incomplete)

    return complete


complete_node = _from_file(nodes)
complete_region = _from_file(regions)
complete_region_or_node = _from_file(regions_and_nodes)
complete_cluster = _from_file(clusters)
complete_publication = _from_file(publications)
complete_subscription = _from_file(subscriptions)

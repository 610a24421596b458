"""One scenario, in file order, on an image laid out like the official ``postgres:17``.

That image declares ``VOLUME /var/lib/postgresql/data``. CI cannot pull it, so this module builds
one with the same layout FROM the local ``pgtopo/postgres:17`` (nothing pulled), and runs a small
topology (``ur-official``: a primary pg-a and its replica pg-b in another region) on it:
1. `up`: every node's data is on its named volume, and Docker made no anonymous volume;
2. kill pg-a and `failover`: the loss is read exactly from pg-a's stopped volume;
3. `rejoin pg-a`: it streams from pg-b;
4. `down` then `up`: the nodes start again on their data, pg-b still the primary;
5. `down --volumes` leaves no volume with the label, and no anonymous one.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pgtopo.lifecycle import deploy
from pgtopo.model.loader import load
from pgtopo.model.topology import Topology
from pgtopo.observe import snapshot
from pgtopo.postgres import connect
from pgtopo.runtime import gateway, state
from tests.support.docker import cli, wait_for

NAME = "ur-official"
IMAGE = "pgtopo-test/postgres-official-layout:17"
# What matters of postgres:17's layout: PGDATA's directory (owned by postgres, mode 1777) is a VOLUME.
DOCKERFILE = """\
FROM pgtopo/postgres:17
RUN mkdir -p /var/lib/postgresql/data && chown postgres:postgres /var/lib/postgresql/data \\
    && chmod 1777 /var/lib/postgresql/data
ENV PGDATA=/var/lib/postgresql/data
VOLUME /var/lib/postgresql/data
STOPSIGNAL SIGINT
"""
TOPOLOGY = f"""
name: {NAME}
postgres: {{version: 17, image: {IMAGE}}}
regions: {{r1: {{}}, r2: {{}}}}
latency:
  - {{between: [r1, r2], rtt_ms: 10}}
clusters:
  main:
    databases:
      shop: {{schema: "CREATE TABLE items (id bigint PRIMARY KEY);"}}
    nodes:
      pg-a: {{region: r1, role: primary}}
      pg-b: {{region: r2, upstream: pg-a, failover_priority: 100}}
"""
SEEN: set[str] = set()  # every volume a container of the topology mounted


@pytest.fixture(scope="module")
def topo(tmp_path_factory: pytest.TempPathFactory, state_env: Path) -> Iterator[tuple[Topology, Path]]:
    gateway.build_image(DOCKERFILE, tag=IMAGE)
    deploy.down(NAME, volumes=True)
    path = tmp_path_factory.mktemp(NAME) / "official.yaml"
    path.write_text(TOPOLOGY)
    try:
        yield load(path), path
    finally:
        deploy.down(NAME, volumes=True)


def mounts() -> dict[str, dict[str, str]]:
    """node -> {volume: where}; every volume seen is remembered for the last step."""
    out = {}
    for c in gateway.containers(NAME, kind="node"):
        m = gateway.volume_mounts(c)
        SEEN.update(m)
        out[c.labels[gateway.LABEL_NODE]] = m
    return out


def insert(node: str, i: int) -> None:
    with connect.connect(NAME, node, dbname="shop") as conn:
        conn.execute("INSERT INTO items VALUES (%s)", (i,))


def count(node: str) -> int:
    with connect.connect(NAME, node, dbname="shop") as conn:
        row = conn.execute("SELECT count(*) FROM items").fetchone()
    return int(str(row[0])) if row else 0


def test_data_is_on_the_named_volume(topo: tuple[Topology, Path]) -> None:
    _topo, path = topo
    code, out = cli("up", str(path))
    assert code == 0, out
    assert mounts() == {n: {gateway.volume_name(NAME, n): gateway.PG_DATA_MOUNT} for n in ("pg-a", "pg-b")}
    insert("pg-a", 1)
    wait_for(lambda: count("pg-b") == 1, what="row 1 on pg-b")


def test_failover_reads_the_loss_from_the_volume(topo: tuple[Topology, Path]) -> None:
    t, path = topo
    assert cli("kill", str(path), "pg-a")[0] == 0
    code, out = cli("failover", str(path), "--yes")
    assert code == 0, out
    assert "pg-a's WAL read from its volume" in out
    assert state.current_primaries(t)["main"] == "pg-b"
    mounts()


def test_rejoin(topo: tuple[Topology, Path]) -> None:
    t, path = topo
    code, out = cli("rejoin", str(path), "pg-a")
    assert code == 0, out
    insert("pg-b", 2)
    wait_for(lambda: count("pg-a") == 2, what="row 2 on pg-a")
    assert snapshot.collect(t).nodes["pg-a"].upstream == "pg-b"


def test_down_then_up_on_the_same_data(topo: tuple[Topology, Path]) -> None:
    t, path = topo
    assert cli("down", str(path))[0] == 0
    code, out = cli("up", str(path))
    assert code == 0, out
    assert out.count("starting on the data its volume kept") == 2
    assert snapshot.collect(t).writable("main") == ["pg-b"]
    assert count("pg-a") == count("pg-b") == 2
    assert mounts() == {n: {gateway.volume_name(NAME, n): gateway.PG_DATA_MOUNT} for n in ("pg-a", "pg-b")}


def test_down_volumes_leaves_no_volume(topo: tuple[Topology, Path]) -> None:
    _t, path = topo
    code, out = cli("down", str(path), "--volumes")
    assert code == 0, out
    assert not gateway.volumes(NAME)
    existing = {v.name for v in gateway.client().volumes.list()}
    assert SEEN and not SEEN & existing

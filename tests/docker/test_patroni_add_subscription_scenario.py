"""add- and remove-subscription with a Patroni publisher (the global-saas-patroni design as ``pe-gsp-sub``).

Cluster main (ha: patroni) gets a second subscriber channel at run time: ``orders`` to billing's
pg-billing. The command goes through Patroni: the subscription's slot becomes one of Patroni's
permanent slots (``PATCH /config``) before ``CREATE SUBSCRIPTION ... create_slot = false`` with
`up`'s multi-host conninfo; remove-subscription takes it out of Patroni's configuration and the
slot goes from the leader.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from pgtopo.model import patroni, render
from pgtopo.model.loader import load
from pgtopo.model.topology import Topology
from pgtopo.patroni import api
from pgtopo.postgres import connect
from pgtopo.runtime import gateway
from tests.support.docker import cli, up_from_text, wait_for
from tests.support.topologies import TOPOLOGIES

SHIPPED = (TOPOLOGIES / "global-saas-patroni.yaml").read_text()
TOPOLOGY = SHIPPED.replace("name: global-saas-patroni\n", "name: pe-gsp-sub\n")
assert TOPOLOGY != SHIPPED
SLOT = {"type": "logical", "database": "production", "plugin": "pgoutput"}


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, state_env: Path) -> Iterator[tuple[Topology, Path]]:
    with up_from_text(tmp_path_factory.mktemp("pe-gsp-sub"), TOPOLOGY, file="gsp.yaml") as up:
        yield up


def _slots_on(topo: Topology, node: str, name: str) -> int:
    with connect.connect(topo.name, node) as conn:
        row = conn.execute("SELECT count(*) FROM pg_replication_slots WHERE slot_name = %s", (name,)).fetchone()
    assert row is not None
    return int(str(row[0]))


def test_add_then_remove_a_subscription_to_a_patroni_publisher(lab: tuple[Topology, Path]) -> None:
    topo, path = lab
    ep = api.endpoint(topo.name, "pg-us", password=api.rest_password(topo.name))
    args = ("add-subscription", str(path), "--subscriber", "pg-billing", "--publisher", "pg-us", "--tables", "orders",
            "--name", "orders_sub")

    # The rehearsal shows the REST call and changes nothing.
    rc, out = cli(*args, "--dry-run")
    assert rc == 0, out
    assert 'PATCH /config {"slots": {"orders_sub": {"type": "logical", "database": "production"' in out, out
    assert "create_slot = false" in out and "target_session_attrs=read-write" in out, out
    assert "orders_sub" not in api.config(ep)["slots"]  # type: ignore[operator]
    assert "orders_sub" not in path.read_text()

    rc, out = cli(*args)
    assert rc == 0, out

    # Patroni's configuration lists the slot; the leader has it; the subscription uses it.
    config = api.config(ep)
    assert config["slots"]["orders_sub"] == SLOT, config  # type: ignore[index]
    assert config["slots"]["inventory_sub"] == SLOT, config  # type: ignore[index]  # left as it was
    leader = api.cluster(ep).leader
    assert leader is not None
    assert _slots_on(topo, leader.name, "orders_sub") == 1
    with connect.connect(topo.name, "pg-billing", dbname="production") as conn:
        row = conn.execute("SELECT subconninfo, subslotname FROM pg_subscription WHERE subname = 'orders_sub'").fetchone()
    assert row is not None
    info, slot = str(row[0]), row[1]
    assert slot == "orders_sub"
    assert "target_session_attrs=read-write" in info and "," in info.split("host=")[1].split()[0], info

    # The file records it, and the patroni.yml rendered from it lists the slot as permanent.
    after = load(path)
    assert "orders_sub" in after.clusters["billing"].subscriptions
    rendered = YAML(typ="safe").load(render.patroni_yml(after, node="pg-us", source=str(path)))
    assert rendered["bootstrap"]["dcs"]["slots"]["orders_sub"] == SLOT
    assert patroni.permanent_slots(after, "main")["orders_sub"] == SLOT

    # A row written on the leader arrives.
    with connect.connect(topo.name, leader.name, dbname="production") as conn:
        pid = conn.execute("INSERT INTO products (sku, name, price_cents) VALUES ('pe-1', 'pe', 100) "
                           "RETURNING id").fetchone()
        assert pid is not None
        oid_row = conn.execute("INSERT INTO orders (product_id, quantity) VALUES (%s, 7) RETURNING id",
                               (pid[0],)).fetchone()
    assert oid_row is not None

    def arrived() -> bool:
        with connect.connect(topo.name, "pg-billing", dbname="production") as conn:
            return conn.execute("SELECT quantity FROM orders WHERE id = %s", (oid_row[0],)).fetchone() == (7,)

    wait_for(arrived, timeout=60, what="the order written on main's leader to reach pg-billing")

    # remove-subscription: out of Patroni's configuration, off the leader, out of the file.
    rc, out = cli("remove-subscription", str(path), "orders_sub")
    assert rc == 0, out
    config = api.config(ep)
    assert "orders_sub" not in config["slots"], config  # type: ignore[operator]
    assert config["slots"]["inventory_sub"] == SLOT, config  # type: ignore[index]
    assert _slots_on(topo, leader.name, "orders_sub") == 0
    with connect.connect(topo.name, "pg-billing", dbname="production") as conn:
        assert conn.execute("SELECT count(*) FROM pg_subscription WHERE subname = 'orders_sub'").fetchone() == (0,)
    assert "orders_sub" not in load(path).clusters["billing"].subscriptions
    # Patroni does not bring the slot back at its next loops.
    container = gateway.find(topo.name, leader.name)
    assert container is not None
    mark = f"I am ({leader.name}), the leader with the lock"
    before = gateway.logs(container, tail=100_000).count(mark)

    def two_loops_without_it() -> bool:
        assert _slots_on(topo, leader.name, "orders_sub") == 0, "Patroni created orders_sub again"
        return gateway.logs(container, tail=100_000).count(mark) >= before + 2

    wait_for(two_loops_without_it, timeout=5 * topo.clusters["main"].patroni_spec.loop_wait + 30,
             what=f"two of Patroni's HA loops on {leader.name}")

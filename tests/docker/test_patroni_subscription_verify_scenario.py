"""The global-saas-patroni design (as ``pc-gsp``): ``verify`` passes, its subscription check included.

Cluster main (ha: patroni) publishes ``products`` to billing's pg-billing; the subscription also
carries pgtopo's probe publication (``pgtopo.probe``). Each table's initial copy makes a slot
``pg_<subscription oid>_sync_<table oid>_<system id>`` on main's leader for as long as the copy
runs; Patroni dropped those as unknown (its log: ``Trying to drop unknown replication slot
'pg_…_sync_…'``) and the copy never finished, so verify failed the subscription check. Patroni's
``ignore_slots`` (model/patroni.py: ignored_slots) leaves them alone.

Patroni reads the slots anew only at some moments (its start, a restart of PostgreSQL, a known
slot gone), so whether a copy's slot is caught is a race: the second test makes it certain, with a
slot named like a copy's on the leader while Patroni restarts PostgreSQL.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pgtopo.errors import OperationFailed
from pgtopo.model.topology import Topology
from pgtopo.patroni import api
from pgtopo.postgres import connect
from pgtopo.runtime import gateway
from tests.support.docker import cli, up_from_text, wait_for
from tests.support.topologies import TOPOLOGIES

SHIPPED = (TOPOLOGIES / "global-saas-patroni.yaml").read_text()
TOPOLOGY = SHIPPED.replace("name: global-saas-patroni\n", "name: pc-gsp\n")
assert TOPOLOGY != SHIPPED
SYNC_SLOT_DROPPED = re.compile(r"Trying to drop unknown replication slot 'pg_\d+_sync_")


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, state_env: Path) -> Iterator[tuple[Topology, Path]]:
    with up_from_text(tmp_path_factory.mktemp("pc-gsp"), TOPOLOGY, file="gsp.yaml") as up:
        yield up


def test_verify_passes_with_the_subscription_check(lab: tuple[Topology, Path]) -> None:
    topo, path = lab
    last: list[str] = [""]

    def passes() -> bool:
        rc, out = cli("verify", str(path), "--json")
        last[0] = out
        return rc == 0

    # The copies run while up returns: verify passes once they are done, or never (the bug).
    wait_for(passes, timeout=180, what=f"verify to pass; last output:\n{last[0]}")
    checks = json.loads(last[0])["checks"]
    (sub,) = [c for c in checks if c["check"] == "subscription"]
    assert sub["subject"] == "inventory_sub" and sub["passed"], sub
    # products and pgtopo.probe: both copies finished, neither retried after an error.
    assert "2/2 tables ready, no errors" in sub["reason"], sub
    # The probe row written on main's leader reached pg-billing through the subscription.
    (logical,) = [e for e in json.loads(last[0])["edges"] if e["kind"] == "logical"]
    assert (logical["target"], logical["subscription"], logical["passed"]) == ("pg-billing", "inventory_sub", True), \
        logical
    for name in ("pg-us", "pg-us2", "pg-eu"):
        c = gateway.find(topo.name, name)
        assert c is not None, name
        dropped = SYNC_SLOT_DROPPED.findall(gateway.logs(c, tail=2000))
        assert not dropped, f"Patroni on {name} dropped a table copy's slot: {dropped}"


def test_patroni_keeps_a_table_copy_s_slot_across_a_restart(lab: tuple[Topology, Path]) -> None:
    topo, _path = lab
    slot = "pg_99999_sync_99999_1"  # shaped like a table copy's slot: unknown to Patroni by name
    leader = gateway.find(topo.name, "pg-us")
    assert leader is not None

    def present() -> bool | None:
        """Whether the slot is on pg-us (None: PostgreSQL does not answer, restarting)."""
        try:
            with connect.connect(topo.name, "pg-us", dbname="production") as conn:
                return conn.execute("SELECT count(*) FROM pg_replication_slots WHERE slot_name = %s",
                                    (slot,)).fetchone() == (1,)
        except OperationFailed:
            return None

    def loops() -> int:
        return gateway.logs(leader, tail=100_000).count("no action. I am (pg-us), the leader with the lock")

    with connect.connect(topo.name, "pg-us", dbname="production") as conn:
        conn.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (slot,))
    try:
        # A restart makes Patroni read every slot again; an unknown one is dropped at its next loop.
        api.restart(api.endpoint(topo.name, "pg-us", password=api.rest_password(topo.name)))
        restarted = time.time()
        before = loops()
        loop_wait = topo.clusters["main"].patroni_spec.loop_wait

        def three_loops_with_the_slot() -> bool:
            assert present() is not False, f"Patroni dropped {slot} {time.time() - restarted:.1f} s after the restart"
            return loops() >= before + 3

        wait_for(three_loops_with_the_slot, timeout=5 * loop_wait + 30,
                 what="three of Patroni's HA loops on pg-us after the restart")
        assert f"Trying to drop unknown replication slot '{slot}'" not in gateway.logs(leader, tail=100_000)
    finally:
        with connect.connect(topo.name, "pg-us", dbname="production") as conn:
            conn.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = %s",
                         (slot,))

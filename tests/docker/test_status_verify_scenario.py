"""One scenario, in file order: `status` and `verify` on a real global-saas, healthy, then one failure at a time.

The tests share one topology (``t-status``; module-scoped: bringing it up is expensive). Each
test breaks one thing and restores it before the next (a stopped replica, a dropped
subscription, a stale slot, a wrong upstream); the split brain comes last because it is not
undone. Behaviour only, no timings beyond what physics guarantees (a probe cannot cross an
80 ms RTT link in under 40 ms).
"""

from __future__ import annotations

import json
import time
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from pgtopo.cli import observe as observe_cli
from pgtopo.cli.main import app
from pgtopo.lifecycle import deploy
from pgtopo.model import render
from pgtopo.model.loader import load
from pgtopo.model.topology import Topology
from pgtopo.observe import snapshot, status
from pgtopo.postgres import connect
from pgtopo.runtime import gateway, state
from tests.support.docker import running, wait_for

pytestmark = pytest.mark.docker

NAME = "t-status"


@pytest.fixture(scope="module")
def topo_file(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with running(tmp_path_factory.mktemp("status"), "global-saas.yaml", name=NAME) as path:
        yield path


@pytest.fixture(scope="module")
def topo(topo_file: Path) -> Topology:
    return load(topo_file)


def cli(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def as_json(res: Result) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(res.stdout)
    return data


def sql(node: str, query: str, *, db: str = "postgres") -> list[tuple[Any, ...]]:
    with connect.connect(NAME, node, dbname=db) as conn:
        cur = conn.execute(query)
        return cur.fetchall() if cur.description else []




def wait_healthy(topo: Topology) -> None:
    def healthy() -> bool:
        a = status.observe(topo, measure=False)
        return a.ok and all(p.severity == "info" for p in a.problems)

    wait_for(healthy, what="a healthy status")


def failed_checks(data: dict[str, Any]) -> set[tuple[str, str]]:
    return {(c["check"], c["subject"]) for c in data["checks"] if not c["passed"]} | {
        ("edge", f"{e['source']}->{e['target']}") for e in data["edges"] if not e["passed"]}


def node_json(data: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(n for n in data["nodes"] if n["node"] == name)
    return found


# -- healthy -------------------------------------------------------------------------------------------

def test_status_healthy(topo_file: Path, topo: Topology) -> None:
    res = cli("status", str(topo_file), "--json")
    assert res.exit_code == 0, res.output
    data = as_json(res)
    assert data["ok"] is True and data["split_brain"] == []
    # Latency is checked below; nothing else may even warn.
    assert [p for p in data["problems"] if "<->" not in p["subject"]] == []
    us, eu = node_json(data, "pg-us"), node_json(data, "pg-eu")
    assert (us["role"], us["mark"], us["timeline"]) == ("primary", "", 1)
    assert (eu["role"], eu["state"], eu["upstream"], eu["mark"]) == ("replica", "streaming", "pg-us", "")
    assert eu["sync_state"] == "async" and eu["lag_bytes"] is not None
    [sub] = data["subscriptions"]
    assert (sub["node"], sub["subscription"], sub["worker"], sub["tables_ready"], sub["tables_total"]) == (
        "pg-billing", "inventory_sub", "running", 2, 2)
    # This host is shared with other test runs: a burst of CPU load delays the relay's timers,
    # so a measurement out of tolerance is taken again (up to three times in all).
    measured = []
    for _attempt in range(3):
        [link] = [r for r in data["latency"] if r["regions"] == ["us-east", "eu-west"]]
        assert link["declared_rtt_seconds"] == 0.08
        measured.append(link["measured_rtt_seconds"] * 1000)
        if abs(measured[-1] - 80) <= max(10, 0.2 * 80):
            assert link["ok"] is True
            break
        data = status.observe(topo).to_json()
    else:
        raise AssertionError(f"us-east <-> eu-west measured {measured} ms, declared 80 ms")

    table = cli("status", str(topo_file))
    assert table.exit_code == 0, table.output
    assert "pg-eu" in table.stdout and "streaming" in table.stdout and "2/2" in table.stdout
    assert "replication as the file describes" in table.stdout


def test_status_watch_refreshes_until_interrupted(topo_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    naps: list[float] = []

    def sleep(seconds: float) -> None:
        naps.append(seconds)
        if len(naps) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(observe_cli, "time", types.SimpleNamespace(sleep=sleep, strftime=time.strftime))
    res = cli("status", str(topo_file), "--watch", "0.5", "--json")
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert len(lines) == 2 and all(json.loads(line)["ok"] for line in lines)
    assert naps == [0.5, 0.5]


def test_verify_healthy(topo_file: Path, topo: Topology) -> None:
    sql("pg-us", "INSERT INTO products (sku, name, price_cents, stock) VALUES ('sku-1', 'one', 100, 5)",
        db="production")
    wait_for(lambda: sql("pg-billing", "SELECT count(*) FROM products", db="production") == [(1,)],
             what="the product row on pg-billing")
    user_data = {n: sql(n, "SELECT * FROM products ORDER BY id", db="production") for n in topo.node_names()}

    res = cli("verify", str(topo_file), "--json")
    assert res.exit_code == 0, res.output
    data = as_json(res)
    assert data["ok"] is True and data["summary"]["failed"] == 0
    edges = {(e["kind"], e["source"], e["target"]): e for e in data["edges"]}
    assert set(edges) == {("physical", "pg-us", "pg-eu"), ("logical", "pg-us", "pg-billing")}
    physical = edges[("physical", "pg-us", "pg-eu")]
    assert physical["declared_rtt_seconds"] == 0.08
    assert physical["propagation_seconds"] >= 0.040  # one way of an 80 ms round trip
    assert edges[("logical", "pg-us", "pg-billing")]["subscription"] == "inventory_sub"
    checks = {c["check"] for c in data["checks"]}
    assert {"reachable", "primary", "identity", "timeline", "upstream", "slot", "subscription", "config",
            "settings"} <= checks

    # Probe rows are gone everywhere and user tables are untouched.
    def no_probe_rows() -> bool:
        return all(sql(n, "SELECT count(*) FROM pgtopo.probe", db="production") == [(0,)] for n in topo.node_names())

    wait_for(no_probe_rows, what="probe rows to be deleted everywhere")
    for n in topo.node_names():
        assert sql(n, "SELECT * FROM products ORDER BY id", db="production") == user_data[n]

    text = cli("verify", str(topo_file))
    assert text.exit_code == 0, text.output
    assert "PASS  edge          pg-us -> pg-eu" in text.stdout
    assert "verify: all" in text.stdout and "FAIL" not in text.stdout


# -- one failure at a time -------------------------------------------------------------------------------

def test_stopped_replica(topo_file: Path, topo: Topology) -> None:
    container = gateway.find(NAME, "pg-eu")
    assert container is not None
    gateway.stop(container)
    try:
        res = cli("status", str(topo_file), "--json")
        assert res.exit_code == 1
        eu = node_json(as_json(res), "pg-eu")
        assert (eu["role"], eu["mark"], eu["state"]) == ("down", "?", "container exited")
        assert "pg-eu is down: container exited" in res.stderr

        ver = cli("verify", str(topo_file), "--json", "--timeout", "3")
        assert ver.exit_code == 1
        data = as_json(ver)
        assert {("reachable", "pg-eu"), ("upstream", "pg-eu"), ("edge", "pg-us->pg-eu")} <= failed_checks(data)
        [edge] = [e for e in data["edges"] if e["target"] == "pg-eu"]
        assert edge["reason"] == "pg-eu is down: container exited"
    finally:
        gateway.start(container)
        wait_healthy(topo)


def test_dropped_subscription(topo_file: Path, topo: Topology) -> None:
    sql("pg-billing", "DROP SUBSCRIPTION inventory_sub", db="production")
    try:
        res = cli("status", str(topo_file), "--json")
        assert res.exit_code == 1
        assert {"severity": "error", "subject": "inventory_sub",
                "message": "subscription inventory_sub is missing on pg-billing (database production)"} in \
            as_json(res)["problems"]

        ver = cli("verify", str(topo_file), "--json", "--timeout", "3")
        assert ver.exit_code == 1
        data = as_json(ver)
        assert failed_checks(data) == {("subscription", "inventory_sub"), ("edge", "pg-us->pg-billing")}
        [check] = [c for c in data["checks"] if c["check"] == "subscription"]
        assert check["reason"] == "missing on pg-billing (database production, publication inventory_pub of main)"
        assert "subscription inventory_sub" in ver.stderr
    finally:
        billing = gateway.find(NAME, "pg-billing")
        assert billing is not None
        sql("pg-billing", "TRUNCATE products", db="production")  # the re-created subscription copies again
        deploy.create_subscriptions(topo, {"pg-billing": billing}, state.current_primaries(topo),
                                    progress=lambda *a: None)
        wait_healthy(topo)
    assert cli("verify", str(topo_file), "--timeout", "5").exit_code == 0


def test_inactive_slot_retaining_wal(topo_file: Path, topo: Topology) -> None:
    sql("pg-us", "SELECT pg_create_physical_replication_slot('pgtopo_test_stale', true)")
    try:
        sql("pg-us", "SELECT pg_logical_emit_message(false, 'pgtopo-test', repeat('x', 300000))")
        sql("pg-us", "SELECT pg_switch_wal()")
        ok = cli("verify", str(topo_file), "--json")  # 64 MiB by default: still fine
        assert ok.exit_code == 0, ok.output

        res = cli("verify", str(topo_file), "--json", "--max-retained", "128kB")
        assert res.exit_code == 1
        data = as_json(res)
        assert failed_checks(data) == {("slot", "pg-us/pgtopo_test_stale")}
        [check] = [c for c in data["checks"] if c["subject"] == "pg-us/pgtopo_test_stale"]
        assert check["reason"].startswith("inactive physical slot retains ")
        assert check["reason"].endswith("(limit 0.1 MiB, wal_status reserved)")
        assert "slot pg-us/pgtopo_test_stale" in res.stderr
    finally:
        sql("pg-us", "SELECT pg_drop_replication_slot('pgtopo_test_stale')")


def test_replica_pointed_at_the_wrong_upstream(topo_file: Path, topo: Topology) -> None:
    wrong = render.conninfo(host="pgtopo-relay", port=topo.relay_port("eu-west", "pg-billing"), user="replicator",
                            application_name="pg-eu", dbname="postgres")
    sql("pg-eu", f"ALTER SYSTEM SET primary_conninfo = '{wrong}'")
    sql("pg-eu", "SELECT pg_reload_conf()")
    try:
        wait_for(lambda: snapshot.collect(topo).nodes["pg-eu"].receiver_status != "streaming",
                 what="pg-eu to stop streaming from pg-us", timeout=30)
        res = cli("status", str(topo_file), "--json")
        assert res.exit_code == 1
        eu = node_json(as_json(res), "pg-eu")
        assert eu["mark"] == "!"
        assert any("pg-billing" in r and ("not streaming" in r or "streams from" in r) for r in eu["reasons"]), eu

        ver = cli("verify", str(topo_file), "--json", "--timeout", "3")
        assert ver.exit_code == 1
        failed = failed_checks(as_json(ver))
        assert {("upstream", "pg-eu"), ("settings", "pg-eu"), ("edge", "pg-us->pg-eu")} <= failed
        [settings] = [c for c in as_json(ver)["checks"] if c["check"] == "settings" and c["subject"] == "pg-eu"]
        assert "primary_conninfo points at pg-billing, rendered: pg-us" in settings["reason"]
    finally:
        sql("pg-eu", "ALTER SYSTEM RESET primary_conninfo")
        sql("pg-eu", "SELECT pg_reload_conf()")
        wait_healthy(topo)


def test_split_brain_last(topo_file: Path, topo: Topology) -> None:
    sql("pg-eu", "SELECT pg_promote()")
    wait_for(lambda: sql("pg-eu", "SELECT pg_is_in_recovery()") == [(False,)], what="pg-eu promoted")
    res = cli("status", str(topo_file), "--json")
    assert res.exit_code == 1
    data = as_json(res)
    assert data["split_brain"] == ["main"]
    assert node_json(data, "pg-eu")["role"] == "standalone"
    assert res.stderr.startswith("error: SPLIT BRAIN in cluster main: 2 writable nodes (pg-us, pg-eu)")

    table = cli("status", str(topo_file))
    assert table.exit_code == 1
    assert "SPLIT BRAIN" in table.stdout.splitlines()[0]

    ver = cli("verify", str(topo_file), "--json", "--timeout", "2")
    assert ver.exit_code == 1
    assert {("primary", "main"), ("upstream", "pg-eu")} <= failed_checks(as_json(ver))

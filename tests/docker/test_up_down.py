"""`up` and `down` with real containers: the reference topology and a cascading, synchronous one."""

from __future__ import annotations

import stat
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from pgtopo.cli.main import app
from pgtopo.errors import OperationFailed
from pgtopo.lifecycle import deploy
from pgtopo.model.loader import load
from pgtopo.observe import snapshot
from pgtopo.postgres import connect
from pgtopo.runtime import gateway, state
from tests.support.docker import copy_topology, wait_for


def labelled(name: str) -> tuple[int, int, int]:
    c = gateway.client()
    f = {"label": f"pgtopo.topology={name}"}
    return len(c.containers.list(all=True, filters=f)), len(c.networks.list(filters=f)), len(c.volumes.list(filters=f))


def count(topology: str, node: str, query: str, db: str = "production") -> int:
    with connect.connect(topology, node, dbname=db) as conn:
        row = conn.execute(query).fetchone()
        return int(str(row[0])) if row else 0


def test_reference_topology(tmp_path: Path, state_dir: Path) -> None:
    name = "t-up"
    path = copy_topology(tmp_path, "global-saas.yaml", name=name)
    runner = CliRunner()
    try:
        res = runner.invoke(app, ["up", str(path)])
        assert res.exit_code == 0, res.output
        assert f"topology '{name}' is up" in res.output

        # Passwords live in the state directory, private.
        secrets = state_dir / name / "secrets.json"
        assert stat.S_IMODE(secrets.stat().st_mode) == 0o600
        assert stat.S_IMODE(secrets.parent.stat().st_mode) == 0o700
        assert state.passwords(name)["app"] not in path.read_text()

        # Every container, network and volume is labelled and named <topology>_<thing>.
        names = sorted(c.name for c in gateway.containers(name))
        assert names == [f"{name}_pg-billing", f"{name}_pg-eu", f"{name}_pg-us", f"{name}_relay"]

        # A row written on the primary reaches the EU replica and, through inventory_pub, billing.
        with connect.connect(name, "pg-us", dbname="production") as conn:
            conn.execute("INSERT INTO products (sku, name, price_cents) VALUES ('sku-e2e', 'probe', 100)")
        wait_for(lambda: count(name, "pg-eu", "SELECT count(*) FROM products WHERE sku = 'sku-e2e'") == 1,
                 what="the row on pg-eu")
        wait_for(lambda: count(name, "pg-billing", "SELECT count(*) FROM products WHERE sku = 'sku-e2e'") == 1,
                 what="the row on pg-billing")

        # The replica refuses writes.
        with connect.connect(name, "pg-eu", dbname="production") as conn, pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("INSERT INTO products (sku, name, price_cents) VALUES ('x', 'x', 1)")

        # The EU replica streams through the relay, from the primary, on the configuration up rendered.
        snap = snapshot.collect(load(path))
        eu = snap.nodes["pg-eu"]
        assert (eu.role, eu.receiver_status, eu.upstream) == ("replica", "streaming", "pg-us")
        assert eu.settings["config_file"] == "/etc/pgtopo/postgresql.conf"
        assert snap.nodes["pg-billing"].subscriptions[0].tables_ready == 2

        # Idempotent: a second up changes nothing.
        res = runner.invoke(app, ["up", str(path)])
        assert res.exit_code == 0, res.output
        assert "is already up; nothing changed" in res.output
        assert sorted(c.name for c in gateway.containers(name)) == names

        # A node added to the file: up adds just that node (a cascading replica of pg-eu).
        before = {c.name: c.id for c in gateway.containers(name, kind="node")}
        path.write_text(path.read_text().replace(
            "        failover_priority: 100\n",
            "        failover_priority: 100\n      pg-eu2:\n        region: eu-west\n        upstream: pg-eu\n", 1))
        res = runner.invoke(app, ["up", str(path)])
        assert res.exit_code == 0, res.output
        after = {c.name: c.id for c in gateway.containers(name, kind="node")}
        assert set(after) - set(before) == {f"{name}_pg-eu2"}
        assert all(after[k] == v for k, v in before.items())  # existing nodes untouched
        # The relay was re-created with listeners for the new node; replication resumes through it.
        wait_for(lambda: snapshot.collect(load(path)).nodes["pg-eu"].receiver_status == "streaming",
                 what="pg-eu streaming again")
        snap = snapshot.collect(load(path))
        assert snap.nodes["pg-eu2"].upstream == "pg-eu"
        assert count(name, "pg-eu2", "SELECT count(*) FROM products WHERE sku = 'sku-e2e'") == 1

        # A setting changed in the file: up installs the re-rendered file and reloads that node.
        path.write_text(path.read_text().replace(
            "        failover_priority: 100\n",
            "        failover_priority: 100\n        settings:\n          work_mem: 24MB\n", 1))
        res = runner.invoke(app, ["up", str(path)])
        assert res.exit_code == 0, res.output
        assert "pg-eu" in res.output and "postgresql.conf changed in the file: installed and reloaded" in res.output
        with connect.connect(name, "pg-eu") as conn:
            row = conn.execute("SHOW work_mem").fetchone()
        assert row is not None and row[0] == "24MB"
        res = runner.invoke(app, ["up", str(path)])
        assert "is already up; nothing changed" in res.output
    finally:
        res = runner.invoke(app, ["down", str(path), "--volumes"])
    assert res.exit_code == 0, res.output
    assert labelled(name) == (0, 0, 0)


def test_cascading_and_synchronous(tmp_path: Path, state_dir: Path) -> None:
    name = "t-up-sync"
    path = copy_topology(tmp_path, "four-regions.yaml", name=name)
    topo = load(path)
    try:
        result = deploy.up(topo, topo_path=path, progress=lambda *a: None)
        assert [s.role for s in result.summaries] == [
            "primary", "replica of pg-use", "replica of pg-use", "replica of pg-use", "replica of pg-euw"]
        snap = snapshot.collect(topo)
        rows = {d.application_name: d for d in snap.nodes["pg-use"].downstream}
        assert rows["pg-use2"].sync_state == rows["pg-usw"].sync_state == "quorum"
        assert rows["pg-euw"].sync_state == "async"
        assert "pg-euc" not in rows
        assert snap.nodes["pg-euc"].upstream == "pg-euw"
        assert snap.nodes["pg-euc"].receiver_status == "streaming"
        # A synchronous commit returns; the cascaded node receives it too.
        with connect.connect(name, "pg-use", dbname="app") as conn:
            conn.execute("INSERT INTO accounts (email, region) VALUES ('a@example.com', 'us')")
        wait_for(lambda: count(name, "pg-euc", "SELECT count(*) FROM accounts", db="app") == 1, what="cascade")
    finally:
        deploy.down(name, volumes=True)
    assert labelled(name) == (0, 0, 0)


def test_failure_names_node_and_step_and_down_cleans(tmp_path: Path, state_dir: Path) -> None:
    name = "t-up-fail"
    path = copy_topology(tmp_path, "global-saas.yaml", name=name,
                         replace={"    stock integer NOT NULL DEFAULT 0,\n              updated_at timestamptz NOT NULL\n":
                                  "    stock integer NOT NULL DEFAULT 0,\n              updated_at timestamptz NOT NULL,\n"
                                  "              broken no_such_type\n"})
    topo = load(path)
    try:
        with pytest.raises(OperationFailed) as exc:
            deploy.up(topo, topo_path=path, progress=lambda *a: None)
        err = exc.value
        assert err.node == "pg-billing"
        assert err.step == "init.sql"
        assert 'type "no_such_type" does not exist' in err.message
        assert err.logs  # the container's last log lines come with the error
    finally:
        deploy.down(name, volumes=True)
    assert labelled(name) == (0, 0, 0)


def test_patroni_failure_names_node_and_step_and_down_cleans(tmp_path: Path, state_dir: Path) -> None:
    """A broken schema on a Patroni cluster: Patroni and etcd run, the leader is elected, then
    pgtopo's init.sql fails on it; the error names the leader and the step with its logs, and
    `down` removes the etcd members, the Patroni members and the relay with the rest."""
    name = "t-up-fail-patroni"
    path = copy_topology(tmp_path, "global-saas-patroni.yaml", name=name,
                         replace={"              quantity integer NOT NULL,\n":
                                  "              quantity integer NOT NULL,\n              broken no_such_type,\n"})
    topo = load(path)
    try:
        with pytest.raises(OperationFailed) as exc:
            deploy.up(topo, topo_path=path, progress=lambda *a: None)
        err = exc.value
        assert (err.node, err.step) == ("pg-us", "init.sql")
        assert 'type "no_such_type" does not exist' in err.message
        assert err.logs  # the leader's last log lines come with the error
        assert gateway.containers(name, kind="dcs")  # etcd had been started: down must find it
    finally:
        deploy.down(name, volumes=True)
    assert labelled(name) == (0, 0, 0)


def test_up_after_failover_never_makes_a_second_primary(tmp_path: Path, state_dir: Path) -> None:
    """The file's primary lost with its volume after a failover: `up` re-creates it as a replica."""
    name = "t-up-after-fo"
    path = copy_topology(tmp_path, "global-saas.yaml", name=name)
    runner = CliRunner()
    try:
        assert runner.invoke(app, ["up", str(path)]).exit_code == 0
        assert runner.invoke(app, ["kill", str(path), "pg-us"]).exit_code == 0
        res = runner.invoke(app, ["failover", str(path), "--yes"])
        assert res.exit_code == 0, res.output
        old = gateway.find(name, "pg-us")
        assert old is not None
        gateway.remove_container(old, volume=True)

        res = runner.invoke(app, ["up", str(path)])
        assert res.exit_code == 0, res.output
        snap = snapshot.collect(load(path))
        assert snap.writable("main") == ["pg-eu"]
        wait_for(lambda: snapshot.collect(load(path)).nodes["pg-us"].receiver_status == "streaming",
                 what="pg-us streaming from pg-eu")
        assert snapshot.collect(load(path)).nodes["pg-us"].upstream == "pg-eu"
        with connect.connect(name, "pg-eu", dbname="production") as conn:
            conn.execute("INSERT INTO products (sku, name, price_cents) VALUES ('after-fo', 'x', 1)")
        wait_for(lambda: count(name, "pg-us", "SELECT count(*) FROM products WHERE sku = 'after-fo'") == 1,
                 what="the row on the re-created pg-us")
    finally:
        deploy.down(name, volumes=True)
    assert labelled(name) == (0, 0, 0)


@pytest.mark.parametrize("command", [["status"], ["verify"], ["failover", "--dry-run"], ["switchover", "--to", "pg-eu"]])
def test_commands_on_a_topology_that_is_not_up(tmp_path: Path, state_dir: Path, command: list[str]) -> None:
    path = copy_topology(tmp_path, "global-saas.yaml", name="t-not-up")
    res = CliRunner().invoke(app, [command[0], str(path), *command[1:]])
    assert res.exit_code == 1
    assert res.output.strip().splitlines()[-1] == (
        "error: topology 't-not-up' is not running (no containers); start it with `pgtopo up`")

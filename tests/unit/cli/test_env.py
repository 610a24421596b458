"""`pgtopo env`: names are checked first (exit 2), the live ports are faked: no Docker."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pgtopo.apps import endpoints
from pgtopo.apps.endpoints import PortMap
from pgtopo.cli.main import app
from pgtopo.model.loader import load
from pgtopo.model.topology import Topology
from tests.support.ports import ports
from tests.support.topologies import GLOBAL_SAAS


@pytest.fixture(scope="module")
def saas() -> Topology:
    return load(GLOBAL_SAAS)


def test_cli_unknown_region_and_cluster() -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["env", str(GLOBAL_SAAS), "--region", "mars"])
    assert res.exit_code == 2
    assert res.output.splitlines() == ["error: unknown region 'mars' (known: us-east, eu-west, ap-south)"]
    res = runner.invoke(app, ["env", str(GLOBAL_SAAS), "--region", "eu-west", "--cluster", "nope"])
    assert res.exit_code == 2
    assert res.output.splitlines() == ["error: unknown cluster 'nope' (known: main, billing)"]


def test_cli_not_running(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PGTOPO_STATE_DIR", str(tmp_path))
    monkeypatch.setattr(endpoints, "live_ports", lambda topo: PortMap(nodes={}, relay={}))
    res = CliRunner().invoke(app, ["env", str(GLOBAL_SAAS), "--region", "eu-west"])
    assert res.exit_code == 1
    assert res.output.splitlines() == ["error: topology 'global-saas' is not running (start it with `pgtopo up FILE`)"]


def test_cli_prints_the_live_endpoints(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, saas: Topology) -> None:
    from pgtopo.runtime import state

    monkeypatch.setenv("PGTOPO_STATE_DIR", str(tmp_path))
    pw = state.passwords(saas.name)["app"]
    monkeypatch.setattr(endpoints, "live_ports", lambda topo: ports(topo))
    res = CliRunner().invoke(app, ["env", str(GLOBAL_SAAS), "-r", "eu-west", "--format", "json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["LOCAL_READ_REPLICA_URL"] == f"postgresql://app:{pw}@127.0.0.1:5001/production"

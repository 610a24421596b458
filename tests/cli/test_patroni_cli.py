"""Commands on a cluster Patroni keeps alive: bad input is refused with one line, exit 2, before
anything is asked of Docker or Patroni."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from pgtopo.cli.main import app
from tests.support.topologies import GLOBAL_SAAS, TOPOLOGIES

PATRONI = TOPOLOGIES / "global-saas-patroni.yaml"


@pytest.fixture(autouse=True)
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PGTOPO_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


@pytest.mark.parametrize(("args", "message"), [
    (["failover", str(PATRONI), "--resume", "--cluster", "main"],
     "error: --resume: cluster main is kept alive by Patroni, which finishes a failover itself (`pgtopo status` "
     "shows its members)"),
    (["rejoin", str(PATRONI), "pg-us", "--reclone"],
     "error: --reclone: Patroni clones a member itself; use --reinit on a cluster with ha: patroni"),
    (["rejoin", str(GLOBAL_SAAS), "pg-eu", "--reinit"],
     "error: --reinit: cluster main is not kept alive by Patroni (ha: manual); use --reclone"),
    (["rejoin", str(PATRONI), "pg-xx"], "error: unknown node 'pg-xx'"),
])
def test_refused(args: list[str], message: str) -> None:
    res = CliRunner().invoke(app, args)
    assert (res.exit_code, res.output.splitlines()) == (2, [message])

"""ha: patroni on the command line: bad input stops `up` before Docker, and the commands that
would act around Patroni refuse its clusters, naming them (no Docker needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from pgtopo.cli.main import app

REPO = Path(__file__).resolve().parents[2]
PATRONI = REPO / "topologies" / "global-saas-patroni.yaml"


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("PGTOPO_STATE_DIR", str(tmp_path / "state"))
    return CliRunner()


@pytest.mark.parametrize(("old", "new", "line"), [
    ("ttl: 30", "ttl: 25", "clusters.main.patroni: loop_wait + 2 * retry_timeout = 10 + 2 * 10 = 30 s is more than "
                           "ttl = 25 s"),
    ("regions: [us-east, eu-west, ap-south]", "regions: [us-east, eu-west]", "dcs.regions:"),
])
def test_up_on_a_bad_patroni_file_exits_2_naming_the_field(runner: CliRunner, tmp_path: Path, old: str, new: str,
                                                            line: str) -> None:
    bad = tmp_path / "bad.yaml"
    text = PATRONI.read_text()
    assert old in text
    bad.write_text(text.replace(old, new))
    res = runner.invoke(app, ["up", str(bad)])
    assert res.exit_code == 2, res.output
    assert line in res.output
    assert "Traceback" not in res.output


@pytest.mark.parametrize(("args", "command"), [
    (["failover", "--cluster", "main"], "failover"),
    (["failover", "--to", "pg-eu", "--dry-run"], "failover"),
    (["failover", "--resume", "--cluster", "main"], "failover --resume"),
    (["switchover", "--to", "pg-us2"], "switchover"),
    (["rejoin", "pg-us"], "rejoin"),
    (["add-subscription", "--subscriber", "pg-billing", "--publisher", "pg-us", "--tables", "orders"],
     "add-subscription"),
    (["remove-subscription", "inventory_sub"], "remove-subscription"),
])
def test_commands_acting_around_patroni_refuse_its_cluster(runner: CliRunner, args: list[str], command: str) -> None:
    res = runner.invoke(app, [args[0], str(PATRONI), *args[1:]])
    assert res.exit_code == 2, res.output
    assert (f"clusters.main.ha: patroni: `pgtopo {command}` on cluster main goes through Patroni: not yet"
            in " ".join(res.output.split()))

"""add-subscription refuses names and row filters that `validate` would refuse in the file:
exit 2, one line, the file left byte-identical, nothing reached."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from pgtopo.cli.main import app
from pgtopo.runtime import gateway

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def topo_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    def no_docker() -> None:
        pytest.fail("a refused request reached Docker")

    monkeypatch.setattr(gateway, "client", no_docker)
    monkeypatch.setenv("PGTOPO_STATE_DIR", str(tmp_path / "state"))
    path = tmp_path / "global-saas.yaml"
    path.write_text((REPO / "topologies" / "global-saas.yaml").read_text().replace("name: global-saas", "name: t-subin"))
    return path


ORDERS = ["--subscriber", "pg-billing", "--publisher", "pg-us", "--tables", "orders"]

REFUSALS = [
    (["--subscriber", "pg-billing", "--publication", "inventory_pub", "--name", "pg_eu"],
     "--name: 'pg_eu' is the physical replication slot of node 'pg-eu' (a subscription's slot takes its name); "
     "choose another name"),
    ([*ORDERS, "--row-filter", "orders:id > 0); DROP TABLE orders; --"],
     "--row-filter: table 'orders': unbalanced parentheses: ')' at character 7 closes what was not opened (it would "
     "close the WHERE's own parenthesis)"),
    ([*ORDERS, "--row-filter", "orders:quantity > 0; DROP TABLE orders"],
     "--row-filter: table 'orders': a row filter is one expression: ';' is not allowed"),
    ([*ORDERS, "--row-filter", "orders:quantity > 0 -- and more"],
     "--row-filter: table 'orders': a row filter cannot hold a comment ('--' or '/*')"),
    ([*ORDERS, "--row-filter", "orders:true\n\\! id"],
     "--row-filter: table 'orders': a row filter cannot hold a backslash outside a string ('\\!' is a psql "
     "meta-command)"),
]


@pytest.mark.parametrize(("args", "message"), REFUSALS, ids=[str(i) for i in range(len(REFUSALS))])
def test_refused(topo_file: Path, args: list[str], message: str) -> None:
    before = topo_file.read_bytes()
    for dry_run in ([], ["--dry-run"]):
        res = CliRunner().invoke(app, ["add-subscription", str(topo_file), *args, *dry_run])
        assert res.exit_code == 2, res.output
        assert res.output.splitlines() == [f"error: {message}"]
        assert topo_file.read_bytes() == before

"""add-subscription / remove-subscription refusals that need no running topology: exit 2, one
line naming the node, table or publication, and the file left byte-identical."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from pgtopo.cli.main import app
from pgtopo.errors import DockerUnavailable
from pgtopo.logical.channel_request import default_name
from pgtopo.runtime import gateway, state

REPO = Path(__file__).resolve().parents[2]
IDENT = "is not a plain PostgreSQL identifier (lower-case letters, digits, _ and $, not starting with a digit)"


@pytest.fixture
def topo_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # An empty state directory: no topology is up, the file's primaries are the current ones.
    monkeypatch.setenv("PGTOPO_STATE_DIR", str(tmp_path / "state"))
    path = tmp_path / "global-saas.yaml"
    # A name no running topology has: nothing here may reach a live node.
    path.write_text((REPO / "topologies" / "global-saas.yaml").read_text().replace("name: global-saas", "name: t-subcli"))
    return path


ADD_REFUSALS = [
    (["--subscriber", "pg-xx", "--publication", "inventory_pub"],
     "--subscriber: unknown node 'pg-xx' (known: pg-us, pg-eu, pg-billing)"),
    (["--subscriber", "pg-billing", "--publisher", "pg-zz", "--tables", "orders"],
     "--publisher: unknown node 'pg-zz' (known: pg-us, pg-eu, pg-billing)"),
    (["--subscriber", "pg-eu", "--publisher", "pg-us", "--tables", "orders"],
     "--subscriber: pg-eu is in cluster 'main', the publisher's own cluster: a cluster cannot subscribe to itself"),
    (["--subscriber", "pg-eu", "--publication", "inventory_pub"],
     "--subscriber: pg-eu is in cluster 'main', the publisher's own cluster: a cluster cannot subscribe to itself"),
    (["--subscriber", "pg-billing", "--publisher", "pg-eu", "--tables", "orders"],
     "--publisher: pg-eu is not the primary of cluster 'main' (pg-us is): publications live on a cluster's primary"),
    (["--subscriber", "pg-billing", "--publication", "nope_pub"],
     "--publication: unknown publication 'nope_pub' (no cluster in {file} has it)"),
    (["--subscriber", "pg-billing", "--publisher", "pg-us", "--publication", "nope_pub"],
     "--publication: unknown publication 'nope_pub' in cluster 'main' (known: inventory_pub)"),
    (["--subscriber", "pg-billing", "--publication", "inventory_pub", "--name", "inventory_sub"],
     "--name: subscription 'inventory_sub' already exists in {file} (cluster 'billing')"),
    (["--subscriber", "pg-billing", "--publication", "inventory_pub", "--name", "Bad-Name"],
     f"--name: 'Bad-Name' {IDENT}"),
    (["--subscriber", "pg-billing", "--publication", "1pub"], f"--publication: '1pub' {IDENT}"),
    (["--subscriber", "pg-billing", "--publisher", "pg-us", "--tables", "orders;drop"], f"--tables: 'orders;drop' {IDENT}"),
    (["--subscriber", "pg-billing", "--publisher", "pg-us", "--tables", "orders,orders"],
     "--tables: 'orders' is listed twice"),
    (["--subscriber", "pg-billing", "--publisher", "pg-us", "--tables", "orders", "--columns", "orders:id,Qty"],
     f"--columns: 'Qty' {IDENT}"),
    (["--subscriber", "pg-billing", "--publisher", "pg-us", "--tables", "orders", "--row-filter", "products:id > 1"],
     "--row-filter: table 'products' is not in --tables (orders)"),
    (["--subscriber", "pg-billing", "--publisher", "pg-us", "--tables", "orders", "--row-filter", "orders"],
     "--row-filter: 'orders' is not TABLE:VALUE"),
    (["--subscriber", "pg-billing", "--publisher", "pg-us", "--tables", "orders", "--database", "nope"],
     "--database: cluster 'main' has no database 'nope' in {file}"),
    (["--subscriber", "pg-billing", "--publication", "inventory_pub", "--database", "nope"],
     "--database: cluster 'billing' has no database 'nope' in {file} (known: production)"),
    (["--subscriber", "pg-billing", "--publisher", "pg-us", "--tables", "products", "--publication", "inventory_pub",
      "--columns", "products:id"],
     "--tables: table 'products' is already in publication 'inventory_pub'; its row filter and column list stay as "
     "they are"),
    (["--subscriber", "pg-billing", "--publisher", "pg-us", "--tables", "orders", "--publication", "inventory_pub"],
     "--publication: 'inventory_pub' already feeds inventory_sub (cluster billing); adding tables would change what "
     "they receive: publish the tables in a new publication"),
    (["--subscriber", "pg-billing"], "give --publication NAME, or --publisher NODE and --tables T1,T2"),
    (["--subscriber", "pg-billing", "--tables", "orders"],
     "--tables needs --publisher NODE: the primary that publishes them"),
    (["--subscriber", "pg-billing", "--publication", "inventory_pub", "--columns", "orders:id"],
     "--row-filter and --columns apply to --tables"),
]


@pytest.mark.parametrize(("args", "message"), ADD_REFUSALS, ids=[m.split(":")[0] + str(i)
                                                                  for i, (_a, m) in enumerate(ADD_REFUSALS)])
@pytest.mark.parametrize("dry_run", [False, True], ids=["run", "dry-run"])
def test_add_refusals(topo_file: Path, args: list[str], message: str, dry_run: bool) -> None:
    before = topo_file.read_bytes()
    res = CliRunner().invoke(app, ["add-subscription", str(topo_file), *args, *(["--dry-run"] if dry_run else [])])
    assert res.exit_code == 2, res.output
    assert res.output.splitlines() == [f"error: {message.format(file=topo_file)}"]
    assert topo_file.read_bytes() == before
    assert [p.name for p in topo_file.parent.iterdir()] == ["global-saas.yaml"]


def test_add_on_an_invalid_file_lists_its_problems(topo_file: Path) -> None:
    topo_file.write_text(topo_file.read_text().replace("upstream: pg-us", "upstream: pg-xx"))
    res = CliRunner().invoke(app, ["add-subscription", str(topo_file), "--subscriber", "pg-billing",
                                   "--publication", "inventory_pub"])
    assert res.exit_code == 2
    assert res.output.splitlines() == ["error: clusters.main.nodes.pg-eu.upstream: unknown node 'pg-xx' in cluster 'main'"]


def test_remove_unknown_subscription(topo_file: Path) -> None:
    before = topo_file.read_bytes()
    res = CliRunner().invoke(app, ["remove-subscription", str(topo_file), "nope_sub"])
    assert res.exit_code == 2
    assert res.output.splitlines() == [f"error: unknown subscription 'nope_sub': not in {topo_file} nor on any primary"]
    assert topo_file.read_bytes() == before


@pytest.mark.parametrize("name", ["nope_sub", "inventory_sub"], ids=["unknown", "in-the-file"])
@pytest.mark.parametrize("dry_run", [False, True], ids=["run", "dry-run"])
def test_remove_with_docker_unreachable(topo_file: Path, monkeypatch: pytest.MonkeyPatch, name: str,
                                        dry_run: bool) -> None:
    # Not "unknown subscription" (exit 2): nothing could be asked, so say why (exit 1).
    def unreachable() -> None:
        raise DockerUnavailable("cannot reach the Docker daemon (ConnectionError: refused)")

    monkeypatch.setattr(gateway, "client", unreachable)
    before = topo_file.read_bytes()
    res = CliRunner().invoke(app, ["remove-subscription", str(topo_file), name, *(["--dry-run"] if dry_run else [])])
    assert res.exit_code == 1, res.output
    assert res.output.splitlines() == ["error: cannot reach the Docker daemon (ConnectionError: refused)"]
    assert topo_file.read_bytes() == before
    assert [p.name for p in topo_file.parent.iterdir()] == ["global-saas.yaml"]


def test_default_names() -> None:
    assert default_name("orders_pub", "pg-billing") == "orders_pg_billing_sub"
    assert default_name("inventory", "pg-sa") == "inventory_pg_sa_sub"
    assert default_name("_pub", "pg-sa") == "_pub_pg_sa_sub"


def test_default_name_too_long_is_refused(topo_file: Path) -> None:
    long_pub = "p" * 60
    res = CliRunner().invoke(app, ["add-subscription", str(topo_file), "--subscriber", "pg-billing",
                                   "--publisher", "pg-us", "--tables", "orders", "--publication", long_pub])
    assert res.exit_code == 2
    assert res.output.splitlines() == [f"error: --name (default): '{long_pub}_pg_billing_sub' is longer than 63 bytes"]


def test_after_a_failover_the_promoted_node_is_the_publisher(topo_file: Path) -> None:
    state.update("t-subcli", lambda rt: rt.model_copy(update={"primaries": {"main": "pg-eu", "billing": "pg-billing"}}))
    before = topo_file.read_bytes()
    res = CliRunner().invoke(app, ["add-subscription", str(topo_file), "--subscriber", "pg-billing",
                                   "--publisher", "pg-us", "--tables", "orders"])
    assert res.exit_code == 2
    assert res.output.splitlines() == [
        "error: --publisher: pg-us is not the primary of cluster 'main' (pg-eu is): publications live on a cluster's primary"]
    assert topo_file.read_bytes() == before

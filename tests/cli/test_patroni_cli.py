"""ha: patroni on the command line (no Docker needed): bad input stops `up` before Docker; the
commands that go through Patroni refuse bad options with one line, exit 2; those that would act
around Patroni (a Patroni cluster as a logical subscriber) refuse it, naming it."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from pgtopo.cli.main import app
from tests.support.topologies import GLOBAL_SAAS, TOPOLOGIES

PATRONI = TOPOLOGIES / "global-saas-patroni.yaml"


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
def test_bad_options_of_commands_through_patroni(runner: CliRunner, args: list[str], message: str) -> None:
    res = runner.invoke(app, args)
    assert (res.exit_code, res.output.splitlines()) == (2, [message])


def _patroni_subscriber(tmp_path: Path) -> Path:
    """The reference file where the Patroni cluster main also subscribes (to billing)."""
    text = PATRONI.read_text()
    anchor = "    publications:\n      inventory_pub:"
    assert anchor in text and "    nodes:\n      pg-billing:" in text
    text = text.replace(anchor, "    subscriptions:\n      back_sub:\n        publisher: billing\n"
                                "        publication: billing_pub\n" + anchor, 1)
    text = text.replace("    nodes:\n      pg-billing:", "    publications:\n      billing_pub:\n"
                        "        database: production\n        tables: [products]\n    nodes:\n      pg-billing:", 1)
    path = tmp_path / "patroni-subscriber.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(("args", "command"), [
    (["add-subscription", "--subscriber", "pg-us", "--publisher", "pg-billing", "--tables", "products"],
     "add-subscription"),
    (["add-subscription", "--subscriber", "pg-us", "--publication", "billing_pub", "--name", "more_sub"],
     "add-subscription"),
    (["remove-subscription", "back_sub"], "remove-subscription"),
])
def test_a_patroni_subscriber_is_refused_with_the_reason(runner: CliRunner, tmp_path: Path, args: list[str],
                                                         command: str) -> None:
    res = runner.invoke(app, [args[0], str(_patroni_subscriber(tmp_path)), *args[1:]])
    assert res.exit_code == 2, res.output
    assert res.output.splitlines() == [
        f"error: clusters.main.ha: patroni: `pgtopo {command}` does not act on Patroni cluster main as a subscriber: "
        "it would change tables and the subscription on its PostgreSQL around Patroni (a Patroni publisher goes "
        "through Patroni)"]


@pytest.mark.parametrize("args", [
    ["add-subscription", "--subscriber", "pg-billing", "--publisher", "pg-us", "--tables", "orders"],
    ["add-subscription", "--subscriber", "pg-billing", "--publication", "inventory_pub", "--name", "more_sub"],
    ["remove-subscription", "inventory_sub"],
])
def test_a_patroni_publisher_is_not_refused(runner: CliRunner, args: list[str]) -> None:
    """A Patroni publisher goes through Patroni: with nothing running, the command gets as far as
    connecting to the live nodes (exit 1), not the refusal (exit 2)."""
    res = runner.invoke(app, [args[0], str(PATRONI), *args[1:]])
    assert res.exit_code == 1, res.output
    assert "not running" in res.output and "Patroni" not in res.output

"""`pgtopo latency`, `partition` and `heal`: bad input exits 2 before anything touches Docker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from pgtopo.cli.main import app
from pgtopo.model.topology import Topology
from pgtopo.network import latency as L
from tests.support.topologies import GLOBAL_SAAS


@pytest.mark.parametrize(("args", "message"), [
    (["partition", "{f}", "pg-xx"], "error: unknown region or node 'pg-xx'"),
    (["heal", "{f}", "mars"], "error: unknown region or node 'mars'"),
    (["latency", "set", "{f}", "us-east", "mars", "10ms"], "error: unknown region 'mars'"),
    (["latency", "set", "{f}", "us-east", "eu-west", "fast"], "error: 'fast' is not a duration"),
    (["latency", "set", "{f}", "us-east", "eu-west"], "Missing argument 'RTT'"),
    (["latency", "reset", "{f}", "us-east"], "error: usage: pgtopo latency reset FILE [REGION_A REGION_B]"),
    (["latency", "frobnicate", "{f}"], "No such command 'frobnicate'"),
    (["latency", "{f}"], "No such command"),
    (["latency", "show", "{f}", "--jitter", "5ms"], "No such option: --jitter"),
    (["latency", "reset", "{f}", "--json"], "No such option: --json"),
])
def test_cli_bad_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], message: str) -> None:
    monkeypatch.setenv("PGTOPO_STATE_DIR", str(tmp_path / "state"))
    result = CliRunner().invoke(app, [a.replace("{f}", str(GLOBAL_SAAS)) for a in args])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not (tmp_path / "state").exists()  # nothing changed


def test_cli_single_region_has_nothing_to_partition(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGTOPO_STATE_DIR", str(tmp_path / "state"))
    f = tmp_path / "solo.yaml"
    f.write_text("name: solo\nregions: {here: {}}\nclusters:\n  main:\n    nodes:\n"
                 "      a: {region: here, role: primary}\n")
    result = CliRunner().invoke(app, ["partition", str(f), "here"])
    assert result.exit_code == 2
    assert "single region: there is no cross-region link" in result.output


def test_cli_latency_subcommands_reach_the_domain(monkeypatch: pytest.MonkeyPatch) -> None:
    """`latency set` and `latency reset` pass their arguments on (the relay is replaced by a recorder)."""
    calls: list[tuple[Any, ...]] = []

    def set_link(topo: Topology, a: str, b: str, *, rtt: str, jitter: str | None = None) -> L.LinkSetting:
        calls.append(("set", topo.name, a, b, rtt, jitter))
        return L.LinkSetting(120.0, 5.0)

    def reset(topo: Topology, pair: tuple[str, str] | None = None) -> list[str]:
        calls.append(("reset", topo.name, pair))
        return ["eu-west|us-east"] if pair else []

    monkeypatch.setattr(L, "set_link", set_link)
    monkeypatch.setattr(L, "reset", reset)
    runner = CliRunner()
    res = runner.invoke(app, ["latency", "set", str(GLOBAL_SAAS), "us-east", "eu-west", "120ms", "--jitter", "5ms"])
    assert res.exit_code == 0, res.output
    assert res.output.splitlines() == ["✓ us-east <-> eu-west: round trip 120 ms ±5 in effect on 'global-saas'",
                                       "measure with `pgtopo latency show FILE`"]
    res = runner.invoke(app, ["latency", "reset", str(GLOBAL_SAAS), "us-east", "eu-west"])
    assert res.exit_code == 0, res.output
    assert "(reset: eu-west <-> us-east)" in res.output
    res = runner.invoke(app, ["latency", "reset", str(GLOBAL_SAAS)])
    assert res.exit_code == 0, res.output
    assert "(reset: nothing was overridden)" in res.output
    assert calls == [("set", "global-saas", "us-east", "eu-west", "120ms", "5ms"),
                     ("reset", "global-saas", ("us-east", "eu-west")), ("reset", "global-saas", None)]

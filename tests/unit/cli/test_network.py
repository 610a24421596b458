"""`pgtopo latency`, `partition` and `heal`: bad input exits 2 before anything touches Docker."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

import pgtopo.cli.main  # noqa: F401  (registers the commands on app)
from pgtopo.cli.app import app
from tests.support.topologies import GLOBAL_SAAS


@pytest.mark.parametrize(("args", "message"), [
    (["partition", "{f}", "pg-xx"], "error: unknown region or node 'pg-xx'"),
    (["heal", "{f}", "mars"], "error: unknown region or node 'mars'"),
    (["latency", "{f}", "set", "us-east", "mars", "10ms"], "error: unknown region 'mars'"),
    (["latency", "{f}", "set", "us-east", "eu-west", "fast"], "error: 'fast' is not a duration"),
    (["latency", "{f}", "set", "us-east", "eu-west"], "error: usage: pgtopo latency FILE set"),
    (["latency", "{f}", "reset", "us-east"], "error: usage: pgtopo latency FILE reset"),
    (["latency", "{f}", "frobnicate"], "error: unknown action 'frobnicate'"),
    (["latency", "{f}", "--jitter", "5ms"], "error: --jitter goes with `set`"),
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

"""Commands that change a topology take its command lock (--no-wait refuses, else they wait and say
for what); commands that only read never take it. The holder is another real process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from pgtopo.cli.main import app
from pgtopo.runtime import lock
from tests.support.locks import held_elsewhere
from tests.support.topologies import GLOBAL_SAAS

CHANGING = {"up", "down", "failover", "switchover", "rejoin", "kill", "partition", "heal", "latency set",
            "latency reset", "add-subscription", "remove-subscription", "bench ryw"}


def _commands(cmd: Any, prefix: str = "") -> dict[str, Any]:
    """Every command of the app by its full name ("latency set"); typer's own click has the classes."""
    if hasattr(cmd, "commands"):
        out: dict[str, Any] = {}
        for name, sub in cmd.commands.items():
            out.update(_commands(sub, f"{prefix}{name} "))
        return out
    return {prefix.strip(): cmd}


def test_every_command_that_changes_a_topology_has_no_wait_and_no_other() -> None:
    commands = _commands(typer.main.get_command(app))
    with_option = {name for name, c in commands.items() if any("--no-wait" in p.opts for p in c.params)}
    assert with_option == CHANGING
    assert {"status", "verify", "env", "ls", "validate", "render", "graph", "latency show"} <= set(commands) - CHANGING


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PGTOPO_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


def test_no_wait_refuses_naming_the_holder(state_dir: Path) -> None:
    with held_elsewhere("global-saas", state_dir=state_dir) as holder:
        res = CliRunner().invoke(app, ["kill", str(GLOBAL_SAAS), "pg-us", "--no-wait"])
    assert res.exit_code == 1
    lines = res.output.splitlines()
    assert lines[0].startswith(f"error: topology 'global-saas' is busy: `pgtopo failover t.yaml --yes` "
                               f"(pid {holder.pid}, started ")
    assert lines[1:] == ["try again when it has finished, or leave out --no-wait to wait for it"]


def test_a_second_command_waits_saying_for_what_then_gives_up_at_the_bound(
        state_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lock, "WAIT_S", 1.0)
    with held_elsewhere("global-saas", state_dir=state_dir) as holder:
        res = CliRunner().invoke(app, ["heal", str(GLOBAL_SAAS)])
    assert res.exit_code == 1
    lines = res.output.splitlines()
    assert "lock" in lines[0] and f"waiting for `pgtopo failover t.yaml --yes` (pid {holder.pid}, started " in lines[0]
    assert lines[1].startswith("error: gave up after 1 s waiting for `pgtopo failover t.yaml --yes`")


def test_a_dry_run_never_waits(state_dir: Path) -> None:
    args = ["add-subscription", str(GLOBAL_SAAS), "--subscriber", "pg-xx", "--publication", "inventory_pub", "--no-wait"]
    with held_elsewhere("global-saas", state_dir=state_dir):
        dry = CliRunner().invoke(app, [*args, "--dry-run"])
        real = CliRunner().invoke(app, args)
    # The dry run changes nothing: it goes on at once (to the refusal of pg-xx); the real one is refused.
    assert (dry.exit_code, dry.output.splitlines()) == (
        2, ["error: --subscriber: unknown node 'pg-xx' (known: pg-us, pg-eu, pg-billing)"])
    assert real.exit_code == 1 and "is busy" in real.output

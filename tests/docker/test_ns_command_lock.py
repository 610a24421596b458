"""Two commands at once on one topology, as two real processes: the second waits for the first
(saying for what) or, with --no-wait, refuses naming it; an `up` that waited for a failover keeps
the primary the failover chose."""

from __future__ import annotations

from pathlib import Path

from pgtopo.ha import promotion
from pgtopo.lifecycle import deploy
from pgtopo.model.loader import load
from pgtopo.runtime import lock, state
from tests.support.processes import Pgtopo, pgtopo

TOPOLOGY = """
name: {name}
regions: {{dc1: {{}}}}
clusters:
  main:
    databases:
      app: {{schema: "CREATE TABLE t (id bigint PRIMARY KEY);"}}
    nodes:
      pg-a: {{region: dc1, role: primary}}
      pg-b: {{region: dc1, upstream: pg-a}}
"""


def topology(tmp_path: Path, name: str) -> Path:
    deploy.down(name, volumes=True)  # whatever an interrupted earlier run left
    path = tmp_path / "t.yaml"
    path.write_text(TOPOLOGY.format(name=name))
    return path


def test_two_ups_at_once(tmp_path: Path, state_dir: Path) -> None:
    name = "ns-lock-up"
    path = topology(tmp_path, name)
    first = Pgtopo("up", str(path))
    try:
        first.wait_for_line(r"pg-a +creating container")  # it holds the lock and is building

        rc, out = pgtopo("up", str(path), "--no-wait")
        assert rc == 1, out
        assert f"error: topology '{name}' is busy: `pgtopo up {path}` (pid {first.pid}, started " in out
        assert "try again when it has finished, or leave out --no-wait to wait for it" in out

        second = Pgtopo("up", str(path))
        waiting = second.wait_for_line(r"lock +waiting for")
        assert f"waiting for `pgtopo up {path}` (pid {first.pid}, started " in waiting
        assert first.finish() == 0, first.output()
        assert second.finish() == 0, second.output()
        # The second one found everything the first built, and removed nothing of it.
        assert f"topology '{name}' is up in" in first.output()
        assert f"topology '{name}' is already up; nothing changed" in second.output()
        assert "removing" not in second.output()
    finally:
        first.kill()
        deploy.down(name, volumes=True)


def test_an_up_that_waited_for_a_failover_keeps_its_new_primary(tmp_path: Path, state_dir: Path) -> None:
    name = "ns-lock-fo"
    path = topology(tmp_path, name)
    topo = load(path)
    try:
        assert pgtopo("up", str(path))[0] == 0
        assert pgtopo("kill", str(path), "pg-a")[0] == 0
        # A failover holds the lock (here this test process carries it out); `up` starts meanwhile.
        with lock.command_lock(name, command="pgtopo failover t.yaml --yes"):
            up = Pgtopo("up", str(path))
            up.wait_for_line(r"waiting for `pgtopo failover t.yaml --yes`")
            plan = promotion.plan_live(topo, mode="failover", cluster=None, to="pg-b")
            promotion.execute_failover(topo, plan, started=0.0, progress=lambda *a: None)
            assert state.current_primaries(topo) == {"main": "pg-b"}
        assert up.finish() == 0, up.output()
        # It read the primaries once it had the lock: pg-b stays the primary, pg-a (fenced) is left alone.
        assert state.current_primaries(topo) == {"main": "pg-b"}
        rows = {line.split("│")[1].strip(): line.split("│")[4].strip() for line in up.out if line.count("│") > 5}
        assert rows["pg-b"] == "primary"
        assert rows["pg-a"] == "stopped"
    finally:
        deploy.down(name, volumes=True)

"""`down` always works: with the topology file broken or gone, `down --name` removes what `up` made, by label."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from pgtopo.cli.main import app
from pgtopo.lifecycle import deploy
from pgtopo.runtime import gateway

NAME = "ns-down"
TOPOLOGY = f"""
name: {NAME}
regions: {{dc1: {{}}}}
clusters:
  main:
    databases:
      app: {{schema_file: schemas/app.sql}}
    nodes:
      pg-a: {{region: dc1, role: primary}}
      pg-b: {{region: dc1, upstream: pg-a}}
"""


def labelled(name: str) -> tuple[int, int, int]:
    c = gateway.client()
    f = {"label": f"pgtopo.topology={name}"}
    return len(c.containers.list(all=True, filters=f)), len(c.networks.list(filters=f)), len(c.volumes.list(filters=f))


def test_down_by_name_after_the_schema_file_and_then_the_topology_file_are_gone(tmp_path: Path,
                                                                                 state_dir: Path) -> None:
    deploy.down(NAME, volumes=True)  # whatever an interrupted earlier run left
    path = tmp_path / "t.yaml"
    path.write_text(TOPOLOGY)
    (tmp_path / "schemas").mkdir()
    schema = tmp_path / "schemas" / "app.sql"
    schema.write_text("CREATE TABLE t (id bigint PRIMARY KEY);\n")
    runner = CliRunner()
    try:
        res = runner.invoke(app, ["up", str(path)])
        assert res.exit_code == 0, res.output
        assert labelled(NAME) == (2, 1, 2)

        # The user deletes the schema file: the topology file no longer loads, and says how to go on.
        schema.unlink()
        res = runner.invoke(app, ["down", str(path)])
        assert res.exit_code == 2
        lines = res.output.strip().splitlines()
        assert "schemas/app.sql" in lines[0]
        assert lines[-1] == (f"to remove it anyway: `pgtopo down --name {NAME}` (by label, no file needed; "
                             "`pgtopo ls` lists the names)")
        assert labelled(NAME) == (2, 1, 2)  # nothing removed

        # Then the file itself: `ls` still names the topology, and `down --name` removes it.
        path.unlink()
        res = runner.invoke(app, ["ls"])
        assert res.exit_code == 0
        assert any(line.split()[1:3] == [NAME, "│"] and "2/2" in line for line in res.output.splitlines()), res.output
        res = runner.invoke(app, ["down", "--name", NAME])
        assert res.exit_code == 0, res.output
        assert res.output.splitlines()[0] == f"✓ removed 2 containers, 1 networks, 0 volumes of '{NAME}'"
        assert labelled(NAME) == (0, 0, 2)  # the data is kept without --volumes

        # What is left (only its volumes) is still listed, with the command that removes it.
        res = runner.invoke(app, ["ls"])
        assert (f"{NAME}: no container, only its data volumes (kept by `down`); `pgtopo down --name {NAME} "
                "--volumes` removes them") in res.output
        res = runner.invoke(app, ["down", "--name", NAME, "--volumes"])
        assert res.exit_code == 0, res.output
        assert res.output.strip() == f"✓ removed 0 containers, 0 networks, 2 volumes of '{NAME}'"
        assert labelled(NAME) == (0, 0, 0)
        assert NAME not in runner.invoke(app, ["ls"]).output
    finally:
        deploy.down(NAME, volumes=True)

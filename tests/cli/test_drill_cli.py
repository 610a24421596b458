"""`pgtopo drill`: validation (exit 2, exact messages), the schema, and judging a report again. No Docker."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pgtopo.cli.main import app
from pgtopo.drill import report, spec
from pgtopo.drill.verdict import judge
from tests.support.drill_logs import crash_log
from tests.support.topologies import REPO

DRILLS = REPO / "topologies" / "drills"
GOOD = """\
drill: t
topology: {topology}
duration: 20s
steps:
  - at: 5s
    kill: primary
  - after: 1s
    failover:
expect:
  acked_lost: reported
"""


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def write(tmp_path: Path, text: str, *, topology: str = str(REPO / "topologies" / "global-saas.yaml")) -> Path:
    p = tmp_path / "drill.yaml"
    p.write_text(text.format(topology=topology))
    return p


@pytest.mark.parametrize("name", sorted(p.name for p in DRILLS.glob("*.yaml")))
def test_the_shipped_drills_are_valid(runner: CliRunner, name: str) -> None:
    res = runner.invoke(app, ["drill", "validate", str(DRILLS / name)])
    assert res.exit_code == 0, res.output
    topology = spec.load(DRILLS / name).topology
    expected = {
        "../four-regions.yaml": "against topology 'four-regions' (four-regions.yaml), cluster main, database app\n",
        "../payments.yaml": "against topology 'payments' (payments.yaml), cluster payments, database payments, "
                            "1 subscriber(s)",
        "../global-saas.yaml": "against topology 'global-saas' (global-saas.yaml), cluster main, database production, "
                               "1 subscriber(s)",
        "../global-saas-patroni.yaml": "against topology 'global-saas-patroni' (global-saas-patroni.yaml), cluster "
                                       "main, database production, 1 subscriber(s)",
    }[topology]
    assert expected in res.output


def test_validate_ok(runner: CliRunner, tmp_path: Path) -> None:
    p = write(tmp_path, GOOD)
    res = runner.invoke(app, ["drill", "validate", str(p)])
    assert res.exit_code == 0
    assert res.output.strip() == (f"✓ {p}: drill 't' is valid: 2 steps in 20 s against topology 'global-saas' "
                                  "(global-saas.yaml), cluster main, database production, 1 subscriber(s)")


def test_validate_lists_every_problem_of_both_stages(runner: CliRunner, tmp_path: Path) -> None:
    p = write(tmp_path, GOOD.replace("kill: primary", "kill: pg-xx").replace("after: 1s", "after: soon"))
    res = runner.invoke(app, ["drill", "validate", str(p)])
    assert res.exit_code == 2
    assert res.output.splitlines() == ["steps.1.after: 'soon' is not a duration (examples: 500ms, 10s, 2m)",
                                       f"{p}: 1 problem(s)"]
    p = write(tmp_path, GOOD.replace("kill: primary", "kill: pg-xx").replace("at: 5s", "at: 25s"))
    res = runner.invoke(app, ["drill", "validate", str(p)])
    assert res.exit_code == 2
    assert res.output.splitlines() == [
        "steps.0.kill: unknown node 'pg-xx' (known: pg-us, pg-eu, pg-billing; or primary, replica, old-primary)",
        "steps.0.at: 25s is after the end of the drill (duration 20s)",
        f"{p}: 2 problem(s)",
    ]


def test_the_topology_is_found_beside_the_drill_or_given(runner: CliRunner, tmp_path: Path) -> None:
    p = write(tmp_path, GOOD, topology="missing.yaml")
    res = runner.invoke(app, ["drill", "validate", str(p)])
    assert res.exit_code == 2
    assert res.output.strip() == f"error: topology: {tmp_path / 'missing.yaml'}: no such file"
    res = runner.invoke(app, ["drill", "validate", str(p), "--topology", str(REPO / "topologies" / "global-saas.yaml")])
    assert res.exit_code == 0, res.output


@pytest.mark.parametrize(("text", "message"), [
    ("", "the file is empty"),
    ("- a\n", "the top level must be a mapping, not list"),
])
def test_unreadable_drill_file(runner: CliRunner, tmp_path: Path, text: str, message: str) -> None:
    p = tmp_path / "d.yaml"
    p.write_text(text)
    for cmd in ("validate", "run"):
        res = runner.invoke(app, ["drill", cmd, str(p)])
        assert res.exit_code == 2, cmd
        assert res.output.strip() == f"error: {p}: {message}", cmd


def test_run_refuses_a_bad_drill_before_touching_docker(runner: CliRunner, tmp_path: Path) -> None:
    p = write(tmp_path, GOOD.replace("kill: primary", "kill: pg-xx"))
    res = runner.invoke(app, ["drill", "run", str(p), "--no-report"])
    assert res.exit_code == 2
    assert res.output.strip() == ("error: steps.0.kill: unknown node 'pg-xx' (known: pg-us, pg-eu, pg-billing; or "
                                  "primary, replica, old-primary)")


def test_schema(runner: CliRunner) -> None:
    res = runner.invoke(app, ["drill", "schema"])
    assert res.exit_code == 0
    assert json.loads(res.output)["title"] == "pgtopo drill file"


def _report(tmp_path: Path, reported: int) -> Path:
    d = spec.parse({"drill": "t", "topology": "x.yaml", "duration": 20, "expect": {"acked_lost": "reported"}})
    lg = crash_log(reported_commits=reported)
    return report.write(tmp_path / f"r{reported}", drill=d, log=lg, verdict=judge(lg, d.expect))


def test_judge_a_report_again(runner: CliRunner, tmp_path: Path) -> None:
    res = runner.invoke(app, ["drill", "judge", str(_report(tmp_path, 3))])
    assert res.exit_code == 0, res.output
    assert "verdict of drill t" in res.output and "FAIL" not in res.output

    res = runner.invoke(app, ["drill", "judge", str(_report(tmp_path, 9)), "--json"])
    assert res.exit_code == 1
    out, err = res.stdout, res.stderr
    assert json.loads(out)["passed"] is False
    assert err.strip() == "error: drill t FAILED: 1 of 3 checks (acked_lost)"


def test_judge_something_else(runner: CliRunner, tmp_path: Path) -> None:
    res = runner.invoke(app, ["drill", "judge", str(tmp_path)])
    assert res.exit_code == 2
    assert res.output.strip() == f"error: {tmp_path}: not a drill report (events.json missing)"

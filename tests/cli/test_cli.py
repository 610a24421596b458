"""The CLI's contract: exit codes and messages, no tracebacks. No Docker needed."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import docker.errors
import psycopg
import pytest
import requests.exceptions
from typer.testing import CliRunner

from pgtopo import errors
from pgtopo.cli.main import app, main
from pgtopo.model import loader

REPO = Path(__file__).resolve().parents[2]
GLOBAL = str(REPO / "topologies" / "global-saas.yaml")


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_validate_ok(runner: CliRunner) -> None:
    res = runner.invoke(app, ["validate", GLOBAL])
    assert res.exit_code == 0
    assert "topology 'global-saas' is valid: 3 regions, 2 clusters, 3 nodes (1 replicas), 1 publications, " \
           "1 subscriptions" in res.output


def test_validate_lists_every_problem(runner: CliRunner, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(Path(GLOBAL).read_text().replace("upstream: pg-us", "upstream: pg-xx")
                   .replace("region: ap-south", "region: mars"))
    res = runner.invoke(app, ["validate", str(bad)])
    assert res.exit_code == 2
    assert res.output.splitlines() == [
        "clusters.main.nodes.pg-eu.upstream: unknown node 'pg-xx' in cluster 'main'",
        "clusters.billing.nodes.pg-billing.region: unknown region 'mars'",
        f"{bad}: 2 problem(s)",
    ]
    assert "Traceback" not in res.output


@pytest.mark.parametrize(("text", "message"), [
    ("", "the file is empty"),
    ("[1, 2]\n", "the top level must be a mapping, not list"),
    ("name: x\n  bad: indent\n", "YAML syntax error at line 2, column 6: mapping values are not allowed here"),
])
def test_unreadable_file_is_one_line_exit_2(runner: CliRunner, tmp_path: Path, text: str, message: str) -> None:
    p = tmp_path / "t.yaml"
    p.write_text(text)
    for cmd in ("validate", "render", "graph", "up", "down"):
        res = runner.invoke(app, [cmd, str(p)])
        assert res.exit_code == 2, cmd
        assert res.output.strip() == f"error: {p}: {message}", cmd


def test_missing_file(runner: CliRunner, tmp_path: Path) -> None:
    res = runner.invoke(app, ["up", str(tmp_path / "nope.yaml")])
    assert res.exit_code == 2
    assert res.output.strip() == f"error: {tmp_path / 'nope.yaml'}: no such file"


def test_render_writes_the_files(runner: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = runner.invoke(app, ["render", GLOBAL, "--out", str(out)])
    assert res.exit_code == 0, res.output
    names = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert names == [
        "pg-billing/init.sql", "pg-billing/pg_hba.conf", "pg-billing/postgresql.conf", "pg-billing/subscriptions.sql",
        "pg-eu/pg_hba.conf", "pg-eu/postgresql.conf",
        "pg-us/init.sql", "pg-us/pg_hba.conf", "pg-us/postgresql.conf", "pg-us/slots.sql",
    ]
    assert "10 files for 3 nodes" in res.output


def test_render_is_byte_identical_twice(runner: CliRunner, tmp_path: Path) -> None:
    for d in ("a", "b"):
        assert runner.invoke(app, ["render", GLOBAL, "--out", str(tmp_path / d)]).exit_code == 0
    a = {p.relative_to(tmp_path / "a"): p.read_bytes() for p in (tmp_path / "a").rglob("*") if p.is_file()}
    b = {p.relative_to(tmp_path / "b"): p.read_bytes() for p in (tmp_path / "b").rglob("*") if p.is_file()}
    assert a == b


@pytest.mark.parametrize(("fmt", "needle"), [
    ("tree", "pg-us ──▶ pg-eu  (physical async, 80 ms)"),
    ("mermaid", 'pg_us -.->|"inventory_pub -> inventory_sub, 200 ms"| pg_billing'),
    ("dot", '"pg-us" -> "pg-billing" [label="inventory_pub -> inventory_sub, 200 ms", style=dashed];'),
])
def test_graph(runner: CliRunner, fmt: str, needle: str) -> None:
    res = runner.invoke(app, ["graph", GLOBAL, "--format", fmt])
    assert res.exit_code == 0
    assert needle in res.output


def test_schema_is_json_schema(runner: CliRunner) -> None:
    res = runner.invoke(app, ["schema"])
    assert res.exit_code == 0
    schema = json.loads(res.output)
    assert schema["title"] == "pgtopo topology file"
    assert set(schema["required"]) == {"name", "regions", "clusters"}


def test_usage_error_is_exit_2(runner: CliRunner) -> None:
    res = runner.invoke(app, ["graph", GLOBAL, "--format", "png"])
    assert res.exit_code == 2


def test_docker_unreachable_is_one_line(runner: CliRunner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from pgtopo.runtime import gateway

    gateway.client.cache_clear()
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:9")
    monkeypatch.setenv("PGTOPO_STATE_DIR", str(tmp_path))
    try:
        res = runner.invoke(app, ["down", GLOBAL])
    finally:
        gateway.client.cache_clear()
    assert res.exit_code == 1
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot reach the Docker daemon")


def test_unreadable_inputs_are_exit_2(runner: CliRunner, tmp_path: Path) -> None:
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"name: \xff\xfe\n")
    res = runner.invoke(app, ["validate", str(binary)])
    assert res.exit_code == 2
    assert res.output.strip() == f"error: {binary}: not a UTF-8 text file (byte 6)"

    blocker = tmp_path / "file"
    blocker.write_text("x")
    res = runner.invoke(app, ["render", GLOBAL, "--out", str(blocker)])
    assert res.exit_code == 2
    assert res.output.strip().startswith(f"error: --out {blocker}: cannot write there")

    res = runner.invoke(app, ["add-subscription", str(tmp_path / "nope.yaml"), "--subscriber", "x",
                              "--publication", "p"])
    assert res.exit_code == 2
    assert res.output.strip() == f"error: {tmp_path / 'nope.yaml'}: no such file"


# -- one error handler for every command ----------------------------------------------------------

@pytest.mark.parametrize(("raised", "code", "line"), [
    (errors.InputError("bad input"), 2, "error: bad input"),
    (errors.PgtopoError("it failed"), 1, "error: it failed"),
    (KeyboardInterrupt(), 130, "interrupted"),
])
def test_schema_errors_map_to_exit_codes(runner: CliRunner, monkeypatch: pytest.MonkeyPatch,
                                         raised: BaseException, code: int, line: str) -> None:
    def fail() -> None:
        raise raised

    monkeypatch.setattr(loader, "json_schema", fail)
    res = runner.invoke(app, ["schema"])
    assert res.exit_code == code
    assert res.output.splitlines() == [line]


@pytest.mark.parametrize(("raised", "line"), [
    (psycopg.OperationalError("server closed the connection unexpectedly\n\tThis probably means..."),
     "error: database error: server closed the connection unexpectedly"),
    (docker.errors.NotFound("No such container: global-saas-pg-us"),
     "error: Docker error: No such container: global-saas-pg-us"),
    (requests.exceptions.ConnectionError("Connection aborted."), "error: Docker error: Connection aborted."),
    (psycopg.OperationalError(""), "error: database error: OperationalError"),
])
def test_untranslated_database_and_docker_errors_are_one_line_exit_1(
        runner: CliRunner, monkeypatch: pytest.MonkeyPatch, raised: Exception, line: str) -> None:
    from pgtopo.lifecycle import deploy

    def fail() -> None:
        raise raised

    monkeypatch.setattr(deploy, "running", fail)
    res = runner.invoke(app, ["ls"])
    assert res.exit_code == 1
    assert res.output.splitlines() == [line]


def test_an_unexpected_error_is_exit_3_with_the_traceback_in_the_crash_log(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    def bug() -> None:
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(loader, "json_schema", bug)
    monkeypatch.setenv("PGTOPO_STATE_DIR", str(tmp_path))
    monkeypatch.setattr(sys, "argv", ["pgtopo", "schema"])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 3
    log = tmp_path / "crash.log"
    assert capsys.readouterr().err.splitlines() == [
        "unexpected error: ZeroDivisionError: division by zero", f"traceback written to {log}"]
    assert "Traceback" in log.read_text() and "ZeroDivisionError" in log.read_text()


@pytest.mark.parametrize("flag", ["--cluster", "-c"])
@pytest.mark.parametrize(("args", "module", "function"), [
    (["env", GLOBAL, "--region", "eu-west"], "pgtopo.apps.endpoints", "app_endpoints"),
    (["bench", "ryw", GLOBAL, "--region", "eu-west"], "pgtopo.apps.routing_bench", "run"),
    (["failover", GLOBAL], "pgtopo.ha.promotion", "plan_live"),
    (["switchover", GLOBAL, "--to", "pg-eu"], "pgtopo.ha.promotion", "plan_live"),
], ids=["env", "bench ryw", "failover", "switchover"])
def test_one_cluster_option_everywhere(runner: CliRunner, monkeypatch: pytest.MonkeyPatch, flag: str,
                                       args: list[str], module: str, function: str) -> None:
    passed: list[str | None] = []

    def record(*_args: object, cluster: str | None, **_kwargs: object) -> None:
        passed.append(cluster)
        raise errors.InputError("stop here")

    monkeypatch.setattr(importlib.import_module(module), function, record)
    res = runner.invoke(app, [*args, flag, "billing"])
    assert (res.exit_code, res.output.strip(), passed) == (2, "error: stop here", ["billing"])
    res = runner.invoke(app, args)
    assert passed == ["billing", None]


def test_a_failover_done_only_in_part_exits_1_and_its_last_line_says_how_to_finish(
        runner: CliRunner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from pgtopo.ha import failover, promotion
    from tests.support.ha import saas_snap
    from tests.support.topologies import SAAS, topology_of

    plan = failover.plan_failover(topology_of(tmp_path, SAAS), saas_snap(), cluster=None, to=None)
    done = promotion.Outcome(plan=plan, timeline=2, unfinished=[
        failover.Unfinished("subscription inventory_sub on pg-billing cut off", failover.resume_command("main"),
                            failover.heal_text(("ap-south",)))])
    monkeypatch.setattr(promotion, "plan_live", lambda *_a, **_k: plan)
    monkeypatch.setattr(promotion, "execute_failover", lambda *_a, **_k: done)
    res = runner.invoke(app, ["failover", GLOBAL, "--yes"])
    assert res.exit_code == 1, res.output
    lines = res.output.splitlines()
    assert lines[-2] == (f"error: the failover of cluster main to {plan.candidate} is done only in part: 1 step(s) "
                         "not done")
    assert lines[-1] == (f"not done: subscription inventory_sub on pg-billing cut off; once ap-south is healed "
                         f"(`pgtopo heal {GLOBAL} ap-south`), finish with: pgtopo failover {GLOBAL} --resume "
                         "--cluster main")
    # Everything done: exit 0.
    done.unfinished.clear()
    assert runner.invoke(app, ["failover", GLOBAL, "--yes"]).exit_code == 0


def test_failover_resume_promotes_nothing(runner: CliRunner) -> None:
    for extra in (["--to", "pg-eu"], ["--force"]):
        res = runner.invoke(app, ["failover", GLOBAL, "--resume", *extra])
        assert (res.exit_code, res.output.strip()) == (2, "error: --resume promotes nothing: it takes no --to nor "
                                                          "--force")

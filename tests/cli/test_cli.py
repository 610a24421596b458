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
from pgtopo.cli.core import DOWN_WITHOUT_FILE
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
        # `down` adds how to remove the topology without its file.
        assert res.output.strip().splitlines() == [f"error: {p}: {message}", *([DOWN_WITHOUT_FILE] if cmd == "down"
                                                                              else [])], cmd


def test_down_of_a_file_that_no_longer_loads_says_how_to_remove_it_by_name(runner: CliRunner, tmp_path: Path) -> None:
    p = tmp_path / "t.yaml"
    p.write_text(Path(GLOBAL).read_text().replace("name: global-saas", "name: t-gone")
                 .replace("upstream: pg-us", "upstream: pg-xx"))
    res = runner.invoke(app, ["down", str(p)])
    assert res.exit_code == 2
    assert res.output.strip().splitlines() == [
        "error: clusters.main.nodes.pg-eu.upstream: unknown node 'pg-xx' in cluster 'main'",
        "to remove it anyway: `pgtopo down --name t-gone` (by label, no file needed; `pgtopo ls` lists the names)"]


@pytest.mark.parametrize(("args", "message"), [
    ([], "give the topology file, or --name NAME (`pgtopo ls` lists the names)"),
    ([GLOBAL, "--name", "global-saas"], "give the topology file or --name NAME, not both"),
    (["--name", "../etc"], "--name: '../etc' is not a topology name (lower-case letters, digits and '-', 1 to 40 "
                           "characters)"),
])
def test_down_needs_a_file_or_a_name(runner: CliRunner, args: list[str], message: str) -> None:
    res = runner.invoke(app, ["down", *args])
    assert res.exit_code == 2
    assert res.output.strip().splitlines() == [f"error: {message}"]


def test_down_by_name_reads_no_file(runner: CliRunner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from pgtopo.lifecycle import deploy

    calls: list[tuple[str, bool]] = []

    def down(name: str, *, volumes: bool) -> dict[str, int]:
        calls.append((name, volumes))
        return {"containers": 0, "networks": 0, "volumes": 2}

    monkeypatch.setenv("PGTOPO_STATE_DIR", str(tmp_path))
    monkeypatch.setattr(deploy, "down", down)
    monkeypatch.setattr(deploy, "running", lambda: {})
    res = runner.invoke(app, ["down", "--name", "t-gone", "--volumes"])
    assert res.exit_code == 0, res.output
    assert calls == [("t-gone", True)]
    assert res.output.strip().splitlines() == ["✓ removed 0 containers, 0 networks, 2 volumes of 't-gone'"]

    monkeypatch.setattr(deploy, "down", lambda name, *, volumes: {"containers": 0, "networks": 0, "volumes": 0})
    res = runner.invoke(app, ["down", "--name", "t-typo"])
    assert res.exit_code == 0
    assert res.output.strip().splitlines() == [
        "✓ removed 0 containers, 0 networks, 0 volumes of 't-typo'",
        "warning: nothing in Docker is labelled for 't-typo': `pgtopo ls` lists the topologies"]


def test_ls_shows_the_topologies_whose_volumes_down_kept(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    from pgtopo.lifecycle import deploy

    monkeypatch.setattr(deploy, "running", lambda: {
        "t-kept": {"nodes": 0, "running": 0, "volumes": 3, "file": None},
        "t-up": {"nodes": 2, "running": 2, "volumes": 2, "file": "/x/t.yaml"}})
    res = runner.invoke(app, ["ls"])
    assert res.exit_code == 0
    lines = res.output.splitlines()
    assert [[c for c in line.split() if c != "│"] for line in lines if line.startswith("│")] == [
        ["t-kept", "0/0", "3", "-"], ["t-up", "2/2", "2", "/x/t.yaml"]]
    assert "volumes" in lines[1]
    assert lines[-1] == "t-kept: no container, only its data volumes (kept by `down`); `pgtopo down --name t-kept " \
                        "--volumes` removes them"


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


def test_an_interrupted_command_says_what_it_did_and_exits_130(runner: CliRunner,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    def stopped() -> None:
        raise errors.Interrupted("`up` stopped before it finished", details=["ready: pg-us", "run `pgtopo up` again"])

    monkeypatch.setattr(loader, "json_schema", stopped)
    res = runner.invoke(app, ["schema"])
    assert res.exit_code == 130
    assert res.output.splitlines() == ["interrupted: `up` stopped before it finished", "ready: pg-us",
                                       "run `pgtopo up` again"]


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

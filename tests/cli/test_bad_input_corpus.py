"""The bad-input corpus: every mistaken or hostile file is refused by `pgtopo validate`.

One mutation of a valid file per case, with the exact problem line expected. Each case runs
through the CLI: exit 2, the line printed, no traceback; and `up` refuses it the same way
before Docker is reached (the Docker client is replaced by a failure), so nothing is created.
"""

from __future__ import annotations

import copy
import os
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from pgtopo.cli.main import app
from pgtopo.runtime import gateway
from tests.support.topologies import write_yaml as write

SCHEMA = """CREATE TABLE customers (
    id bigint PRIMARY KEY,
    region text NOT NULL,
    name text NOT NULL,
    tax_id text
);
CREATE TABLE orders (id bigint PRIMARY KEY, customer_id bigint NOT NULL);
"""

BASE: dict[str, Any] = {
    "name": "corpus",
    "regions": {"us": {}, "eu": {}},
    "latency": [{"between": ["us", "eu"], "rtt_ms": 80}],
    "clusters": {
        "main": {
            "databases": {"crm": {"schema": SCHEMA}},
            "nodes": {
                "pg-us": {"region": "us", "role": "primary", "settings": {"work_mem": "16MB"}},
                "pg-eu": {"region": "eu", "upstream": "pg-us"},
            },
            "publications": {"eu_pub": {"database": "crm", "tables": [
                {"name": "customers", "where": "region = 'eu'", "columns": ["id", "region", "name"]}]}},
        },
        "svc": {
            "databases": {"crm": {"schema": SCHEMA}},
            "nodes": {"svc-eu": {"region": "eu", "role": "primary"}},
            "subscriptions": {"eu_sub": {"publisher": "main", "publication": "eu_pub"}},
        },
    },
}

Mutation = Callable[[dict[str, Any]], Any]


def main(d: dict[str, Any]) -> dict[str, Any]:
    return d["clusters"]["main"]  # type: ignore[no-any-return]


def table(d: dict[str, Any]) -> dict[str, Any]:
    return main(d)["publications"]["eu_pub"]["tables"][0]  # type: ignore[no-any-return]


def schema(text: str) -> Mutation:
    return lambda d: main(d)["databases"]["crm"].update(schema=SCHEMA + text)


def setting(name: str, value: Any) -> Mutation:
    return lambda d: main(d)["nodes"]["pg-us"]["settings"].update({name: value})


SETTINGS = "clusters.main.nodes.pg-us.settings"


def add_database(name: str) -> Mutation:
    return lambda d: main(d)["databases"].update({name: {}})


SCHEMA_FIELD = "clusters.main.databases.crm.schema"
WHERE_FIELD = "clusters.main.publications.eu_pub.tables.0.where"
ONE_TRANSACTION = "the schema runs as one transaction, so it cannot hold transaction control or statements that " \
                  "cannot run inside one"


def where(expr: str) -> Mutation:
    return lambda d: table(d).update(where=expr)

# (case, mutation, a line `validate` must print)
CASES: list[tuple[str, Mutation, str]] = [
    # -- names that collide with pgtopo's own ---------------------------------------------------
    ("node named relay", lambda d: main(d)["nodes"].update(relay={"region": "us", "upstream": "pg-us"}),
     "clusters.main.nodes.relay: 'relay' is the relay container's name in every topology; choose another name"),
    ("node named pgtopo-relay",
     lambda d: main(d)["nodes"].update({"pgtopo-relay": {"region": "eu", "upstream": "pg-us"}}),
     "clusters.main.nodes.pgtopo-relay: 'pgtopo-relay' is the relay's network alias in every topology; "
     "choose another name"),
    ("publication pgtopo_probe",
     lambda d: main(d)["publications"].update(pgtopo_probe={"database": "crm", "tables": ["orders"]}),
     "clusters.main.publications.pgtopo_probe: 'pgtopo_probe' is pgtopo's own publication (the probe rows of "
     "`verify`); choose another name"),
    *[(f"database {db}", add_database(db),
       f"clusters.main.databases.{db}: '{db}' exists in every PostgreSQL cluster; choose another name")
      for db in ("postgres", "template0", "template1")],
    ("node whose slot is the failover's hold slot",
     lambda d: main(d)["nodes"].update({"pgtopo-failover-hold": {"region": "eu", "upstream": "pg-us"}}),
     "clusters.main.nodes.pgtopo-failover-hold: its slot would be 'pgtopo_failover_hold', the slot a failover holds "
     "WAL with; choose another name"),
    ("subscription named like the failover's hold slot",
     lambda d: d["clusters"]["svc"].update(
         subscriptions={"pgtopo_failover_hold": {"publisher": "main", "publication": "eu_pub"}}),
     "clusters.svc.subscriptions.pgtopo_failover_hold: 'pgtopo_failover_hold' is the slot a failover holds WAL with "
     "(a subscription's slot takes its name); choose another name"),
    ("subscription named like a replica's slot",
     lambda d: d["clusters"]["svc"].update(subscriptions={"pg_eu": {"publisher": "main", "publication": "eu_pub"}}),
     "clusters.svc.subscriptions.pg_eu: 'pg_eu' is the physical replication slot of node 'pg-eu' "
     "(a subscription's slot takes its name); choose another name"),
    ("schema creates schema pgtopo", schema("CREATE SCHEMA pgtopo;\n"),
     f"{SCHEMA_FIELD}: line 8: creates schema 'pgtopo', which pgtopo owns (the probe table of `verify`); "
     "choose another name"),
    ("schema creates schema pgtopo if not exists", schema('create schema if not exists "pgtopo";\n'),
     f"{SCHEMA_FIELD}: line 8: creates schema 'pgtopo', which pgtopo owns (the probe table of `verify`); "
     "choose another name"),
    ("schema creates schema pgtopo by role name", schema("CREATE SCHEMA AUTHORIZATION pgtopo;\n"),
     f"{SCHEMA_FIELD}: line 8: creates schema 'pgtopo', which pgtopo owns (the probe table of `verify`); "
     "choose another name"),
    ("schema renames a schema to pgtopo", schema("CREATE SCHEMA x;\nALTER SCHEMA x RENAME TO PGTOPO;\n"),
     f"{SCHEMA_FIELD}: line 9: creates schema 'pgtopo', which pgtopo owns (the probe table of `verify`); "
     "choose another name"),
    ("schema creates publication pgtopo_probe", schema("CREATE PUBLICATION pgtopo_probe FOR TABLE orders;\n"),
     f"{SCHEMA_FIELD}: line 8: creates publication 'pgtopo_probe', which pgtopo owns; choose another name"),
    # -- a row filter is one expression ---------------------------------------------------------
    ("row filter closes the WHERE and adds a statement", where("id > 0); DROP TABLE customers; --"),
     f"{WHERE_FIELD}: unbalanced parentheses: ')' at character 7 closes what was not opened (it would close the "
     "WHERE's own parenthesis)"),
    ("row filter with a second statement", where("region = 'eu'; DROP TABLE customers"),
     f"{WHERE_FIELD}: a row filter is one expression: ';' is not allowed"),
    ("row filter with a line comment", where("region = 'eu' -- eu only"),
     f"{WHERE_FIELD}: a row filter cannot hold a comment ('--' or '/*')"),
    ("row filter with a block comment", where("region = /* x */ 'eu'"),
     f"{WHERE_FIELD}: a row filter cannot hold a comment ('--' or '/*')"),
    ("row filter with a psql meta-command", where("true\n\\! id > /tmp/pwned"),
     f"{WHERE_FIELD}: a row filter cannot hold a backslash outside a string ('\\!' is a psql meta-command)"),
    ("row filter with a psql variable", where("region = :'pgtopo_password'"),
     f"{WHERE_FIELD}: a row filter cannot hold ':'pgtopo_password'' (psql would replace it with a variable)"),
    ("row filter never closes a parenthesis", where("(region = 'eu'"),
     f"{WHERE_FIELD}: unbalanced parentheses: '(' at character 1 is never closed"),
    ("row filter with mismatched brackets", where("(region = 'eu']"),
     f"{WHERE_FIELD}: unbalanced parentheses: ']' at character 15 closes what was not opened (it would close the "
     "WHERE's own parenthesis)"),
    ("row filter with an unterminated string", where("region = 'eu"),
     f"{WHERE_FIELD}: unterminated string constant (a row filter is one expression)"),
    ("row filter with an unterminated dollar quote", where("region = $$eu"),
     f"{WHERE_FIELD}: unterminated dollar-quoted string $$ (a row filter is one expression)"),
    ("row filter with a backslash in a plain string", where("region ~ '^\\w+$'"),
     f"{WHERE_FIELD}: a backslash in a '...' string is ambiguous in a row filter: write it as E'...' with \\\\"),
    ("empty row filter", where("  "), f"{WHERE_FIELD}: a row filter cannot be empty"),
    ("row filter with a control character", where("region = 'eu'\x1b"),
     f"{WHERE_FIELD}: a row filter cannot hold the control character '\\x1b'"),
    ("huge row filter", where("id > 0 AND " * 400 + "true"),
     f"{WHERE_FIELD}: a row filter is one expression of at most 4096 characters"),
    # -- SQL from the file never goes through psql ----------------------------------------------
    ("schema with a shell escape", schema("\\! touch /tmp/pwned\n"),
     f"{SCHEMA_FIELD}: line 8: psql meta-command '\\!': the schema is sent to the server as SQL, never read by psql; "
     "remove it"),
    ("schema with a meta-command after a statement", schema("SELECT 1; \\connect postgres\n"),
     f"{SCHEMA_FIELD}: line 8: psql meta-command '\\connect': the schema is sent to the server as SQL, never read by "
     "psql; remove it"),
    ("schema reading a psql variable", schema("COMMENT ON TABLE orders IS :'pgtopo_password';\n"),
     f"{SCHEMA_FIELD}: line 8: ':'pgtopo_password'' is a psql variable: the schema is sent to the server as SQL, never "
     "read by psql"),
    ("schema with BEGIN", schema("BEGIN;\nCREATE TABLE t (i int);\nCOMMIT;\n"),
     f"{SCHEMA_FIELD}: line 8: BEGIN: {ONE_TRANSACTION}"),
    ("schema with COMMIT", schema("BEGIN;\nCREATE TABLE t (i int);\nCOMMIT;\n"),
     f"{SCHEMA_FIELD}: line 10: COMMIT: {ONE_TRANSACTION}"),
    ("schema with VACUUM", schema("VACUUM orders;\n"), f"{SCHEMA_FIELD}: line 8: VACUUM: {ONE_TRANSACTION}"),
    ("schema with CREATE INDEX CONCURRENTLY", schema("CREATE INDEX CONCURRENTLY o_c ON orders (customer_id);\n"),
     f"{SCHEMA_FIELD}: line 8: CREATE INDEX CONCURRENTLY: {ONE_TRANSACTION}"),
    ("schema with CREATE DATABASE", schema("CREATE DATABASE other;\n"),
     f"{SCHEMA_FIELD}: line 8: CREATE DATABASE: {ONE_TRANSACTION}"),
    ("schema with COPY from stdin", schema("COPY orders FROM stdin;\n"),
     f"{SCHEMA_FIELD}: line 8: COPY from stdin or to stdout needs psql; the schema is sent to the server as SQL "
     "(load rows with INSERT)"),
    ("schema with an unterminated string", schema("INSERT INTO orders VALUES (1, 'x);\n"),
     f"{SCHEMA_FIELD}: line 8: unterminated string constant"),
    ("schema with an unterminated comment", schema("/* TODO\n"), f"{SCHEMA_FIELD}: line 8: unterminated /* comment"),
    ("schema with a NUL", schema("SELECT 1;\x00\n"), f"{SCHEMA_FIELD}: line 8: a NUL character; a schema is SQL text"),
    # -- column lists are checked against the schema's tables -----------------------------------
    ("column list names an unknown column", lambda d: table(d).update(columns=["id", "nope"]),
     "clusters.main.publications.eu_pub.tables.0.columns.1: column 'nope' is not in table 'customers' of the schema "
     "of 'crm'"),
    ("subscriber's table lacks a published column",
     lambda d: d["clusters"]["svc"]["databases"]["crm"].update(schema=SCHEMA.replace("    name text NOT NULL,\n", "")),
     "clusters.svc.subscriptions.eu_sub: column 'name' of table 'customers' (publication 'eu_pub') is not in table "
     "'customers' of the schema of 'crm' in cluster 'svc'"),
    ("subscriber's table lacks a column of a publication without a column list",
     lambda d: (table(d).pop("columns"),
                d["clusters"]["svc"]["databases"]["crm"].update(schema=SCHEMA.replace("    tax_id text\n", "    x int\n"))),
     "clusters.svc.subscriptions.eu_sub: column 'tax_id' of table 'customers' (publication 'eu_pub') is not in table "
     "'customers' of the schema of 'crm' in cluster 'svc'"),
    # -- types are strict -------------------------------------------------------------------------
    ("failover_priority true", lambda d: main(d)["nodes"]["pg-eu"].update(failover_priority=True),
     "clusters.main.nodes.pg-eu.failover_priority: expected a number, not the boolean true"),
    ("port as a string", lambda d: main(d)["nodes"]["pg-eu"].update(port="15432"),
     "clusters.main.nodes.pg-eu.port: Input should be a valid integer"),
    ("copy_data 1", lambda d: d["clusters"]["svc"]["subscriptions"]["eu_sub"].update(copy_data=1),
     "clusters.svc.subscriptions.eu_sub.copy_data: expected true or false, not 1"),
    ("failover yes", lambda d: d["clusters"]["svc"]["subscriptions"]["eu_sub"].update(failover="yes"),
     "clusters.svc.subscriptions.eu_sub.failover: expected true or false, not 'yes'"),
    ("all_tables 1", lambda d: main(d)["publications"].update(all_pub={"database": "crm", "all_tables": 1}),
     "clusters.main.publications.all_pub.all_tables: expected true or false, not 1"),
    ("rtt_ms true", lambda d: d["latency"][0].update(rtt_ms=True), "latency.0.rtt_ms: expected a number, not the boolean true"),
    ("rtt_ms infinite", lambda d: d["latency"][0].update(rtt_ms=float("inf")),
     "latency.0.rtt_ms: Input should be a finite number"),
    ("jitter_ms not a number", lambda d: d["latency"][0].update(jitter_ms=float("nan")),
     "latency.0.jitter_ms: Input should be a finite number"),
    ("synchronous count true", lambda d: main(d).update(synchronous={"count": True, "standbys": ["pg-eu"]}),
     "clusters.main.synchronous.count: expected a number, not the boolean true"),
    ("version 17.0", lambda d: d.update(postgres={"version": 17.0}), "postgres.version: expected 15, 16 or 17, not 17.0"),
    ("version true", lambda d: d.update(postgres={"version": True}), "postgres.version: expected 15, 16 or 17, not True"),
    # -- node settings are checked against the catalogue of the file's version -------------------
    ("unknown setting", setting("shared_buffer", "1GB"),
     f"{SETTINGS}.shared_buffer: unknown setting 'shared_buffer' in PostgreSQL 17 (did you mean shared_buffers?)"),
    ("setting with a bad value", setting("work_mem", "lots"),
     f"{SETTINGS}.work_mem: 'lots' is not an integer with an optional unit (B, kB, MB, GB, TB)"),
    ("setting infinite", setting("work_mem", float("inf")), f"{SETTINGS}.work_mem: Input should be a finite number"),
    ("setting with a newline", setting("work_mem", "4MB\nshared_preload_libraries = 'evil'"),
     f"{SETTINGS}.work_mem: the value holds a newline or another control character (postgresql.conf has one setting "
     "per line)"),
    ("setting with a wrong unit", setting("statement_timeout", "5 sec"),
     f"{SETTINGS}.statement_timeout: '5 sec': valid units for statement_timeout are us, ms, s, min, h, d"),
    ("setting out of range", setting("max_connections", 0),
     f"{SETTINGS}.max_connections: 0 is outside the valid range for max_connections (1 .. 262143)"),
    ("setting not in the enum", setting("log_statement", "some"),
     f"{SETTINGS}.log_statement: 'some' is not one of: none, ddl, mod, all"),
    ("setting not a boolean", setting("ssl", "nope"),
     f"{SETTINGS}.ssl: 'nope' is not a boolean (on, off, true, false, yes, no, 1, 0)"),
    ("setting fixed at build", setting("block_size", 8192),
     f"{SETTINGS}.block_size: 'block_size' cannot be set: PostgreSQL fixes it when it is built or initialised"),
    ("setting as a list", setting("work_mem", ["4MB"]),
     f"{SETTINGS}.work_mem: expected a string, a number or a boolean, not a list"),
    ("setting of another version", lambda d: (d.update(postgres={"version": 16}),
                                              main(d)["nodes"]["pg-us"]["settings"].update(summarize_wal=True)),
     f"{SETTINGS}.summarize_wal: unknown setting 'summarize_wal' in PostgreSQL 16"),
    *[(f"reserved setting {name}", setting(name, value),
       f"{SETTINGS}: '{name}' is set by pgtopo and cannot be overridden")
      for name, value in [("unix_socket_directories", "/tmp"), ("unix_socket_permissions", "0000"),
                          ("track_commit_timestamp", False), ("default_transaction_read_only", True),
                          ("recovery_target_lsn", "0/3000000"), ("port", 5433), ("include", "/etc/passwd")]],
]


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> CliRunner:
    def no_docker() -> None:
        pytest.fail("a refused file reached Docker")

    monkeypatch.setattr(gateway, "client", no_docker)
    monkeypatch.setenv("PGTOPO_STATE_DIR", str(tmp_path / "state"))
    return CliRunner()


def test_base_is_valid(runner: CliRunner, tmp_path: Path) -> None:
    res = runner.invoke(app, ["validate", str(write(tmp_path, BASE))])
    assert res.exit_code == 0, res.output


def test_extension_settings_and_units_pass(runner: CliRunner, tmp_path: Path) -> None:
    data = copy.deepcopy(BASE)
    main(data)["nodes"]["pg-us"]["settings"].update({
        "pg_stat_statements.max": 1000, "shared_buffers": "256MB", "statement_timeout": "30s", "jit": False,
        "random_page_cost": 1.1, "log_statement": "ddl", "synchronous_commit": "remote_apply"})
    res = runner.invoke(app, ["validate", str(write(tmp_path, data))])
    assert res.exit_code == 0, res.output


@pytest.mark.parametrize(("case", "mutate", "expected"), CASES, ids=[c[0] for c in CASES])
def test_refused(runner: CliRunner, tmp_path: Path, case: str, mutate: Mutation, expected: str) -> None:
    data = copy.deepcopy(BASE)
    mutate(data)
    path = write(tmp_path, data)
    res = runner.invoke(app, ["validate", str(path)])
    assert res.exit_code == 2, res.output
    assert expected in res.output.splitlines(), res.output
    assert "Traceback" not in res.output
    res = runner.invoke(app, ["up", str(path)])
    assert res.exit_code == 2, res.output
    assert expected in res.output, res.output
    assert not (tmp_path / "state").exists()


# -- the file system --------------------------------------------------------------------------

SCHEMA_FILE = "clusters.main.databases.crm.schema_file"
OUTSIDE = ("outside the topology file's directory: a topology file reads schemas only beside itself (allow more "
           "directories with PGTOPO_SCHEMA_PATH)")


def _fifo(d: Path) -> str:
    os.mkfifo(d / "pipe.sql")
    return "pipe.sql"


def _loop(d: Path) -> str:
    (d / "a.sql").symlink_to("b.sql")
    (d / "b.sql").symlink_to("a.sql")
    return "a.sql"


def _big(d: Path) -> str:
    with (d / "big.sql").open("wb") as fh:
        fh.truncate(11 * 1024 * 1024)  # sparse: costs no disk
    return "big.sql"


def _latin1(d: Path) -> str:
    (d / "latin1.sql").write_bytes(b"CREATE TABLE caf\xe9 (i int);")
    return "latin1.sql"


def _link_out(d: Path) -> str:
    (d / "link.sql").symlink_to("/etc/hostname")
    return "link.sql"


def _parent(d: Path) -> str:
    (d.parent / "outside.sql").write_text(SCHEMA)
    return "../outside.sql"


def _directory(d: Path) -> str:
    (d / "schemas").mkdir()
    return "schemas"


FILE_CASES: list[tuple[str, Callable[[Path], str], str]] = [
    ("absolute path", lambda d: "/etc/hostname", f"an absolute path, {OUTSIDE}"),
    ("dot-dot escape", _parent, f"it resolves to {{parent}}/outside.sql, {OUTSIDE}"),
    ("symlink leading out", _link_out, f"it resolves to {os.path.realpath('/etc/hostname')}, {OUTSIDE}"),
    ("FIFO", _fifo, "is a FIFO (named pipe), not a regular file"),
    ("symlink loop", _loop, "too many levels of symbolic links (a symlink loop)"),
    ("too large", _big, "is 11.0 MiB; at most 10.0 MiB is read"),
    ("directory", _directory, "is a directory, not a regular file"),
    ("not UTF-8", _latin1, "not a UTF-8 text file (byte 16)"),
    ("missing", lambda d: "nope.sql", "No such file or directory"),
    ("empty path", lambda d: " ", "an empty path"),
]


@pytest.fixture
def topo_dir(tmp_path: Path) -> Path:
    d = tmp_path / "topo"
    d.mkdir()
    return d


@pytest.mark.parametrize(("case", "make", "why"), FILE_CASES, ids=[c[0] for c in FILE_CASES])
def test_schema_file_refused(runner: CliRunner, topo_dir: Path, case: str, make: Callable[[Path], str],
                             why: str) -> None:
    name = make(topo_dir)
    data = copy.deepcopy(BASE)
    main(data)["databases"]["crm"] = {"schema_file": name}
    path = write(topo_dir, data)
    with alarm(10):
        res = runner.invoke(app, ["validate", str(path)])
    assert res.exit_code == 2, res.output
    expected = f"{SCHEMA_FILE}: cannot read '{name}' ({why.format(parent=topo_dir.parent)})"
    assert expected in res.output.splitlines(), res.output
    assert "Traceback" not in res.output


def test_schema_path_is_the_users_opt_in(runner: CliRunner, topo_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = copy.deepcopy(BASE)
    main(data)["databases"]["crm"] = {"schema_file": _parent(topo_dir)}
    path = write(topo_dir, data)
    monkeypatch.setenv("PGTOPO_SCHEMA_PATH", str(topo_dir.parent))
    res = runner.invoke(app, ["validate", str(path)])
    assert res.exit_code == 0, res.output
    # Even so, a device is never read.
    monkeypatch.setenv("PGTOPO_SCHEMA_PATH", "/dev")
    main(data)["databases"]["crm"] = {"schema_file": "/dev/zero"}
    path = write(topo_dir, data)
    with alarm(10):
        res = runner.invoke(app, ["validate", str(path)])
    assert res.exit_code == 2, res.output
    assert f"{SCHEMA_FILE}: cannot read '/dev/zero' (is a character device, not a regular file)" in res.output.splitlines()


def _deep(p: Path) -> Path:
    p.write_text("name: " + "[" * 1_500 + "]" * 1_500 + "\n")
    return p


def _deep_blocks(p: Path) -> Path:
    p.write_text("name:\n" + "".join(" " * i + "a:\n" for i in range(1, 1200)) + " " * 1200 + "x\n")
    return p


def _shallow_but_deep(p: Path) -> Path:
    p.write_text("name: x\nregions: " + "{a: " * 20 + "{}" + "}" * 20 + "\n")
    return p


def _alias_bomb(p: Path) -> Path:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    p.write_text("\n".join(lines) + "\n")
    return p


def _fifo_file(p: Path) -> Path:
    os.mkfifo(p)
    return p


def _loop_file(p: Path) -> Path:
    p.symlink_to(p)
    return p


def _big_file(p: Path) -> Path:
    with p.open("wb") as fh:
        fh.truncate(20 * 1024 * 1024)
    return p


TOPOLOGY_FILE_CASES: list[tuple[str, Callable[[Path], Path], str]] = [
    ("deeply nested YAML", _deep, "nested too deeply (a topology file is at most 16 levels deep)"),
    ("deeply indented YAML", _deep_blocks, "nested too deeply (a topology file is at most 16 levels deep)"),
    ("nested deeper than any field", _shallow_but_deep, "nested too deeply (a topology file is at most 16 levels deep)"),
    ("YAML alias bomb", _alias_bomb, "more than 200000 values (YAML aliases counted where they are used)"),
    ("FIFO", _fifo_file, "is a FIFO (named pipe), not a regular file"),
    ("symlink loop", _loop_file, "too many levels of symbolic links (a symlink loop)"),
    ("too large", _big_file, "is 20.0 MiB; at most 10.0 MiB is read"),
    ("/dev/zero", lambda p: Path("/dev/zero"), "is a character device, not a regular file"),
]


@pytest.mark.parametrize(("case", "make", "message"), TOPOLOGY_FILE_CASES, ids=[c[0] for c in TOPOLOGY_FILE_CASES])
def test_topology_file_refused(runner: CliRunner, tmp_path: Path, case: str, make: Callable[[Path], Path],
                               message: str) -> None:
    path = make(tmp_path / "topo.yaml")
    for cmd in ("validate", "up"):
        with alarm(10):
            res = runner.invoke(app, [cmd, str(path)])
        assert res.exit_code == 2, res.output
        assert res.output.splitlines() == [f"error: {path}: {message}"]


def test_repeated_problems_are_summarised(runner: CliRunner, tmp_path: Path) -> None:
    data = copy.deepcopy(BASE)
    data["regions"] = {f"r{i}": {} for i in range(300)}
    data["latency"] = []
    for cluster in data["clusters"].values():
        for node in cluster["nodes"].values():
            node["region"] = "r0"
    res = runner.invoke(app, ["validate", str(write(tmp_path, data))])
    assert res.exit_code == 2
    lines = res.output.splitlines()
    assert lines[:2] == ["latency: no latency declared between 'r0' and 'r1' (needed: clients and failover can use any path)",
                         "latency: no latency declared between 'r0' and 'r2' (needed: clients and failover can use any path)"]
    assert lines[10:] == [
        "... and 44840 more like: latency: no latency declared between 'r0' and 'r11' (needed: clients and failover "
        "can use any path)",
        f"{tmp_path / 'topo.yaml'}: 44850 problem(s)"]


@contextmanager
def alarm(seconds: int) -> Iterator[None]:
    """Fail instead of hanging (a FIFO opened for reading blocks until a writer comes)."""
    def fail(_signum: int, _frame: object) -> None:
        raise TimeoutError(f"still reading after {seconds} s")

    previous = signal.signal(signal.SIGALRM, fail)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)

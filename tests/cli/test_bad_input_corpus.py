"""The bad-input corpus: every mistaken or hostile file is refused by `pgtopo validate`.

One mutation of a valid file per case, with the exact problem line expected. Each case runs
through the CLI: exit 2, the line printed, no traceback; and `up` refuses it the same way
before Docker is reached (the Docker client is replaced by a failure), so nothing is created.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML
from typer.testing import CliRunner

import pgtopo.cli.main  # noqa: F401  (registers every command)
from pgtopo.cli.app import app
from pgtopo.runtime import gateway

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


def add_database(name: str) -> Mutation:
    return lambda d: main(d)["databases"].update({name: {}})


SCHEMA_FIELD = "clusters.main.databases.crm.schema"

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
]


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> CliRunner:
    def no_docker() -> None:
        pytest.fail("a refused file reached Docker")

    monkeypatch.setattr(gateway, "client", no_docker)
    monkeypatch.setenv("PGTOPO_STATE_DIR", str(tmp_path / "state"))
    return CliRunner()


def write(tmp_path: Path, data: Any) -> Path:
    p = tmp_path / "topo.yaml"
    with p.open("w") as fh:
        YAML().dump(data, fh)
    return p


def test_base_is_valid(runner: CliRunner, tmp_path: Path) -> None:
    res = runner.invoke(app, ["validate", str(write(tmp_path, BASE))])
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

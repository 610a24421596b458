"""Shell completion of node, region, cluster, publication and subscription names from the topology
file on the command line. No Docker needed."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from pgtopo.cli import completion
from pgtopo.cli.main import app

REPO = Path(__file__).resolve().parents[2]
GLOBAL = REPO / "topologies" / "global-saas.yaml"


@pytest.mark.parametrize(("names", "incomplete", "expected"), [
    (completion.nodes, "", ["pg-us", "pg-eu", "pg-billing"]),
    (completion.nodes, "pg-b", ["pg-billing"]),
    (completion.nodes, "us", []),
    (completion.regions, "", ["us-east", "eu-west", "ap-south"]),
    (completion.regions, "eu", ["eu-west"]),
    (completion.regions_and_nodes, "", ["us-east", "eu-west", "ap-south", "pg-us", "pg-eu", "pg-billing"]),
    (completion.regions_and_nodes, "pg-u", ["pg-us"]),
    (completion.clusters, "", ["main", "billing"]),
    (completion.clusters, "b", ["billing"]),
    (completion.publications, "", ["inventory_pub"]),
    (completion.subscriptions, "inv", ["inventory_sub"]),
    (completion.subscriptions, "x", []),
])
def test_names_from_the_file(names: completion.Names, incomplete: str, expected: list[str]) -> None:
    assert names(GLOBAL, incomplete) == expected
    assert names(str(GLOBAL), incomplete) == expected


@pytest.mark.parametrize("content", [
    None,  # no such file
    b"",  # empty
    b"name: x\n  bad: indent\n",  # YAML syntax error
    b"name: \xff\xfe\n",  # not UTF-8
    GLOBAL.read_bytes().replace(b"upstream: pg-us", b"upstream: pg-xx"),  # fails validation
])
@pytest.mark.parametrize("names", [completion.nodes, completion.regions, completion.regions_and_nodes,
                                   completion.clusters, completion.publications, completion.subscriptions])
def test_a_broken_or_missing_file_completes_nothing(tmp_path: Path, content: bytes | None,
                                                    names: completion.Names) -> None:
    path = tmp_path / "t.yaml"
    if content is not None:
        path.write_bytes(content)
    assert names(path, "") == []


def test_no_file_yet_completes_nothing(tmp_path: Path) -> None:
    assert completion.nodes(None, "pg") == []
    assert completion.regions(tmp_path, "") == []  # a directory


def bash_complete(line: str) -> list[str]:
    """What `pgtopo` answers to bash's completion request for ``line`` (the cursor at its end)."""
    words = line.split(" ")
    env = {"_PGTOPO_COMPLETE": "complete_bash", "COMP_WORDS": line, "COMP_CWORD": str(len(words) - 1)}
    res = CliRunner().invoke(app, [], env=env, prog_name="pgtopo")
    assert res.exit_code == 0, res.output
    return [name for name in res.output.splitlines() if name]  # no candidates: one empty line


@pytest.mark.parametrize(("line", "expected"), [
    ("pgtopo kill {f} pg-", ["pg-us", "pg-eu", "pg-billing"]),
    ("pgtopo rejoin {f} pg-e", ["pg-eu"]),
    ("pgtopo failover {f} --to pg-u", ["pg-us"]),
    ("pgtopo switchover {f} --to pg-eu --cluster ", ["main", "billing"]),
    ("pgtopo env {f} --region eu", ["eu-west"]),
    ("pgtopo env --format json {f} -c ma", ["main"]),
    ("pgtopo bench ryw {f} --region ap", ["ap-south"]),
    ("pgtopo partition {f} ", ["us-east", "eu-west", "ap-south", "pg-us", "pg-eu", "pg-billing"]),
    ("pgtopo heal {f} pg-b", ["pg-billing"]),
    ("pgtopo latency set {f} us-east ", ["us-east", "eu-west", "ap-south"]),
    ("pgtopo latency reset {f} us-east e", ["eu-west"]),
    ("pgtopo add-subscription {f} --subscriber pg-b", ["pg-billing"]),
    ("pgtopo add-subscription {f} --subscriber pg-billing --publisher pg-u", ["pg-us"]),
    ("pgtopo add-subscription {f} --subscriber pg-billing --publication ", ["inventory_pub"]),
    ("pgtopo remove-subscription {f} ", ["inventory_sub"]),
])
def test_bash_completion_of_names(line: str, expected: list[str]) -> None:
    assert bash_complete(line.format(f=GLOBAL)) == expected


def test_bash_completion_without_a_usable_file_is_empty(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: x\n  bad: indent\n")
    assert bash_complete(f"pgtopo kill {broken} pg-") == []
    assert bash_complete(f"pgtopo kill {tmp_path / 'nope.yaml'} ") == []
    assert bash_complete("pgtopo env --region ") == []  # no FILE yet


def test_bash_completion_of_commands() -> None:
    assert bash_complete("pgtopo lat") == ["latency"]
    assert bash_complete("pgtopo latency s") == ["show", "set"]

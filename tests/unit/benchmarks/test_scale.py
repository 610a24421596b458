"""benchmarks/scale.py generates the topologies the issue describes, and they pass validation."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from pgtopo.model.loader import load
from tests.support.topologies import REPO


def scale_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_scale", REPO / "benchmarks" / "scale.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


SCALE = scale_module()


@pytest.mark.parametrize("size", ["3", "12", "30", "30x1", "45", "60", "99"])
def test_generated_topologies_are_valid_and_of_their_size(size: str, tmp_path: Path) -> None:
    shape = SCALE.shape_for(size)
    topo = load(SCALE.write_topology(shape, f"scale{size}", tmp_path))
    assert len(topo.node_names()) == shape.nodes == int(size.split("x")[0])
    assert len(topo.regions) == shape.regions and len(topo.clusters) == shape.clusters


def test_thirty_nodes_is_the_issue_design(tmp_path: Path) -> None:
    topo = load(SCALE.write_topology(SCALE.shape_for("30"), "scale30", tmp_path))
    assert len(topo.regions) == 8 and len(topo.clusters) == 4
    main = topo.clusters["main"]
    replicas = [n for n, spec in main.nodes.items() if spec.upstream is not None]
    cascading = [n for n in replicas if main.nodes[n].upstream != main.primary_name]
    assert len(replicas) == 14 and len(cascading) == 7
    subscribers = [c for c in topo.clusters if c != "main"]
    assert len(subscribers) == 3
    for name in subscribers:
        cluster = topo.clusters[name]
        assert len(cluster.nodes) == 5  # a primary and 4 replicas
        (sub,) = cluster.subscriptions.values()
        (table,) = main.publications[sub.publication].table_list()
        assert sub.publisher == "main" and table.where  # a row-filtered publication each


def test_thirty_nodes_with_one_candidate_fails_over_the_three_node_cluster(tmp_path: Path) -> None:
    # The failed cluster is the 3-node topology's (a primary, one replica); the size is elsewhere.
    topo = load(SCALE.write_topology(SCALE.shape_for("30x1"), "scale30x1", tmp_path))
    assert len(topo.node_names()) == 30 and len(topo.regions) == 8
    main = topo.clusters["main"]
    assert sorted(main.nodes) == ["m-0", "m-1"] and main.nodes["m-1"].upstream == "m-0"
    assert [len(topo.clusters[c].nodes) for c in topo.clusters if c != "main"] == [7, 7, 7, 7]


def test_limits_beyond_thirty() -> None:
    fits = {resource: ok for resource, _detail, ok in SCALE.limits(SCALE.shape_for("30"), [])}
    assert fits["WAL senders"] and fits["host ports"] and fits["topology model"]
    # Growing by cascades keeps the primary's WAL senders; the model's node limit comes first.
    fits = {resource: ok for resource, _detail, ok in SCALE.limits(SCALE.shape_for("99"), [])}
    assert fits["WAL senders"] and fits["topology model"]
    fits = {resource: ok for resource, _detail, ok in SCALE.limits(SCALE.shape_for("120"), [])}
    assert not fits["topology model"]


def test_failover_steps_are_read_from_the_timings_table() -> None:
    out = ("m-1 is the primary of cluster main (timeline 2); recovery time 0.31 s\n"
           "┃ step                     ┃ s    ┃\n"
           "│ planned                  │ 0.12 │\n│ fenced                   │ 0.13 │\n"
           "│ first write accepted     │ 0.31 │\n│ m-2    │ eu-west │ 0/3000 │\n")
    assert SCALE.failover_steps(out) == "planned 0.12, fenced 0.13, first write accepted 0.31"
    assert SCALE.failover_steps("no table") == ""

"""synchronous_standby_names: parsed from a live setting, and what a new primary should wait for."""

from __future__ import annotations

from pathlib import Path

import pytest

from pgtopo.ha.synchronous import SyncConfig, intended_sync, parse_sync
from pgtopo.model.topology import Topology
from tests.support.topologies import SYNC, topology_of


@pytest.fixture
def synct(tmp_path: Path) -> Topology:
    return topology_of(tmp_path, SYNC)


def test_intended_sync_shrinks_to_the_standbys_left(synct: Topology) -> None:
    assert intended_sync(synct, "main", primary="pg-a", available={"pg-b", "pg-c", "pg-d"}) == SyncConfig(
        "any", 1, ("pg-b", "pg-c"))
    assert intended_sync(synct, "main", primary="pg-b", available={"pg-d"}) is None
    assert intended_sync(synct, "main", primary="pg-b", available={"pg-a"}) == SyncConfig("any", 1, ("pg-a",))


def test_parse_sync() -> None:
    assert parse_sync('ANY 1 ("pg-b", "pg-c")', source="x") == SyncConfig("any", 1, ("pg-b", "pg-c"), "x")
    assert parse_sync("FIRST 2 (a, b, c)", source="x") == SyncConfig("first", 2, ("a", "b", "c"), "x")
    assert parse_sync("2 (a, b)", source="x") == SyncConfig("first", 2, ("a", "b"), "x")
    assert parse_sync("a, b", source="x") == SyncConfig("first", 1, ("a", "b"), "x")
    assert parse_sync('"pg-b"', source="x") == SyncConfig("first", 1, ("pg-b",), "x")
    assert parse_sync("", source="x") is None
    assert SyncConfig("any", 1, ("a", "b")).text() == 'ANY 1 ("a", "b")'
    assert SyncConfig("first", 2, ("a", "b", "c")).needed_for_safety() == 2

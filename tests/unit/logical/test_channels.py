"""remove-subscription keeps the file and the running topology agreeing: the file's edit is staged
before the live drop and committed right after it (no Docker: the live side is a small fake)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pgtopo.errors import OperationFailed
from pgtopo.logical import channels
from pgtopo.logical.channel_plan import Step
from pgtopo.model import topofile
from pgtopo.model.topology import Topology
from tests.support.topologies import GLOBAL_SAAS


class FakeConn:
    """Records the statements the removal runs; fails those listed in ``failing``."""

    def __init__(self, events: list[str], failing: tuple[str, ...] = ()) -> None:
        self.events = events
        self.failing = failing

    def execute(self, statement: Any, *_a: Any) -> None:
        text = statement.decode() if isinstance(statement, bytes) else str(statement)
        if any(f in text for f in self.failing):
            raise psycopg.errors.ObjectInUse("it is busy")
        self.events.append(f"sql: {text}")

    @contextmanager
    def transaction(self) -> Iterator[None]:
        yield


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, list[str], dict[str, Any]]:
    path = tmp_path / "global-saas.yaml"
    path.write_text(GLOBAL_SAAS.read_text())
    events: list[str] = []
    knobs: dict[str, Any] = {"drop_fails": False, "failing": (), "handover": False, "user_edit": None}

    def plan_remove(topo: Topology, *, text: str, name: str, path: Path) -> channels.RemovePlan:
        if knobs["user_edit"] is not None:
            path.write_text(knobs["user_edit"])  # the user saves the file after pgtopo read it
        doc = topofile.Document(text)
        topofile.remove_subscription(doc, cluster="billing", name=name)
        drop = Step(node="pg-billing", database="production", what=f"drop subscription {name}",
                    statement=f"DROP SUBSCRIPTION {name}", transactional=False)
        handover = Step(node="pg-billing", database="production", what="hand the probe over",
                        statement="ALTER SUBSCRIPTION other ADD PUBLICATION pgtopo_probe") if knobs["handover"] else None
        return channels.RemovePlan(name=name, subscriber="pg-billing", database="production", cluster="billing",
                                   publisher="pg-us", live=True, slot=name, oid=1, statements=[drop],
                                   probe_handover=handover, new_text=doc.text(), diff="")

    @contextmanager
    def connect(_topo: Topology, _node: str, *, db: str) -> Iterator[FakeConn]:
        yield FakeConn(events, knobs["failing"])

    def drop(_conn: Any, name: str) -> str | None:
        if knobs["drop_fails"]:
            raise psycopg.errors.ObjectInUse("subscription is in use")
        events.append(f"drop {name}; file has it: {'inventory_sub:' in path.read_text()}")
        return None

    monkeypatch.setattr(channels, "plan_remove", plan_remove)
    monkeypatch.setattr(channels, "_connect", connect)
    monkeypatch.setattr(channels, "drop_subscription", drop)
    monkeypatch.setattr(channels, "_slots_left", lambda *_a, **_k: [])
    return path, events, knobs


def test_the_file_is_written_right_after_the_drop(setup: tuple[Path, list[str], dict[str, Any]]) -> None:
    path, events, _knobs = setup
    result = channels.remove_subscription(path, "inventory_sub")
    assert events == ["drop inventory_sub; file has it: True"]
    assert "inventory_sub:" not in path.read_text()
    assert result.slots_remaining == []
    assert [p.name for p in path.parent.iterdir()] == ["global-saas.yaml"]  # no staged copy left behind


def test_a_file_that_cannot_be_written_stops_before_the_drop(setup: tuple[Path, list[str], dict[str, Any]]) -> None:
    path, events, knobs = setup
    edited = path.read_text() + "# edited by the user meanwhile\n"
    knobs["user_edit"] = edited
    with pytest.raises(OperationFailed, match="changed while pgtopo was working on it"):
        channels.remove_subscription(path, "inventory_sub")
    assert events == []  # nothing dropped
    assert path.read_text() == edited
    assert [p.name for p in path.parent.iterdir()] == ["global-saas.yaml"]


def test_a_failed_drop_leaves_the_file_alone(setup: tuple[Path, list[str], dict[str, Any]]) -> None:
    path, events, knobs = setup
    before = path.read_bytes()
    knobs["drop_fails"] = True
    with pytest.raises(OperationFailed, match="subscription is in use") as err:
        channels.remove_subscription(path, "inventory_sub")
    assert events == []
    assert err.value.step == "drop subscription inventory_sub"
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == ["global-saas.yaml"]


def test_a_failed_probe_handover_after_the_drop_still_updates_the_file(
        setup: tuple[Path, list[str], dict[str, Any]]) -> None:
    path, events, knobs = setup
    knobs["handover"] = True
    knobs["failing"] = ("ADD PUBLICATION",)
    with pytest.raises(OperationFailed) as err:
        channels.remove_subscription(path, "inventory_sub")
    assert events == ["drop inventory_sub; file has it: True"]
    assert "inventory_sub:" not in path.read_text()  # the file says what is live: dropped
    assert err.value.hint == (f"subscription inventory_sub was dropped and removed from {path}; run this by hand: "
                              "ALTER SUBSCRIPTION other ADD PUBLICATION pgtopo_probe;")

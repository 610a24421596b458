"""Connections kept from one step of a command to the next (``connect.Held``), with fake connections."""

from __future__ import annotations

from typing import Any, cast

import psycopg

from pgtopo.postgres.connect import Held


class FakeConn:
    def __init__(self, *, autocommit: bool = True) -> None:
        self.autocommit = autocommit
        self.closed = False
        self.broken = False

    def close(self) -> None:
        self.closed = True


def conn(**kw: Any) -> psycopg.Connection[Any]:
    return cast("psycopg.Connection[Any]", FakeConn(**kw))


def test_a_kept_connection_is_handed_out_until_it_closes_or_breaks() -> None:
    held = Held()
    a, b = conn(), conn()
    assert held.keep("pg-a", a) and held.keep("pg-b", b)
    assert held.get("pg-a") is a and held.get("pg-a") is a  # it stays held
    assert held.get("pg-x") is None
    cast(FakeConn, b).broken = True
    assert held.get("pg-b") is None  # the caller opens a new one
    a.close()
    assert held.get("pg-a") is None


def test_one_per_node_and_only_autocommit_ones() -> None:
    held = Held()
    assert held.keep("pg-a", conn())
    assert not held.keep("pg-a", conn())  # the caller closes its second one
    assert not held.keep("pg-b", conn(autocommit=False))


def test_close_closes_every_connection_and_refuses_later_ones() -> None:
    a, b, late = conn(), conn(), conn()
    with Held() as held:
        held.keep("pg-a", a)
        held.keep("pg-b", b)
    assert a.closed and b.closed
    assert not held.keep("pg-c", late) and not late.closed  # refused: closed by whoever opened it
    assert held.get("pg-a") is None

"""The one translation of psycopg errors: the server's words, the node and the step."""

from __future__ import annotations

import psycopg
import pytest

from pgtopo.errors import OperationFailed
from pgtopo.postgres import sql


def test_a_client_error_keeps_its_first_line() -> None:
    exc = psycopg.OperationalError("connection failed: server closed the connection\nunexpectedly")
    assert sql.message(exc) == "connection failed: server closed the connection"


def test_translated_names_node_and_step() -> None:
    with pytest.raises(OperationFailed) as info, sql.translated(node="pg-eu", step="create slot pg_eu"):
        raise psycopg.errors.DuplicateObject('replication slot "pg_eu" already exists')
    assert info.value.message == "node pg-eu step 'create slot pg_eu': replication slot \"pg_eu\" already exists"
    assert (info.value.node, info.value.step) == ("pg-eu", "create slot pg_eu")


def test_translated_leaves_other_errors_alone() -> None:
    with pytest.raises(ValueError), sql.translated(node="pg-eu", step="x"):
        raise ValueError("not a database error")

"""`snapshot`: collecting in parallel with a deadline (no Docker: the per-item work is a stand-in)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any, cast

import pytest

from pgtopo.observe import snapshot
from pgtopo.postgres import connect as pg_connect
from pgtopo.runtime import gateway
from tests.support.global_saas import GLOBAL


def test_within_gives_the_late_answer_for_what_does_not_finish_in_time() -> None:
    release = threading.Event()

    def work(item: str) -> str:
        if item == "hangs":
            release.wait(10)
        return f"{item}: answered"

    t = time.monotonic()
    out = snapshot._within(work, ["a", "hangs", "b"], timeout=0.3, late=lambda item: f"{item}: no answer")
    elapsed = time.monotonic() - t
    release.set()
    assert out == ["a: answered", "hangs: no answer", "b: answered"]
    assert elapsed < 5  # the deadline, not the hanging item, decides when it returns


def test_within_returns_as_soon_as_everything_answered() -> None:
    t = time.monotonic()
    assert snapshot._within(lambda x: x * 2, [1, 2, 3], timeout=30, late=lambda x: -1) == [2, 4, 6]
    assert time.monotonic() - t < 5
    assert snapshot._within(lambda x: x, [], timeout=30, late=lambda x: x) == []


def test_within_raises_what_the_work_raised() -> None:
    def work(item: int) -> int:
        raise ValueError(f"bad {item}")

    with pytest.raises(ValueError, match="bad 1"):
        snapshot._within(work, [1], timeout=5, late=lambda x: x)


# -- one node's pipelined queries, on a small fake connection ------------------------------------------

class _FakeCursor:
    def __init__(self, answers: dict[str, list[dict[str, Any]]], asked: list[str]) -> None:
        self._answers = answers
        self._asked = asked
        self._rows: list[dict[str, Any]] = []

    def execute(self, query: str, _params: Any = None) -> _FakeCursor:
        self._asked.append(query)
        self._rows = self._answers.get(query, [])
        return self

    def fetchall(self) -> list[dict[str, Any]]:
        return self._rows


class _FakeConn:
    """A node with one subscription: the snapshot's own statements answered, any other one empty."""

    def __init__(self, *, in_recovery: bool) -> None:
        self.info = SimpleNamespace(server_version=170012, port=54321)
        self.asked: list[str] = []
        main = {"rec": in_recovery, "sysid": "7", "cur": None if in_recovery else "0/3000060",
                "recv": "0/3000060" if in_recovery else None, "replay": "0/3000060" if in_recovery else None,
                "replay_lag": None, "tli": 1}
        sub = {"oid": 16400, "subname": "billing_orders", "datname": "shop", "subenabled": True,
               "subpublications": ["orders_billing"], "subconninfo": "host=pgtopo-relay", "subslotname": "billing_orders",
               "failover": True, "apply_error_count": 0, "sync_error_count": 0}
        self.answers: dict[str, list[dict[str, Any]]] = {snapshot._MAIN_SQL: [main], snapshot._subscriptions_sql(170012): [sub],
                        snapshot._HISTORY_SQL: [{"tli": None}],
                        snapshot._LIGHT_SETTINGS_SQL: [{"name": "cluster_name", "setting": "pg-billing"},
                                                       {"name": "sync_replication_slots", "setting": None}],
                        # One scan of pg_settings: the settings asked for, and any waiting for a restart.
                        snapshot._SETTINGS_SQL: [
                            {"name": "cluster_name", "setting": "pg-billing", "pending_restart": False},
                            {"name": "max_connections", "setting": "100", "pending_restart": True},
                            {"name": "wal_sender_timeout", "setting": "60000", "pending_restart": False}]}

    def cursor(self, row_factory: Any = None) -> _FakeCursor:
        return _FakeCursor(self.answers, self.asked)

    @contextmanager
    def pipeline(self) -> Iterator[None]:
        yield


def _node(in_recovery: bool, monkeypatch: pytest.MonkeyPatch, *, light: bool = False, subscriptions_only: bool = False,
          asked: list[str] | None = None) -> tuple[snapshot.NodeSnapshot, list[str]]:
    calls: list[str] = []

    class DbConn:
        def __enter__(self) -> DbConn:
            return self

        def __exit__(self, *exc: object) -> None:
            pass

        def cursor(self, row_factory: Any = None) -> Any:
            rows = [{"oid": 16400, "ready": 1, "total": 1, "lsn": "0/3000060", "lag": 0.1, "pid": 99}]
            return SimpleNamespace(execute=lambda *_a: SimpleNamespace(fetchall=lambda: rows))

    def connect(topology: str, node: str, **kw: Any) -> DbConn:
        calls.append(f"connect {node} {kw.get('dbname')}")
        return DbConn()

    def logs(container_id: str, tail: int) -> str:
        calls.append(f"logs {container_id}")
        return 'ERROR:  subscription "billing_orders" could not connect\n'

    monkeypatch.setattr(pg_connect, "connect", connect)
    monkeypatch.setattr(gateway, "logs_by_id", logs)
    listed = gateway.Listed(id="c1", labels={}, status="running", ports={"5432/tcp": 54321})
    base = {"node": "pg-billing", "cluster": "billing", "region": "ap-south"}
    fake = _FakeConn(in_recovery=in_recovery)
    ns = snapshot._query_node(GLOBAL, cast(Any, fake), base, "running", listed=listed, light=light,
                              subscriptions_only=subscriptions_only)
    if asked is not None:
        asked.extend(fake.asked)
    return ns, calls


def test_a_standby_s_subscriptions_cost_no_connection_nor_log(monkeypatch: pytest.MonkeyPatch) -> None:
    ns, calls = _node(True, monkeypatch)
    assert calls == []
    (sub,) = ns.subscriptions
    assert (sub.name, sub.enabled, sub.worker_running, sub.tables_ready, sub.tables_total, sub.last_error) == \
        ("billing_orders", True, False, 0, 0, None)


def test_a_primary_s_subscriptions_are_read_in_their_database_and_log(monkeypatch: pytest.MonkeyPatch) -> None:
    ns, calls = _node(False, monkeypatch)
    assert ns.settings == {"cluster_name": "pg-billing", "wal_sender_timeout": "60000"}
    assert ns.pending_restart == ("max_connections",)
    assert calls == ["connect pg-billing shop", "logs c1"]
    (sub,) = ns.subscriptions
    assert (sub.worker_running, sub.tables_ready, sub.tables_total, sub.last_error) == \
        (True, 1, 1, 'subscription "billing_orders" could not connect')


def test_a_failover_s_light_snapshot_asks_no_pending_restart_and_no_pg_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[str] = []
    ns, calls = _node(True, monkeypatch, light=True, asked=asked)
    assert snapshot._SETTINGS_SQL not in asked
    assert snapshot._LIGHT_SETTINGS_SQL in asked and snapshot._DOWNSTREAM_SQL in asked
    assert ns.settings == {"cluster_name": "pg-billing"}  # a setting the server does not have is left out
    assert calls == [] and ns.in_recovery is True


def test_a_failover_s_subscriber_is_asked_its_role_and_subscriptions_only(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[str] = []
    ns, calls = _node(False, monkeypatch, light=True, subscriptions_only=True, asked=asked)
    assert asked == [snapshot._MAIN_SQL, snapshot._subscriptions_sql(170012)]
    assert calls == []  # light: no connection per database, no log
    assert (ns.reachable, ns.in_recovery, [s.name for s in ns.subscriptions]) == (True, False, ["billing_orders"])


def test_light_settings_are_those_whose_text_is_pg_settings_own() -> None:
    assert set(snapshot.SETTINGS) - set(snapshot.LIGHT_SETTINGS) == {"wal_sender_timeout", "wal_receiver_timeout"}


def _listing(monkeypatch: pytest.MonkeyPatch, containers: dict[str, str]) -> list[dict[str, Any]]:
    """gateway.listed answering from ``containers`` (node -> cluster label); the calls' filters."""
    calls: list[dict[str, Any]] = []

    def listed(topology: str, **filters: Any) -> list[gateway.Listed]:
        calls.append(filters)
        return [gateway.Listed(id=n, labels={gateway.LABEL_NODE: n}, status="running", ports={})
                for n, c in containers.items() if filters.get("cluster") in (None, c)]

    monkeypatch.setattr(gateway, "listed", listed)
    return calls


def test_one_cluster_s_nodes_are_listed_with_their_cluster_s_containers_only(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _listing(monkeypatch, {"pg-us": "main", "pg-eu": "main", "pg-billing": "billing"})
    found = snapshot._listed(GLOBAL, [("main", "pg-us"), ("main", "pg-eu")], whole=False)
    assert sorted(found) == ["pg-eu", "pg-us"]
    assert calls == [{"kind": "node", "cluster": "main"}]


def test_a_node_its_cluster_s_list_lacks_is_looked_for_among_all(monkeypatch: pytest.MonkeyPatch) -> None:
    # pg-eu's container still carries the label of the cluster it was created in.
    calls = _listing(monkeypatch, {"pg-us": "main", "pg-eu": "old", "pg-billing": "billing"})
    found = snapshot._listed(GLOBAL, [("main", "pg-us"), ("main", "pg-eu")], whole=False)
    assert sorted(found) == ["pg-billing", "pg-eu", "pg-us"]
    assert calls == [{"kind": "node", "cluster": "main"}, {"kind": "node"}]


@pytest.mark.parametrize(("targets", "whole"), [
    ([("main", "pg-us"), ("billing", "pg-billing")], False),  # two clusters
    ([("main", "pg-us"), ("main", "pg-eu")], True),  # every node of the topology
])
def test_nodes_of_several_clusters_are_listed_in_one_call_for_all(
        monkeypatch: pytest.MonkeyPatch, targets: list[tuple[str, str]], whole: bool) -> None:
    calls = _listing(monkeypatch, {"pg-us": "main", "pg-eu": "main", "pg-billing": "billing"})
    snapshot._listed(GLOBAL, targets, whole=whole)
    assert calls == [{"kind": "node"}]

"""The one waiting tool: poll returns what the check returned or None; wait_for fails with the
node, the step, what was seen last and the container's log lines."""

from __future__ import annotations

import itertools

import pytest

from pgtopo.errors import OperationFailed
from pgtopo.runtime import gateway, waiting


def test_poll_returns_the_first_truthy_value() -> None:
    counter = itertools.count(1)
    assert waiting.poll(lambda: (n := next(counter)) >= 3 and n, timeout=5, interval=0.001) == 3


def test_poll_returns_none_when_the_time_is_up_and_checks_at_least_once() -> None:
    calls: list[int] = []
    assert waiting.poll(lambda: calls.append(1), timeout=0, interval=0.001) is None
    assert calls == [1]


def test_wait_for_names_node_step_and_what_was_seen_last() -> None:
    with pytest.raises(OperationFailed) as info:
        waiting.wait_for(lambda: None, timeout=0.01, what="the WAL receiver to stream", step="wait for streaming",
                         node="pg-eu", interval=0.001, last_seen=lambda: "catchup on timeline 1")
    assert info.value.message == ("node pg-eu step 'wait for streaming': timed out after 0 s waiting for "
                                  "the WAL receiver to stream (catchup on timeline 1)")
    assert info.value.logs is None


def test_wait_for_stops_at_once_when_the_container_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    container = object()
    monkeypatch.setattr(gateway, "status", lambda c: "exited")
    monkeypatch.setattr(gateway, "logs", lambda c, tail=15: "FATAL:  could not open file")
    checks: list[int] = []
    with pytest.raises(OperationFailed) as info:
        waiting.wait_for(lambda: checks.append(1), timeout=60, what="PostgreSQL to accept connections",
                         step="wait for postgres", node="pg-us", container=container)
    assert checks == []  # the check never ran: the container was already gone
    assert info.value.message == ("node pg-us step 'wait for postgres': the container stopped while waiting "
                                  "for PostgreSQL to accept connections")
    assert info.value.logs == "FATAL:  could not open file"


def test_wait_for_returns_the_value_and_errors_of_the_check_propagate() -> None:
    assert waiting.wait_for(lambda: "ready", timeout=1, what="x", step="s") == "ready"

    def broken() -> None:
        raise OperationFailed("boom", node="pg-us", step="query")

    with pytest.raises(OperationFailed, match="boom"):
        waiting.wait_for(broken, timeout=1, what="x", step="s")

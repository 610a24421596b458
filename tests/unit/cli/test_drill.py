"""`pgtopo drill run`'s screens: the live view, the plain progress for piped output, the verdict."""

from __future__ import annotations

import pytest
from rich.console import Console

from pgtopo.cli import drill, output
from pgtopo.cli.output import Line, TableData
from pgtopo.drill.runner import LiveStatus, WriterRate
from pgtopo.drill.verdict import judge
from tests.support.drill_logs import crash_log, expect


def status(*, elapsed: float = 9.5, messages: tuple[str, ...] = (), count: int = 0) -> LiveStatus:
    return LiveStatus(drill="primary-crash", elapsed=elapsed, duration=30, reads=40, stale=1, bank_violations=0,
                      writers=(WriterRate("ledger@us-east", 50, 0), WriterRate("ledger@eu-west", 11, 4)),
                      primaries={"main": ("pg-eu",), "billing": ("pg-billing",)}, running="failover",
                      next_step=None, messages=messages, message_count=count)


def test_the_live_view() -> None:
    blocks = drill.live_screen(status(messages=("[drill   9.4s] step: 1: failover",), count=1))
    assert blocks[0] == Line("drill primary-crash:   9.5 s of 30 s   writable: main: pg-eu; billing: pg-billing",
                             "info")
    assert blocks[1] == TableData(None, ["writer", "commits/s", "errors"],
                                  [["ledger@us-east", "50", "0"], ["ledger@eu-west", "11", "4"]])
    assert blocks[2:] == [Line("reads 40, stale 1", "warning"), Line("running: failover"),
                          Line("[drill   9.4s] step: 1: failover", "dim")]


def test_piped_output_prints_each_message_once(capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(output, "err", Console(stderr=True, width=200))
    plain = drill._PlainStatus()
    plain(status(messages=("a", "b"), count=2))
    plain(status(messages=("a", "b", "c"), count=3))
    plain(status(messages=("a", "b", "c"), count=3))
    lines = capsys.readouterr().err.splitlines()
    assert [ln for ln in lines if not ln.startswith("[drill")] == ["a", "b", "c"]
    assert lines[2] == "[drill   9.5s] ledger@us-east 50/s (0 errors), ledger@eu-west 11/s (4 errors); reads 40, stale 1"


def test_the_verdict_screen_lists_each_failure_with_its_details() -> None:
    v = judge(crash_log(reported_commits=9), expect(acked_lost="reported", split_brain=False))
    blocks = drill.verdict_screen(v)
    table = blocks[0]
    assert isinstance(table, TableData) and table.title == "verdict of drill t"
    assert ["acked_lost", "", "3 commit(s), 300 B of WAL", "= reported", "FAIL"] in table.rows
    assert blocks[1] == Line("FAIL acked_lost", "error")
    details = [b.text for b in blocks[2:] if isinstance(b, Line)]
    assert details[0] == "  175 commits acknowledged; lost: ledger@us-east 3" and "MISMATCH" in details[1]

"""What pgtopo expects to be running: upstreams that follow a failover, what primary_conninfo names."""

from __future__ import annotations

import dataclasses

from pgtopo.observe import expectations
from tests.support.global_saas import FOUR, GLOBAL, standby


def test_expected_upstream_follows_failovers() -> None:
    file = {"main": "pg-use"}
    assert [expectations.expected_upstream(FOUR, n, file) for n in ("pg-use", "pg-use2", "pg-euw", "pg-euc")] == [
        None, "pg-use", "pg-use", "pg-euw"]
    moved = {"main": "pg-euw"}
    assert [expectations.expected_upstream(FOUR, n, moved) for n in ("pg-use", "pg-use2", "pg-euw", "pg-euc")] == [
        "pg-euw", "pg-euw", None, "pg-euw"]
    assert expectations.failed_over(FOUR, moved) == {"main"}


def test_configured_upstream() -> None:
    ns = standby("pg-eu", "eu-west", upstream="pg-us")
    assert expectations.configured_upstream(GLOBAL, ns) == "pg-us"
    assert expectations.configured_upstream(GLOBAL, dataclasses.replace(ns, settings={"primary_conninfo": "host="})) is None
    assert expectations.configured_upstream(GLOBAL, dataclasses.replace(ns, settings={})) is None

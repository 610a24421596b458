"""The drill file: durations, short forms, one action per step, and exact `path: message` problems."""

from __future__ import annotations

from typing import Any

import pytest

from pgtopo.drill import spec
from pgtopo.drill.spec import Drill, parse_duration
from pgtopo.errors import ValidationFailed
from tests.support.topologies import REPO

BASE: dict[str, Any] = {"drill": "t", "topology": "t.yaml", "duration": "20s", "expect": {"split_brain": False}}
SHIPPED = sorted((REPO / "topologies" / "drills").glob("*.yaml"))


def problems(**changes: Any) -> list[str]:
    with pytest.raises(ValidationFailed) as exc:
        spec.parse({**BASE, **changes})
    return exc.value.problems


@pytest.mark.parametrize(("text", "seconds"), [("500ms", 0.5), ("10s", 10.0), ("1.5s", 1.5), ("2m", 120.0), (3, 3.0),
                                               (0.25, 0.25), ("7", 7.0), (" 8s ", 8.0)])
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(("text", "message"), [
    ("10x", "'10x' is not a duration (examples: 500ms, 10s, 2m)"),
    ("2h", "'2h' is not a duration (examples: 500ms, 10s, 2m)"),
    (True, "'True' is not a duration (examples: 500ms, 10s, 2m)"),
    (-1, "'-1' is not a duration of 0 or more"),
    ("61m", "'61m' is longer than 60 minutes"),
])
def test_bad_durations(text: object, message: str) -> None:
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(").replace(")", r"\)") + "$"):
        parse_duration(text)


def test_short_forms_and_descriptions() -> None:
    d = spec.parse({**BASE, "steps": [
        {"at": 1, "failover": None}, {"after": "500ms", "switchover": "pg-eu"}, {"rejoin": "old-primary"},
        {"heal": None}, {"unpause": None}, {"wait": "2m"},
        {"latency": {"between": ["us-east", "eu-west"], "rtt": "0.4s", "jitter": "5ms"}},
        {"latency": {"between": ["us-east", "eu-west"], "reset": True}},
        {"wait-until": {"caught-up": "replica", "timeout": "30s"}},
        {"failover": {"to": "pg-eu", "force": True, "max_lag": 0}},
        {"add-subscription": {"subscriber": "pg-billing", "publication": "inventory_pub"}},
    ]})
    assert [(s.action, s.describe()) for s in d.steps] == [
        ("failover", "failover"), ("switchover", "switchover to pg-eu"), ("rejoin", "rejoin old-primary"),
        ("heal", "heal every partition"), ("unpause", "unpause every paused node"), ("wait", "wait 120s"),
        ("latency", "latency us-east <-> eu-west 400ms ±5ms"), ("latency", "latency us-east <-> eu-west reset"),
        ("wait-until", "wait until replica is caught-up (at most 30s)"),
        ("failover", "failover to pg-eu (forced) max lag 0 B"),
        ("add-subscription", "add-subscription on pg-billing to inventory_pub"),
    ]
    assert (d.steps[0].at, d.steps[1].after) == (1.0, 0.5)
    assert d.sample_every == 0.25 and d.workload.ledger is not None and d.workload.ledger.rate == 50


@pytest.mark.parametrize(("changes", "expected"), [
    ({"duration": "20x"}, ["duration: '20x' is not a duration (examples: 500ms, 10s, 2m)"]),
    ({"duration": "0.5s"}, ["duration: a drill lasts at least 1s"]),
    ({"sample_every": "10ms"}, ["sample_every: between 50ms and 5s"]),
    ({"bogus": 1}, ["bogus: unknown field"]),
    ({"drill": "Bad Name"}, ["drill: 'Bad Name' is not a valid name (lower-case letters, digits and '-')"]),
    ({"steps": [{"at": "1s", "kill": "a", "pause": "b"}]},
     ["steps.0: a step does exactly one of kill, pause, unpause, partition, heal, latency, failover, switchover, "
      "rejoin, add-subscription, wait, wait-until (this one: kill, pause)"]),
    ({"steps": [{"at": "1s"}]},
     ["steps.0: a step does exactly one of kill, pause, unpause, partition, heal, latency, failover, switchover, "
      "rejoin, add-subscription, wait, wait-until"]),
    ({"steps": [{"at": "1s", "after": "2s", "kill": "a"}]},
     ["steps.0: give at (from the start) or after (the previous step), not both"]),
    ({"steps": ["kill"]}, ["steps.0: a step is a mapping such as `kill: pg-us`, not 'kill'"]),
    ({"steps": [{"latency": {"between": ["a", "b"]}}]},
     ["steps.0.latency: give either rtt (the new round trip) or reset: true"]),
    ({"steps": [{"latency": {"between": ["a", "b"], "reset": True, "jitter": "1ms"}}]},
     ["steps.0.latency: jitter goes with rtt, not with reset"]),
    ({"steps": [{"wait-until": {"streaming": "a", "writable": "b"}}]},
     ["steps.0.wait-until: give exactly one condition: streaming, writable, caught-up or subscribed"]),
    ({"steps": [{"kill": "a", "colour": "red"}]}, ["steps.0.colour: unknown field"]),
    ({"expect": {}}, ["expect: expect at least one thing (a drill that expects nothing proves nothing)"]),
    ({"expect": {"acked_lost": "some"}}, ["expect.acked_lost: 'some' is neither a number of commits nor 'reported'"]),
    ({"expect": {"acked_lost": -1}}, ["expect.acked_lost: Input should be greater than or equal to 0"]),
    ({"expect": {"stale_reads": {"fast": 1}}},
     ["expect.stale_reads.fast: Input should be 'lsn', 'time-window', 'primary-only' or 'replica-only'"]),
    ({"expect": {"write_unavailable": {"eu-west": "5q"}}},
     ["expect.write_unavailable.eu-west: '5q' is not a duration (examples: 500ms, 10s, 2m)"]),
    ({"workload": {"readers": [{"region": "x", "strategy": "fast"}]}},
     ["workload.readers.0.strategy: Input should be 'lsn', 'time-window', 'primary-only' or 'replica-only'"]),
    ({"workload": {"bank": {"accounts": 1}}}, ["workload.bank.accounts: Input should be greater than or equal to 2"]),
])
def test_problems_name_the_field(changes: dict[str, Any], expected: list[str]) -> None:
    assert problems(**changes) == expected


def test_every_problem_at_once() -> None:
    assert problems(duration="x", steps=[{"kill": "a", "at": "y"}], expect={"bank_violations": -2}) == [
        "duration: 'x' is not a duration (examples: 500ms, 10s, 2m)",
        "steps.0.at: 'y' is not a duration (examples: 500ms, 10s, 2m)",
        "expect.bank_violations: Input should be greater than or equal to 0",
    ]


def test_required_fields() -> None:
    with pytest.raises(ValidationFailed) as exc:
        spec.parse({"drill": "t"})
    assert exc.value.problems == ["topology: required field is missing", "duration: required field is missing",
                                  "expect: required field is missing"]


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_the_shipped_drills_parse_and_are_short(path: object) -> None:
    d = spec.load(path)  # type: ignore[arg-type]
    assert isinstance(d, Drill) and 20 <= d.duration <= 40
    assert d.topology in ("../global-saas.yaml", "../four-regions.yaml", "../payments.yaml", "../global-saas-patroni.yaml")


def test_json_schema_describes_the_file() -> None:
    schema = spec.json_schema()
    assert schema["title"] == "pgtopo drill file"
    assert set(schema["required"]) == {"drill", "topology", "duration", "expect"}
    step = schema["$defs"]["Step"]["properties"]
    assert {"add-subscription", "wait-until", "kill", "at", "after"} <= set(step)
    assert step["at"]["anyOf"][0]["anyOf"][0]["type"] == "string"

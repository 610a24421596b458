"""The drill file: a topology, a workload, a timeline of fault steps and the expectations.

Validated like the topology file: pydantic with unknown keys refused, then the semantic
checks against the topology it names (:func:`check`); every problem is reported at once as
``path.to.field: message``. Durations are ``500ms``, ``10s``, ``2m`` or a number of seconds.

In node fields, ``primary`` means the drill cluster's primary when the step runs, ``replica`` its
streaming replica with the highest failover priority, and ``old-primary`` the node that was
primary before the drill's last kill, pause, failover or switchover of it; ``primary@CLUSTER``
(and ``replica@CLUSTER``, ``old-primary@CLUSTER``) mean the same in another cluster, a subscriber
cluster for instance. A drill written that way runs again on the topology it left behind.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from pgtopo.apps.routing import Strategy
from pgtopo.errors import ValidationFailed
from pgtopo.model import loader

PRIMARY = "primary"
REPLICA = "replica"
OLD_PRIMARY = "old-primary"
ROLE_WORDS = (PRIMARY, REPLICA, OLD_PRIMARY)


def role_word(name: str) -> tuple[str, str | None] | None:
    """``primary`` -> (primary, None); ``replica@billing`` -> (replica, billing); a node name -> None."""
    word, at, cluster = name.partition("@")
    if word not in ROLE_WORDS or (at and not cluster):
        return None
    return word, cluster or None
MAX_DURATION_S = 3600.0
_DURATION_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|s|m)?\s*$")


def parse_duration(value: Any) -> float:
    """``500ms``, ``10s``, ``2m`` or a number (seconds) -> seconds."""
    if isinstance(value, bool):
        raise ValueError(f"'{value}' is not a duration (examples: 500ms, 10s, 2m)")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION_RE.match(value)):
        seconds = float(m.group(1)) * {"ms": 0.001, "s": 1.0, "m": 60.0, None: 1.0}[m.group(2)]
    else:
        raise ValueError(f"'{value}' is not a duration (examples: 500ms, 10s, 2m)")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"'{value}' is not a duration of 0 or more")
    if seconds > MAX_DURATION_S:
        raise ValueError(f"'{value}' is longer than {MAX_DURATION_S / 60:g} minutes")
    return seconds


def format_duration(seconds: float) -> str:
    return f"{seconds * 1000:g}ms" if seconds < 1 else f"{seconds:g}s"


Duration = Annotated[
    float, BeforeValidator(parse_duration),
    WithJsonSchema({"anyOf": [{"type": "string", "pattern": _DURATION_RE.pattern}, {"type": "number", "minimum": 0}],
                    "description": "500ms, 10s, 2m, or a number of seconds"}),
]
Count = Annotated[int, Field(ge=0)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


# -- the workload --------------------------------------------------------------------------------

class Ledger(_Model):
    """One writer per region: a row per commit, through the application's multi-host URL."""

    regions: tuple[str, ...] | None = Field(default=None, description="default: the primary's region")
    rate: float = Field(default=50, ge=0, description="commits per second per writer; 0: as fast as possible")
    timeout: Duration = Field(default=2.0, description="a commit not answered by then counts as failed")


class Readers(_Model):
    """Sessions in a region that write a row and read it back through pgtopo.apps.routing."""

    region: str
    strategy: Strategy = "lsn"
    sessions: int = Field(default=2, ge=1, le=32)
    rate: float = Field(default=10, ge=0, description="write-then-read operations per second per session")
    max_wait: Duration | None = Field(default=None, description="lsn: longest wait for the replica")
    timeout: Duration = 2.0


class Bank(_Model):
    """Transfers between accounts; every node's sum of balances must stay the same."""

    accounts: int = Field(default=10, ge=2, le=10_000)
    balance: int = Field(default=1000, ge=0)
    rate: float = Field(default=20, ge=0)
    region: str | None = Field(default=None, description="default: the primary's region")
    timeout: Duration = 2.0


class Workload(_Model):
    ledger: Ledger | None = Field(default_factory=Ledger)
    readers: tuple[Readers, ...] = ()
    bank: Bank | None = None


# -- the steps -----------------------------------------------------------------------------------

class LatencyChange(_Model):
    between: tuple[str, str]
    rtt: Duration | None = None
    jitter: Duration | None = None
    reset: bool = False

    @model_validator(mode="after")
    def _rtt_or_reset(self) -> LatencyChange:
        if self.reset == (self.rtt is not None):
            raise ValueError("give either rtt (the new round trip) or reset: true")
        if self.reset and self.jitter is not None:
            raise ValueError("jitter goes with rtt, not with reset")
        return self


class Failover(_Model):
    cluster: str | None = None
    to: str | None = None
    force: bool = False
    max_lag: int | None = Field(default=None, ge=0, description="bytes (default: failover's 1 MiB)")


class Switchover(_Model):
    to: str | None = Field(default=None, description="default: the streaming replica with the highest priority")
    cluster: str | None = None


class Rejoin(_Model):
    node: str
    reclone: bool = False


class AddSubscription(_Model):
    subscriber: str
    publication: str | None = None
    publisher: str | None = None
    tables: tuple[str, ...] = ()
    database: str | None = None
    name: str | None = None
    copy_data: bool = True


class WaitUntil(_Model):
    streaming: str | None = None
    writable: str | None = None
    caught_up: str | None = Field(default=None, alias="caught-up")
    subscribed: str | None = None
    timeout: Duration = 60.0

    @model_validator(mode="after")
    def _one_condition(self) -> WaitUntil:
        given = [k for k in ("streaming", "writable", "caught-up", "subscribed")
                 if getattr(self, k.replace("-", "_")) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one condition: streaming, writable, caught-up or subscribed")
        return self

    def condition(self) -> tuple[str, str]:
        for key in ("streaming", "writable", "caught_up", "subscribed"):
            value = getattr(self, key)
            if value is not None:
                return key.replace("_", "-"), value
        raise AssertionError("validated: one condition")


ACTIONS = ("kill", "pause", "unpause", "partition", "heal", "latency", "failover", "switchover", "rejoin",
           "add-subscription", "wait", "wait-until")


class Step(_Model):
    """One action at a time: ``at`` (from the start) or ``after`` (the previous step ended)."""

    at: Duration | None = None
    after: Duration | None = None
    kill: str | None = None
    pause: str | None = None
    unpause: str | None = Field(default=None, description="a node, or 'all' the drill paused")
    partition: str | None = None
    heal: str | None = Field(default=None, description="a region or node, or 'all'")
    latency: LatencyChange | None = None
    failover: Failover | None = None
    switchover: Switchover | None = None
    rejoin: Rejoin | None = None
    add_subscription: AddSubscription | None = Field(default=None, alias="add-subscription")
    wait: Duration | None = None
    wait_until: WaitUntil | None = Field(default=None, alias="wait-until")

    @model_validator(mode="before")
    @classmethod
    def _short_forms(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            raise ValueError(f"a step is a mapping such as `kill: pg-us`, not {data!r}")
        given = [k for k in ACTIONS if k in data]
        if len(given) != 1:
            raise ValueError(f"a step does exactly one of {', '.join(ACTIONS)}"
                             + (f" (this one: {', '.join(given)})" if given else ""))
        out = dict(data)
        # `failover:` (nothing), `switchover: pg-eu`, `rejoin: pg-us`, `heal:` (everything).
        shorts = {"failover": "cluster", "switchover": "to", "rejoin": "node"}
        for key, field in shorts.items():
            if key in out and out[key] is None:
                out[key] = {}
            elif key in out and isinstance(out[key], str):
                out[key] = {field: out[key]}
        for key in ("heal", "unpause"):
            if key in out and out[key] is None:
                out[key] = "all"
        if "at" in out and "after" in out:
            raise ValueError("give at (from the start) or after (the previous step), not both")
        return out

    @property
    def action(self) -> str:
        return next(k for k in ACTIONS if getattr(self, k.replace("-", "_")) is not None)

    def describe(self) -> str:
        """``kill pg-us``, ``failover of main to pg-eu (forced)``, ``wait 5s``..."""
        a = self.action
        if a == "unpause" and self.unpause == "all":
            return "unpause every paused node"
        if a in ("kill", "pause", "unpause", "partition"):
            return f"{a} {getattr(self, a)}"
        if a == "heal":
            return "heal every partition" if self.heal == "all" else f"heal {self.heal}"
        if a == "latency" and self.latency is not None:
            pair = " <-> ".join(self.latency.between)
            if self.latency.reset:
                return f"latency {pair} reset"
            jitter = f" ±{format_duration(self.latency.jitter)}" if self.latency.jitter else ""
            return f"latency {pair} {format_duration(self.latency.rtt or 0)}{jitter}"
        if a == "failover" and self.failover is not None:
            f = self.failover
            return ("failover" + (f" of {f.cluster}" if f.cluster else "") + (f" to {f.to}" if f.to else "")
                    + (" (forced)" if f.force else "") + (f" max lag {f.max_lag} B" if f.max_lag is not None else ""))
        if a == "switchover" and self.switchover is not None:
            return "switchover" + (f" to {self.switchover.to}" if self.switchover.to else "")
        if a == "rejoin" and self.rejoin is not None:
            return f"rejoin {self.rejoin.node}" + (" (reclone)" if self.rejoin.reclone else "")
        if a == "add-subscription" and self.add_subscription is not None:
            s = self.add_subscription
            return f"add-subscription on {s.subscriber}" + (f" to {s.publication}" if s.publication else "")
        if a == "wait":
            return f"wait {format_duration(self.wait or 0)}"
        assert self.wait_until is not None
        cond, value = self.wait_until.condition()
        return f"wait until {value} is {cond} (at most {format_duration(self.wait_until.timeout)})"


# -- expectations --------------------------------------------------------------------------------

class Expect(_Model):
    """What must hold at the end; each one is PASS or FAIL. Omitted ones are measured and shown."""

    write_unavailable: Duration | dict[str, Duration] | None = Field(
        default=None, description="per ledger writer (or per writer's region): last commit on the old timeline to "
                                  "the first on the new")
    error_window: Duration | dict[str, Duration] | None = Field(
        default=None, description="per ledger writer (or per writer's region): longest time with errors")
    acked_lost: Count | Literal["reported"] | None = Field(
        default=None, description="acknowledged commits lost at most; 'reported': exactly what failover reported")
    stale_reads: Count | dict[Strategy, Count] | None = None
    bank_violations: Count | None = None
    split_brain: bool | None = None
    logical_complete: bool | None = None

    @field_validator("acked_lost", mode="before")
    @classmethod
    def _count_or_reported(cls, value: Any) -> Any:
        if isinstance(value, str) and value != "reported":
            raise ValueError(f"'{value}' is neither a number of commits nor 'reported'")
        return value

    @model_validator(mode="after")
    def _something(self) -> Expect:
        if all(getattr(self, k) is None for k in type(self).model_fields):
            raise ValueError("expect at least one thing (a drill that expects nothing proves nothing)")
        return self


class Drill(_Model):
    """A drill file."""

    drill: Annotated[str, Field(pattern=r"^[a-z0-9]([a-z0-9-]{0,60}[a-z0-9])?$")]
    description: str | None = None
    topology: str = Field(description="the topology file, relative to this file")
    cluster: str | None = Field(default=None, description="the cluster under test (default: the first with replicas)")
    database: str | None = Field(default=None, description="default: the cluster's first database")
    duration: Duration
    sample_every: Duration = Field(default=0.25, description="every node is sampled this often")
    workload: Workload = Field(default_factory=Workload)
    steps: tuple[Step, ...] = ()
    expect: Expect

    @field_validator("duration")
    @classmethod
    def _long_enough(cls, value: float) -> float:
        if value < 1:
            raise ValueError("a drill lasts at least 1s")
        return value

    @field_validator("sample_every")
    @classmethod
    def _sampling(cls, value: float) -> float:
        if not 0.05 <= value <= 5:
            raise ValueError("between 50ms and 5s")
        return value


# -- loading -------------------------------------------------------------------------------------

_MODEL_NAMES = {"Drill", "Workload", "Ledger", "Readers", "Bank", "Step", "LatencyChange", "Failover", "Switchover",
                "Rejoin", "AddSubscription", "WaitUntil", "Expect", "str", "int", "float", "bool", "dict",
                "constrained-int"}


def _problems(err: ValidationError) -> list[str]:
    return _one_per_field(loader.pydantic_problems(err, model_names=_MODEL_NAMES,
                                                   name_rule="lower-case letters, digits and '-'"))


def _one_per_field(lines: list[str]) -> list[str]:
    """A value that fits no member of a union fails each member: one message per field, and the
    most precise one (``stale_reads.bogus``, not also ``stale_reads: Input should be a valid integer``)."""
    first: dict[str, str] = {}
    for line in lines:
        first.setdefault(line.split(": ", 1)[0], line)
    return [line for where, line in first.items() if not any(w.startswith(where + ".") for w in first)]


def parse(data: dict[str, Any]) -> Drill:
    try:
        return Drill.model_validate(data)
    except ValidationError as err:
        raise ValidationFailed(_problems(err)) from None


def load(path: Path | str) -> Drill:
    """Read and validate a drill file (not yet against its topology: see :func:`check`)."""
    return parse(loader.load_yaml(Path(path)))


def topology_path(drill: Drill, drill_path: Path) -> Path:
    return (drill_path.parent / drill.topology).resolve() if not Path(drill.topology).is_absolute() \
        else Path(drill.topology)


def json_schema() -> dict[str, Any]:
    schema = Drill.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "pgtopo drill file"
    return schema

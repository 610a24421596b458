"""What a drill records: every write attempt, read, node sample, lag sample, bank check and step,
in seconds since the drill started; then what the nodes hold at the end.

Workload and sampler threads append to one :class:`Recorder`; :func:`pgtopo.drill.verdict.judge`
reads the finished :class:`DrillLog`, which is plain data (written to the report as JSON and
read back with :func:`from_json`).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

Outcome = Literal["ok", "error", "unknown"]  # unknown: the connection broke while the commit was in flight
WorkloadKind = Literal["ledger", "bank", "reader"]
T = TypeVar("T")


@dataclass(frozen=True)
class Attempt:
    """One write transaction; every one inserts the ledger row (``workload``, ``seq``)."""

    workload: str
    kind: WorkloadKind
    seq: int
    start: float
    end: float
    outcome: Outcome
    lsn: int | None = None  # the server's flush position after the commit (at or past its commit record)
    timeline: int | None = None
    node: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class Read:
    """A read-your-writes check: the session's own row just written, read back by the strategy."""

    workload: str
    strategy: str
    region: str
    start: float
    end: float
    outcome: Literal["ok", "stale", "error"]
    served_by: str | None = None  # replica or primary
    waited_s: float = 0.0
    max_wait_s: float = 0.0
    error: str | None = None


@dataclass(frozen=True)
class NodeSample:
    """One node at one tick of the samplers (ticks are shared: tick k is at k x sample_every)."""

    tick: int
    t: float
    node: str
    cluster: str
    reachable: bool
    writable: bool = False
    timeline: int | None = None
    lsn: int | None = None
    error: str | None = None


@dataclass(frozen=True)
class LagSample:
    """One replication edge as its sender sees it (pg_stat_replication)."""

    tick: int
    t: float
    sender: str
    receiver: str  # the standby node, or the subscription
    kind: Literal["physical", "logical"]
    bytes: int | None
    seconds: float | None


@dataclass(frozen=True)
class BankRead:
    tick: int
    t: float
    node: str
    total: int | None
    accounts: int | None
    error: str | None = None


@dataclass(frozen=True)
class ReportedLoss:
    """What `failover` said it lost (pgtopo.ha.dataloss.Loss)."""

    cluster: str
    old_primary: str
    new_primary: str
    bytes: int | None
    commits: int | None
    exact: bool
    fork_lsn: int | None
    timeline: int | None


@dataclass(frozen=True)
class StepRecord:
    index: int
    action: str
    text: str
    planned: float
    start: float
    end: float
    status: Literal["ok", "failed", "skipped"]
    detail: str = ""
    loss: ReportedLoss | None = None


@dataclass(frozen=True)
class SubscriberRows:
    node: str
    subscription: str
    rows: dict[str, dict[int, int]]  # writer -> seq -> copies
    error: str | None = None


@dataclass(frozen=True)
class Final:
    """What the cluster holds once the workload stopped: the ledger of its primary, and each subscriber's."""

    cluster: str
    primary: str | None
    writable: tuple[str, ...]
    ledger: dict[str, list[int]] | None  # writer -> seqs present; None: no primary to read
    subscribers: tuple[SubscriberRows, ...] = ()
    error: str | None = None


@dataclass
class DrillLog:
    drill: str
    topology: str
    cluster: str
    started_at: str  # wall clock, ISO 8601
    duration: float
    sample_every: float
    bank_total: int | None = None
    bank_accounts: int | None = None
    attempts: list[Attempt] = field(default_factory=list)
    reads: list[Read] = field(default_factory=list)
    samples: list[NodeSample] = field(default_factory=list)
    lags: list[LagSample] = field(default_factory=list)
    bank: list[BankRead] = field(default_factory=list)
    steps: list[StepRecord] = field(default_factory=list)
    final: Final | None = None
    notes: list[str] = field(default_factory=list)
    messages: list[tuple[float, str, str]] = field(default_factory=list)  # (t, subject, message)
    ended: float = 0.0  # when the workload stopped


class Recorder:
    """The thread-safe sink every workload and sampler appends to; ``now()`` is the drill's clock."""

    def __init__(self, log: DrillLog, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.log = log
        self._clock = clock
        self._t0 = clock()
        self._lock = threading.Lock()

    def now(self) -> float:
        return self._clock() - self._t0

    def _add(self, items: list[T], item: T) -> None:
        with self._lock:
            items.append(item)

    def attempt(self, a: Attempt) -> None:
        self._add(self.log.attempts, a)

    def read(self, r: Read) -> None:
        self._add(self.log.reads, r)

    def sample(self, s: NodeSample) -> None:
        self._add(self.log.samples, s)

    def lag(self, s: LagSample) -> None:
        self._add(self.log.lags, s)

    def bank(self, b: BankRead) -> None:
        self._add(self.log.bank, b)

    def step(self, s: StepRecord) -> None:
        self._add(self.log.steps, s)

    def note(self, text: str) -> None:
        self._add(self.log.notes, text)

    def message(self, subject: str, text: str) -> None:
        self._add(self.log.messages, (round(self.now(), 3), subject, text))

    def recent(self, items: list[T], since: float, when: Callable[[T], float]) -> list[T]:
        """The newest items at or after ``since`` (the lists are appended in time order, roughly)."""
        with self._lock:
            out = []
            for item in reversed(items):
                if when(item) < since - 5:  # threads append a little out of order
                    break
                if when(item) >= since:
                    out.append(item)
            return out


# -- JSON --------------------------------------------------------------------------------------------

def to_json(log: DrillLog) -> dict[str, Any]:
    return dataclasses.asdict(log)


def _many(cls: type[T], items: Iterable[dict[str, Any]]) -> list[T]:
    return [cls(**item) for item in items]


def from_json(data: dict[str, Any]) -> DrillLog:
    """The log as :func:`to_json` wrote it (JSON turns int keys into strings: they are restored)."""
    d = dict(data)
    steps = [StepRecord(**{**s, "loss": ReportedLoss(**s["loss"]) if s.get("loss") else None}) for s in d.pop("steps")]
    final = None
    if d.get("final"):
        f = dict(d["final"])
        subs = tuple(SubscriberRows(**{**s, "rows": {w: {int(k): v for k, v in seqs.items()}
                                                    for w, seqs in s["rows"].items()}})
                     for s in f.pop("subscribers", []))
        final = Final(**{**f, "writable": tuple(f["writable"]), "subscribers": subs})
    d.pop("final", None)
    return DrillLog(
        **{k: v for k, v in d.items() if k not in ("attempts", "reads", "samples", "lags", "bank", "messages")},
        attempts=_many(Attempt, d["attempts"]), reads=_many(Read, d["reads"]), samples=_many(NodeSample, d["samples"]),
        lags=_many(LagSample, d["lags"]), bank=_many(BankRead, d["bank"]), steps=steps, final=final,
        messages=[(float(t), str(s), str(m)) for t, s, m in d.get("messages", [])],
    )

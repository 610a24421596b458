"""What the Patroni scenarios watch from the host, through the published ports (which partitions
never cut): a writer that records when each commit was acknowledged, a sampler that asks every
member whether it is writable, and the pure readings of what they saw (unit-tested).

A member is *writable* at a sample when it answered ``pg_is_in_recovery()`` with false: PostgreSQL
then accepts writes (Patroni sets no ``default_transaction_read_only``). ``None``: it did not answer.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo

from pgtopo.model.topology import Topology
from pgtopo.patroni import api
from pgtopo.patroni.views import ClusterView
from pgtopo.postgres import connect
from pgtopo.runtime import state

Reading = bool | None  # writable, read-only, or no answer


@dataclass(frozen=True)
class Sample:
    at: float  # time.time() when the round started (a round asks every member, a few ms apart)
    writable: Mapping[str, Reading]


@dataclass(frozen=True)
class Ack:
    row: int
    at: float  # time.time() when COMMIT returned


# -- pure readings ---------------------------------------------------------------------------------------------------

def split_brain(samples: Sequence[Sample]) -> list[Sample]:
    """The samples at which more than one member was writable."""
    return [s for s in samples if sum(1 for r in s.writable.values() if r is True) > 1]


def last_writable(samples: Sequence[Sample], member: str, *, after: float) -> float | None:
    """When ``member`` was last seen writable at or after ``after`` (None: never)."""
    times = [s.at for s in samples if s.at >= after and s.writable.get(member) is True]
    return max(times, default=None)


def first_writable(samples: Sequence[Sample], member: str, *, after: float) -> float | None:
    times = [s.at for s in samples if s.at >= after and s.writable.get(member) is True]
    return min(times, default=None)


def first_read_only(samples: Sequence[Sample], member: str, *, after: float) -> float | None:
    """The first sample after ``after`` at which ``member`` answered and was in recovery."""
    times = [s.at for s in samples if s.at >= after and s.writable.get(member) is False]
    return min(times, default=None)


def largest_gap(acks: Sequence[Ack], *, start: float, end: float) -> float:
    """The longest stretch of [start, end] with no acknowledged commit."""
    times = [start, *sorted(a.at for a in acks if start <= a.at <= end), end]
    return max(b - a for a, b in pairwise(times))


def acked_between(acks: Sequence[Ack], *, start: float, end: float) -> list[Ack]:
    return [a for a in acks if start <= a.at <= end]


def host_dsn(topo: Topology, members: Sequence[str], *, db: str, **extra: str) -> str:
    """One libpq connection string to ``members`` through their published ports (those running)."""
    ports = [p for p in (connect.node_port(topo.name, m) for m in members) if p is not None]
    if not ports:
        raise psycopg.OperationalError(f"none of {', '.join(members)} is running")
    pw = state.passwords(topo.name, create=False).get("pgtopo", "")
    return make_conninfo(host=",".join("127.0.0.1" for _ in ports), port=",".join(str(p) for p in ports),
                         dbname=db, user="pgtopo", password=pw, **extra)


# -- the threads -----------------------------------------------------------------------------------------------------

class Sampler(threading.Thread):
    """Asks every member ``pg_is_in_recovery()`` every ``interval`` seconds through its published port."""

    def __init__(self, topo: Topology, members: Sequence[str], *, interval: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.topo, self.members, self.interval = topo, list(members), interval
        self.samples: list[Sample] = []
        self.halt = threading.Event()
        self._conns: dict[str, psycopg.Connection[Any] | None] = dict.fromkeys(self.members)

    def _ask(self, member: str) -> Reading:
        conn = self._conns.get(member)
        try:
            if conn is None or conn.closed:
                conn = psycopg.connect(host_dsn(self.topo, [member], db="postgres", connect_timeout="1",
                                                options="-c statement_timeout=1000"), autocommit=True)
                self._conns[member] = conn
            row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
            return None if row is None else not bool(row[0])
        except Exception:  # a member that does not answer is what is recorded
            if conn is not None:
                conn.close()
            self._conns[member] = None
            return None

    def run(self) -> None:
        while not self.halt.is_set():
            at = time.time()
            self.samples.append(Sample(at, {m: self._ask(m) for m in self.members}))
            self.halt.wait(max(0.0, self.interval - (time.time() - at)))
        for conn in self._conns.values():
            if conn is not None:
                conn.close()

    def stop(self) -> list[Sample]:
        self.halt.set()
        self.join(timeout=15)
        return list(self.samples)


class LedgerWriter(threading.Thread):
    """Inserts rows ``start_id``, ``start_id + 1``... into ``products`` and records when each commit was
    acknowledged. ``members``: the members to try, by their published ports, in one libpq multi-host
    connection with ``target_session_attrs=read-write`` (one member: a writer tied to it).
    ``synchronous_commit``: the session's setting (``local``: a commit does not wait for a standby)."""

    def __init__(self, topo: Topology, members: Sequence[str], *, db: str, start_id: int,
                 synchronous_commit: str = "on") -> None:
        super().__init__(daemon=True)
        self.topo, self.members, self.db = topo, list(members), db
        self.next_id = start_id
        self.synchronous_commit = synchronous_commit
        self.acks: list[Ack] = []
        self.unknown: list[int] = []  # the connection broke during the commit: maybe written
        self.halt = threading.Event()

    def _dsn(self) -> str:
        return host_dsn(self.topo, self.members, db=self.db, application_name="pc-ledger", connect_timeout="2",
                        target_session_attrs="read-write", options=f"-c synchronous_commit={self.synchronous_commit}")

    @property
    def acked(self) -> set[int]:
        return {a.row for a in self.acks}

    def run(self) -> None:
        conn: psycopg.Connection[Any] | None = None
        while not self.halt.is_set():
            try:
                if conn is None:
                    conn = psycopg.connect(self._dsn(), autocommit=True)
                i = self.next_id
                self.next_id += 1
                try:
                    conn.execute("INSERT INTO products (id, sku, name, price_cents) OVERRIDING SYSTEM VALUE "
                                 "VALUES (%s, %s, 'ledger', 1)", (i, f"l-{i}"))
                    self.acks.append(Ack(i, time.time()))
                except psycopg.errors.ReadOnlySqlTransaction:
                    conn.close()
                    conn = None
                    self.halt.wait(0.1)
                except psycopg.OperationalError:
                    self.unknown.append(i)
                    conn = None
                self.halt.wait(0.01)
            except psycopg.Error:
                conn = None
                self.halt.wait(0.1)
        if conn is not None:
            conn.close()

    def stop(self) -> None:
        self.halt.set()
        self.join(timeout=15)


def rows(topo: Topology, member: str, db: str) -> set[int]:
    with connect.connect(topo.name, member, dbname=db) as conn:
        return {int(str(r[0])) for r in conn.execute("SELECT id FROM products WHERE name = 'ledger'").fetchall()}


# -- Patroni's view --------------------------------------------------------------------------------------------------

def patroni_view(topo: Topology, cluster: str, *, ask: Sequence[str] | None = None) -> ClusterView:
    """``GET /cluster`` from the first of ``ask`` (default: every member of ``cluster``) that answers.
    A member cut off from etcd answers its last view: ask one on the majority's side."""
    nodes = list(ask) if ask is not None else list(topo.clusters[cluster].nodes)
    return api.first_answer(topo.name, nodes, password=api.rest_password(topo.name))[1]


def view_or_none(topo: Topology, cluster: str, *, ask: Sequence[str] | None = None) -> ClusterView | None:
    try:
        return patroni_view(topo, cluster, ask=ask)
    except Exception:  # polling: no answer yet
        return None


def watch(check: Callable[[], str | None], *, seconds: float, interval: float = 0.5) -> None:
    """Keep checking for ``seconds``; ``check`` returns None while all is well, or what went wrong
    (which fails at once, naming it)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        problem = check()
        if problem is not None:
            raise AssertionError(problem)
        time.sleep(interval)

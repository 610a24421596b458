"""The drill's workloads, each a thread recording every attempt in the drill's :class:`Recorder`.

- :class:`LedgerWriter`: one per region; inserts ``(writer, seq)`` rows through the URLs an
  application in that region gets (`pgtopo env`): the multi-host URL, which finds whichever node
  accepts writes. Each acknowledged commit is recorded with the server's flush position after it,
  its timeline and the node.
- :class:`Bank`: transfers between accounts, one transaction each (two updates and a ledger row);
  the total never changes. The checks run on every node, with the samplers.
- :class:`ReaderSession`: writes its own ledger row, then reads it back through
  :mod:`pgtopo.apps.routing` with the reader's strategy; a read that misses it is stale.

A commit whose connection broke in flight is recorded as ``unknown`` (it may have committed),
a server's refusal as ``error``. Every operation has a deadline (:mod:`pgtopo.drill.deadline`).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo
from psycopg.pq import TransactionStatus

from pgtopo.apps import endpoints
from pgtopo.apps.endpoints import AppEndpoints
from pgtopo.apps.routing import CommitUnknown, Router, RoutingError, Strategy, default_max_wait_s
from pgtopo.drill.deadline import Deadlines
from pgtopo.drill.events import Attempt, Read, Recorder, WorkloadKind
from pgtopo.drill.tables import ACCOUNTS, LEDGER
from pgtopo.errors import PgtopoError, first_line
from pgtopo.model.topology import Topology
from pgtopo.runtime.gateway import DOCKER_ERRORS

Conn = psycopg.Connection[tuple[Any, ...]]
TIMELINE_SQL = "('x' || substr(pg_walfile_name(pg_current_wal_insert_lsn()), 1, 8))::bit(32)::int"
# After the commit, on the same connection: the flush position is at or past the commit record
# (the commit waited for it) and never past what is on disk, so a lost commit's position lies
# between the fork point and the end of the old primary's WAL.
POSITION_SQL = f"SELECT pg_current_wal_flush_lsn()::text, {TIMELINE_SQL}, current_setting('cluster_name')"
INSERT = sql.SQL("INSERT INTO {} (writer, seq) VALUES (%s, %s)").format(LEDGER)
# What a fault makes an operation fail with: recorded as a failed attempt, never fatal to the workload.
FAILURES: tuple[type[Exception], ...] = (psycopg.Error, PgtopoError, *DOCKER_ERRORS)
REFRESH_EVERY_S = 1.0
CONNECT_BACKOFF_S = 0.1


def lsn_of(text: str | None) -> int | None:
    from pgtopo.postgres.lsn import parse_lsn

    return parse_lsn(text)


class EndpointCache:
    """The URLs of an application in ``region``, looked up again (at most once a second) when a
    connection fails: after a failover `pgtopo env` gives the new primary first."""

    def __init__(self, topo: Topology, *, region: str, cluster: str, database: str) -> None:
        self.topo, self.region, self.cluster, self.database = topo, region, cluster, database
        self._ep: AppEndpoints | None = None
        self._looked = 0.0

    def get(self, *, refresh: bool = False) -> AppEndpoints:
        if self._ep is None or (refresh and time.monotonic() - self._looked >= REFRESH_EVERY_S):
            self._looked = time.monotonic()
            try:
                self._ep = endpoints.app_endpoints(self.topo, region=self.region, cluster=self.cluster,
                                                   database=self.database)
            except PgtopoError:
                if self._ep is None:
                    raise
        return self._ep


class Pacer:
    """``rate`` operations a second (0: as fast as possible); never bursts to catch up after a stall."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self._next = time.monotonic()

    def wait(self, halt: threading.Event) -> bool:
        """Sleep until the next operation is due; False once ``halt`` is set."""
        if self.interval:
            now = time.monotonic()
            if self._next < now - 1.0:
                self._next = now
            if self._next > now and halt.wait(self._next - now):
                return False
            self._next += self.interval
        return not halt.is_set()


class _Committer(threading.Thread):
    """A workload that commits transactions on the primary through the multi-host URL."""

    kind: WorkloadKind = "ledger"

    def __init__(self, name: str, *, source: EndpointCache, rec: Recorder, deadlines: Deadlines, rate: float,
                 timeout: float, halt: threading.Event) -> None:
        super().__init__(name=f"drill-{name}", daemon=True)
        self.workload, self.source, self.rec, self.deadlines = name, source, rec, deadlines
        self.pacer, self.timeout, self.halt = Pacer(rate), timeout, halt
        self.seq = 0
        self.node: str | None = None
        self.conn: Conn | None = None

    def transaction(self, conn: Conn, seq: int) -> psycopg.Cursor[tuple[Any, ...]]:
        """Send the transaction and the position query in one pipeline; the position's cursor."""
        raise NotImplementedError

    def _connect(self) -> Conn | None:
        start = self.rec.now()
        try:
            ep = self.source.get(refresh=True)
            conn = psycopg.connect(make_conninfo(ep.multihost_url, application_name=f"pgtopo-drill-{self.workload}"),
                                   autocommit=True)
            row = conn.execute("SELECT current_setting('cluster_name')").fetchone()
            self.node = str(row[0]) if row else None
            return conn
        except FAILURES as exc:
            self.seq += 1  # nothing was sent: a failed attempt, definitely not committed
            self.rec.attempt(Attempt(self.workload, self.kind, self.seq, start, self.rec.now(), "error",
                                     error=f"connect: {_text(exc)}"))
            self.halt.wait(CONNECT_BACKOFF_S)
            return None

    def run(self) -> None:
        try:
            while self.pacer.wait(self.halt):
                if self.conn is None:
                    self.conn = self._connect()
                    if self.conn is None:
                        continue
                self.seq += 1
                self._one(self.conn, self.seq)
        except Exception as exc:  # a measurement must not stop unnoticed: the verdict's notes say so
            self.rec.note(f"{self.workload} stopped at {self.rec.now():.1f} s: {exc.__class__.__name__}: {exc}")
        finally:
            if self.conn is not None:
                self.conn.close()

    def _one(self, conn: Conn, seq: int) -> None:
        start = self.rec.now()
        try:
            with self.deadlines.guard(conn, self.timeout):
                cur = self.transaction(conn, seq)
                row = cur.fetchone()
        except psycopg.Error as exc:
            broken = conn.broken or conn.closed
            self.rec.attempt(Attempt(self.workload, self.kind, seq, start, self.rec.now(),
                                     "unknown" if broken else "error", node=self.node, error=_text(exc)))
            if broken or isinstance(exc, psycopg.errors.ReadOnlySqlTransaction):
                conn.close()
                self.conn = None
            elif conn.info.transaction_status != TransactionStatus.IDLE:
                try:
                    conn.execute("ROLLBACK")
                except psycopg.Error:
                    conn.close()
                    self.conn = None
            return
        assert row is not None
        self.node = str(row[2])
        self.rec.attempt(Attempt(self.workload, self.kind, seq, start, self.rec.now(), "ok", lsn=lsn_of(row[0]),
                                 timeline=int(row[1]), node=self.node))


class LedgerWriter(_Committer):
    kind: WorkloadKind = "ledger"

    def transaction(self, conn: Conn, seq: int) -> psycopg.Cursor[tuple[Any, ...]]:
        # Autocommit: the INSERT is a transaction of its own, committed before the position is read.
        with conn.pipeline():
            conn.execute(INSERT, (self.workload, seq))
            return conn.execute(POSITION_SQL)


class Bank(_Committer):
    kind: WorkloadKind = "bank"

    def __init__(self, name: str, *, accounts: int, seed: int = 16, **kwargs: Any) -> None:
        super().__init__(name, **kwargs)
        self.accounts = accounts
        self.random = random.Random(seed)  # the same transfers in every run

    def transaction(self, conn: Conn, seq: int) -> psycopg.Cursor[tuple[Any, ...]]:
        a, b = self.random.sample(range(1, self.accounts + 1), 2)
        amount = self.random.randint(1, 100)
        move = sql.SQL("UPDATE {} SET balance = balance + %s WHERE id = %s").format(ACCOUNTS)
        with conn.pipeline():
            conn.execute("BEGIN")
            conn.execute(move, (-amount, a))
            conn.execute(move, (amount, b))
            conn.execute(INSERT, (self.workload, seq))
            conn.execute("COMMIT")
            return conn.execute(POSITION_SQL)


def _text(exc: BaseException) -> str:
    return first_line(exc)


# -- readers -----------------------------------------------------------------------------------------

def reader_router(ep: AppEndpoints, topo: Topology, *, strategy: Strategy, sessions: int,
                  max_wait_s: float | None) -> Router:
    if max_wait_s is None:
        max_wait_s = default_max_wait_s(topo.rtt_ms(ep.primary.region, ep.replica.region))
    return Router.from_urls(primary_url=ep.primary_url, replica_url=ep.replica_url, multihost_url=ep.multihost_url,
                            strategy=strategy, max_wait_s=max_wait_s, pool_size=sessions)


class ReaderSession(threading.Thread):
    """Writes its own ledger row, then reads it back through the router (read-your-writes)."""

    def __init__(self, name: str, *, router: Router, region: str, rec: Recorder, deadlines: Deadlines, rate: float,
                 timeout: float, halt: threading.Event) -> None:
        super().__init__(name=f"drill-{name}", daemon=True)
        self.workload, self.router, self.region, self.rec, self.deadlines = name, router, region, rec, deadlines
        self.pacer, self.timeout, self.halt = Pacer(rate), timeout, halt
        self.session = router.session()
        self.seq = 0

    def _guarded(self, work: Callable[[Conn], Any], keys: list[int]) -> Callable[[Conn], Any]:
        def run(conn: Conn) -> Any:
            keys.append(self.deadlines.arm(conn, self.timeout))
            return work(conn)

        return run

    def run(self) -> None:
        try:
            while self.pacer.wait(self.halt):
                self.seq += 1
                if self._write(self.seq):
                    self._read(self.seq)
        except Exception as exc:  # a measurement must not stop unnoticed: the verdict's notes say so
            self.rec.note(f"{self.workload} stopped at {self.rec.now():.1f} s: {exc.__class__.__name__}: {exc}")

    def _write(self, seq: int) -> bool:
        start = self.rec.now()
        keys: list[int] = []
        seen: list[tuple[Any, ...]] = []

        def insert(conn: Conn) -> None:
            row = conn.execute(INSERT + sql.SQL(f" RETURNING current_setting('cluster_name'), {TIMELINE_SQL}"),
                               (self.workload, seq)).fetchone()
            if row:
                seen.append(row)

        try:
            self.session.write_tx(self._guarded(insert, keys))
            outcome, error = "ok", None
        except CommitUnknown as exc:
            outcome, error = "unknown", exc.message
        except (psycopg.Error, RoutingError) as exc:
            outcome, error = "error", _text(exc)
        finally:
            for k in keys:
                self.deadlines.disarm(k)
        node, tl = (str(seen[-1][0]), int(seen[-1][1])) if seen else (None, None)
        # The router reports the insert position only (not the flush position): no LSN, so these
        # commits count in the loss, not in its bytes.
        self.rec.attempt(Attempt(self.workload, "reader", seq, start, self.rec.now(), outcome,  # type: ignore[arg-type]
                                 timeline=tl if outcome == "ok" else None, node=node, error=error))
        return outcome == "ok"

    def _read(self, seq: int) -> None:
        start = self.rec.now()
        keys: list[int] = []
        query = sql.SQL("SELECT count(*) FROM {} WHERE writer = %s AND seq = %s").format(LEDGER)

        def read(conn: Conn) -> int:
            row = conn.execute(query, (self.workload, seq)).fetchone()
            return int(row[0]) if row else 0

        try:
            found = self.session.read_tx(self._guarded(read, keys))
        except (psycopg.Error, RoutingError) as exc:
            self.rec.read(Read(self.workload, self.router.strategy, self.region, start, self.rec.now(), "error",
                               max_wait_s=self.router.max_wait_s, error=_text(exc)))
            return
        finally:
            for k in keys:
                self.deadlines.disarm(k)
        info = self.session.last_read
        self.rec.read(Read(self.workload, self.router.strategy, self.region, start, self.rec.now(),
                           "ok" if found else "stale", served_by=info.served_by if info else None,
                           waited_s=info.waited_s if info else 0.0, max_wait_s=self.router.max_wait_s))

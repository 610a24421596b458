"""Every node sampled throughout a drill, one thread per node on shared ticks.

At tick k (k x ``every`` seconds after the start) each node reports whether it accepts writes,
its position and timeline, the replication edges it sends (``pg_stat_replication``: physical
standbys and logical subscribers alike, with their lag in bytes and seconds) and, where the drill
tables are, the bank's sum of balances. Samplers connect to the node's published port directly
(pgtopo's own role): they see through a simulated partition, as an operator would. A node that
does not answer within the deadline is recorded as unreachable at that tick.
"""

from __future__ import annotations

import threading
from typing import Any

import psycopg
from psycopg import sql

from pgtopo.drill.deadline import Deadlines
from pgtopo.drill.events import BankRead, LagSample, NodeSample, Recorder
from pgtopo.drill.tables import ACCOUNTS
from pgtopo.drill.workloads import FAILURES
from pgtopo.errors import PgtopoError, first_line
from pgtopo.model.topology import Topology
from pgtopo.postgres import connect
from pgtopo.postgres.lsn import parse_lsn

STATUS_SQL = (
    "SELECT pg_is_in_recovery(),"
    " (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_flush_lsn() END)::text,"
    " CASE WHEN pg_is_in_recovery() THEN NULL"
    " ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END")
EDGES_SQL = (
    "SELECT application_name, pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn()"
    " ELSE pg_current_wal_lsn() END, replay_lsn)::bigint, extract(epoch FROM replay_lag)::float8"
    " FROM pg_stat_replication ORDER BY application_name")
BANK_SQL = sql.SQL("SELECT sum(balance)::bigint, count(*) FROM {}").format(ACCOUNTS)
Conn = psycopg.Connection[tuple[Any, ...]]


class NodeSampler(threading.Thread):
    def __init__(self, topo: Topology, *, node: str, cluster: str, database: str, bank: bool, rec: Recorder,
                 deadlines: Deadlines, every: float, halt: threading.Event) -> None:
        super().__init__(name=f"drill-sample-{node}", daemon=True)
        self.topo, self.node, self.cluster, self.database, self.bank = topo, node, cluster, database, bank
        self.rec, self.deadlines, self.every, self.halt = rec, deadlines, every, halt
        self.timeout = max(1.0, 3 * every)
        self._nodes = set(topo.node_names())
        self.conn: Conn | None = None

    def run(self) -> None:
        tick = int(self.rec.now() / self.every) + 1
        try:
            while not self.halt.wait(max(0.0, tick * self.every - self.rec.now())):
                self._sample(tick)
                # A slow answer skips the ticks it overran rather than sampling late.
                tick = max(tick + 1, int(self.rec.now() / self.every) + 1)
        except Exception as exc:  # a measurement must not stop unnoticed: the verdict's notes say so
            self.rec.note(f"sampler of {self.node} stopped at {self.rec.now():.1f} s: {exc.__class__.__name__}: {exc}")
        finally:
            if self.conn is not None:
                self.conn.close()

    def _connect(self) -> Conn:
        if self.conn is None or self.conn.closed or self.conn.broken:
            self.conn = psycopg.connect(connect.dsn(self.topo.name, self.node, dbname=self.database), autocommit=True)
        return self.conn

    def _sample(self, tick: int) -> None:
        t = self.rec.now()
        try:
            conn = self._connect()
            with self.deadlines.guard(conn, self.timeout), conn.pipeline():
                status = conn.execute(STATUS_SQL)
                edges = conn.execute(EDGES_SQL)
            row = status.fetchone()
            assert row is not None
            rows = edges.fetchall()
        except FAILURES as exc:
            self.rec.sample(NodeSample(tick, t, self.node, self.cluster, reachable=False, error=_text(exc)))
            self._close_if_broken()
            return
        self.rec.sample(NodeSample(tick, t, self.node, self.cluster, reachable=True, writable=not row[0],
                                   timeline=None if row[2] is None else int(row[2]), lsn=parse_lsn(row[1])))
        for name, lag, seconds in rows:
            self.rec.lag(LagSample(tick, t, self.node, str(name), "physical" if name in self._nodes else "logical",
                                   None if lag is None else int(lag), None if seconds is None else float(seconds)))
        if self.bank:
            self._check_bank(tick, t)

    def _check_bank(self, tick: int, t: float) -> None:
        try:
            conn = self._connect()
            with self.deadlines.guard(conn, self.timeout):
                row = conn.execute(BANK_SQL).fetchone()
        except (psycopg.Error, PgtopoError) as exc:
            self.rec.bank(BankRead(tick, t, self.node, None, None, error=_text(exc)))
            self._close_if_broken()
            return
        assert row is not None
        self.rec.bank(BankRead(tick, t, self.node, None if row[0] is None else int(row[0]), int(row[1])))

    def _close_if_broken(self) -> None:
        if self.conn is not None and (self.conn.broken or self.conn.closed):
            self.conn.close()
            self.conn = None


def _text(exc: BaseException) -> str:
    return exc.message if isinstance(exc, PgtopoError) else first_line(exc)

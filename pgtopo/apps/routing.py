"""Read-your-writes routing for applications: writes to the primary, reads to the nearest replica.

A write returns a *token*: the primary's WAL insert position read after the commit, on the
same connection, so it is at or past the end of the commit record whatever
``synchronous_commit`` says. A replica whose replay position has reached the token has
replayed that commit, so any snapshot it takes afterwards sees the write. Tokens are short
strings (``0/3001A28@1718000000123``: LSN, then the write's wall-clock time in ms) for a cookie
or a header; anything else is treated as "unknown", which sends reads to the primary.

Strategies (:data:`STRATEGIES`): ``lsn`` (the replica once it has replayed the token, waiting
at most ``max_wait_s``, else the primary), ``time-window`` (the primary for ``window_s`` after
the session's last write), ``primary-only`` and ``replica-only``. The decision is the pure
function :func:`choose`.

Failover: a write that could not connect, or met a read-only server, finds the primary again
through the multi-host URL (``target_session_attrs=read-write``) and is retried once. A
connection lost while the COMMIT was in flight is not retried (it may have committed):
:class:`CommitUnknown` says so.
"""

from __future__ import annotations

import os
import re
import select
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from os import PathLike
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import psycopg
import psycopg.errors
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.pq import TransactionStatus

from pgtopo.errors import InputError, PgtopoError
from pgtopo.postgres.lsn import format_lsn, parse_lsn

if TYPE_CHECKING:
    from psycopg.abc import Params
    from psycopg.abc import QueryNoTemplate as Query

    from pgtopo.model.topology import Topology

Strategy = Literal["lsn", "time-window", "primary-only", "replica-only"]
Decision = Literal["replica", "primary", "wait"]
STRATEGIES: tuple[Strategy, ...] = ("lsn", "time-window", "primary-only", "replica-only")
WINDOW_S = 2.0
DEFAULT_MAX_WAIT_S = 0.5
MIN_MAX_WAIT_S = 0.05
MAX_POLL_S = 0.02
Row = tuple[Any, ...]
Conn = psycopg.Connection[Row]
T = TypeVar("T")

_TOKEN_RE = re.compile(r"(\*|[0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8})(?:@([0-9]{1,15}))?")
# NULL on a server in recovery: a "write" that reached a standby has no position of its own.
_WRITE_LSN_SQL = "SELECT CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_insert_lsn() END::text"
# A replica that is no longer in recovery (promoted, or the primary itself) has all it wrote.
_REPLAY_LSN_SQL = ("SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() "
                   "ELSE pg_current_wal_insert_lsn() END::text")


class RoutingError(PgtopoError):
    """The router could not serve a request."""


class CommitUnknown(RoutingError):
    """The connection was lost while the COMMIT was in flight: the write may or may not have committed."""


# -- tokens -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Token:
    """What a session knows about its last write. ``lsn`` None: position unknown."""

    lsn: int | None
    at_ms: int | None = None


UNKNOWN = Token(lsn=None, at_ms=None)


def format_token(token: Token) -> str:
    lsn = "*" if token.lsn is None else format_lsn(token.lsn)
    return lsn if token.at_ms is None else f"{lsn}@{token.at_ms}"


def parse_token(text: str | None) -> Token | None:
    """None when there is no token; :data:`UNKNOWN` when the text is not one of ours."""
    if text is None or not text.strip():
        return None
    m = _TOKEN_RE.fullmatch(text.strip())
    if m is None:
        return UNKNOWN
    return Token(lsn=parse_lsn(m.group(1)), at_ms=int(m.group(2)) if m.group(2) else None)


# -- the decision -------------------------------------------------------------------------------

def needs_replica_lsn(strategy: Strategy, token: Token | None) -> bool:
    return strategy == "lsn" and token is not None and token.lsn is not None


def choose(strategy: Strategy, *, now: float, token: Token | None, replica_lsn: int | None,
           may_wait: bool = False, window_s: float = WINDOW_S) -> Decision:
    """Where a read goes. ``now`` is wall-clock seconds (tokens carry wall-clock times);
    ``replica_lsn`` the replica's replay position (None: not known); ``may_wait``: the wait
    budget is not spent yet."""
    if strategy == "primary-only":
        return "primary"
    if strategy == "replica-only" or token is None:
        return "replica"
    # A future write time (clock skew, a forged cookie) counts as recent: the safe side.
    recent = token.at_ms is None or now * 1000 - token.at_ms < window_s * 1000
    if strategy == "time-window" or token.lsn is None:
        return "primary" if recent else "replica"
    if replica_lsn is not None and replica_lsn >= token.lsn:
        return "replica"
    return "wait" if may_wait and replica_lsn is not None else "primary"


def default_max_wait_s(replication_rtt_ms: float) -> float:
    """Twice the expected lag (half the round trip): waiting longer than a trip to the primary
    costs more than reading there."""
    return max(MIN_MAX_WAIT_S, replication_rtt_ms / 1000)


# -- connections --------------------------------------------------------------------------------

class _NotSent(Exception):
    """Nothing reached the server (connect failed): always safe to retry."""

    def __init__(self, error: psycopg.Error) -> None:
        super().__init__(str(error))
        self.error = error


def _lost(conn: Conn) -> bool:
    return conn.broken or conn.closed


def _idle_and_quiet(conn: Conn) -> bool:
    """A pooled connection worth reusing. An idle server sends nothing, so a readable socket
    means EOF or a FATAL (the server went away): checked locally, without a round trip."""
    if _lost(conn) or conn.info.transaction_status != TransactionStatus.IDLE:
        return False
    try:
        fd = conn.fileno()
        if hasattr(select, "poll"):  # select() fails on descriptors above FD_SETSIZE
            poller = select.poll()
            poller.register(fd, select.POLLIN)
            return not poller.poll(0)
        readable, _, _ = select.select([fd], [], [], 0)
    except (OSError, ValueError, psycopg.Error):
        return False
    return not readable


class _Pool:
    """A small thread-safe pool that connects in the caller's thread, so a failed connect is an
    immediate, retryable error rather than a background retry loop ending in a timeout."""

    def __init__(self, conninfo: str, *, size: int, timeout_s: float) -> None:
        self.conninfo = conninfo
        self._idle: list[Conn] = []
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(size)
        self._timeout_s = timeout_s
        self.closed = False

    @contextmanager
    def connection(self) -> Iterator[Conn]:
        if not self._slots.acquire(timeout=self._timeout_s):
            raise RoutingError(f"no free connection within {self._timeout_s:g} s")
        try:
            conn = self._checkout()
            try:
                yield conn
            finally:
                self._checkin(conn)
        finally:
            self._slots.release()

    def _checkout(self) -> Conn:
        while True:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                break
            if _idle_and_quiet(conn):
                return conn
            conn.close()
        try:
            return psycopg.connect(self.conninfo, autocommit=True)
        except psycopg.Error as exc:
            raise _NotSent(exc) from exc

    def _checkin(self, conn: Conn) -> None:
        if not _lost(conn) and conn.info.transaction_status in (TransactionStatus.INTRANS, TransactionStatus.INERROR):
            try:
                conn.rollback()
            except psycopg.Error:
                conn.close()
        with self._lock:
            if not self.closed and _idle_and_quiet(conn):
                self._idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        with self._lock:
            self.closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


def _conninfo(url: str, *, connect_timeout_s: float) -> str:
    given = conninfo_to_dict(url)
    extra: dict[str, Any] = {}
    if "connect_timeout" not in given:
        extra["connect_timeout"] = max(1, round(connect_timeout_s))
    if "application_name" not in given:
        extra["application_name"] = "pgtopo-router"
    return make_conninfo(url, **extra)


def _commit(conn: Conn, before: Callable[[], psycopg.Cursor[Row] | None]) -> tuple[psycopg.Cursor[Row] | None, int | None]:
    """``before()``'s statements, COMMIT and the position after it, in one round trip: a COMMIT
    executed in a pipeline ends the transaction at once, before the next statement runs."""
    try:
        with conn.pipeline():
            cur = before()
            conn.execute("COMMIT")
            lsn_cur = conn.execute(_WRITE_LSN_SQL)
    except psycopg.OperationalError as exc:
        if _lost(conn):
            raise CommitUnknown(f"connection lost while committing: {exc}".strip()) from exc
        raise
    row = lsn_cur.fetchone()
    return cur, parse_lsn(row[0]) if row else None


# -- the router ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class ReadInfo:
    """Where the last read was served, and how long it waited for the replica."""

    served_by: Literal["replica", "primary"]
    waited_s: float = 0.0


class Router:
    """Routes a session's writes to the primary and its reads by the chosen strategy.

    Thread-safe; share one per process. Per user or request, use :meth:`session`."""

    def __init__(self, *, primary_url: str, replica_url: str | None = None, multihost_url: str | None = None,
                 strategy: Strategy = "lsn", max_wait_s: float = DEFAULT_MAX_WAIT_S, window_s: float = WINDOW_S,
                 pool_size: int = 10, connect_timeout_s: float = 5.0) -> None:
        if strategy not in STRATEGIES:
            raise InputError(f"unknown strategy '{strategy}' (known: {', '.join(STRATEGIES)})")
        self.strategy: Strategy = strategy
        self.max_wait_s = max_wait_s
        self.window_s = window_s
        self._size = pool_size
        self._timeout_s = connect_timeout_s
        self._primary_info = _conninfo(primary_url, connect_timeout_s=connect_timeout_s)
        self._multihost_info = _conninfo(multihost_url, connect_timeout_s=connect_timeout_s) if multihost_url else None
        self._primary = self._pool(self._primary_info)
        self._replica = self._pool(_conninfo(replica_url, connect_timeout_s=connect_timeout_s)) if replica_url else None
        self._lock = threading.Lock()
        self.failovers = 0

    @classmethod
    def from_urls(cls, *, primary_url: str, replica_url: str | None = None, multihost_url: str | None = None,
                  strategy: Strategy = "lsn", max_wait_s: float = DEFAULT_MAX_WAIT_S, window_s: float = WINDOW_S,
                  pool_size: int = 10) -> Router:
        """From the URLs `pgtopo env` prints (PRIMARY_DATABASE_URL, LOCAL_READ_REPLICA_URL,
        DATABASE_URL_MULTIHOST)."""
        return cls(primary_url=primary_url, replica_url=replica_url, multihost_url=multihost_url, strategy=strategy,
                   max_wait_s=max_wait_s, window_s=window_s, pool_size=pool_size)

    @classmethod
    def from_topology(cls, topology: Topology | str | PathLike[str], *, region: str, cluster: str | None = None,
                      strategy: Strategy = "lsn", max_wait_s: float | None = None, window_s: float = WINDOW_S,
                      pool_size: int = 10, user: str = "app") -> Router:
        """For an application in ``region`` of a running pgtopo topology (a file or a loaded one).
        ``max_wait_s`` defaults to twice the expected replication lag to the chosen replica."""
        from pgtopo.apps import endpoints
        from pgtopo.model.loader import load
        from pgtopo.model.topology import Topology

        topo = topology if isinstance(topology, Topology) else load(os.fspath(topology))
        ep = endpoints.app_endpoints(topo, region=region, cluster=cluster, user=user)
        if max_wait_s is None:
            max_wait_s = default_max_wait_s(topo.rtt_ms(ep.primary.region, ep.replica.region))
        return cls(primary_url=ep.primary_url, replica_url=ep.replica_url, multihost_url=ep.multihost_url,
                   strategy=strategy, max_wait_s=max_wait_s, window_s=window_s, pool_size=pool_size)

    def session(self, token: str | None = None) -> Session:
        """A user's or request's session, resuming from ``token`` (e.g. a cookie); garbage is safe."""
        return Session(self, token)

    def close(self) -> None:
        self._primary.close()
        if self._replica is not None:
            self._replica.close()

    def __enter__(self) -> Router:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals ------------------------------------------------------------------------------

    def _pool(self, conninfo: str) -> _Pool:
        return _Pool(conninfo, size=self._size, timeout_s=self._timeout_s)

    def _find_primary(self, failed: _Pool) -> None:
        """Replace the primary's pool (its connections lead to a dead or demoted server) by one
        on the multi-host URL, which connects to whichever node accepts writes."""
        with self._lock:
            if self._primary is not failed:
                return  # another thread did it already
            self._primary = self._pool(self._multihost_info or self._primary_info)
            self.failovers += 1
        failed.close()

    def _on_primary(self, work: Callable[[Conn], T], *, is_write: bool) -> T:
        for attempt in (1, 2):
            pool = self._primary
            try:
                with pool.connection() as conn:
                    try:
                        return work(conn)
                    except psycopg.OperationalError:
                        # Writes tell a lost COMMIT (CommitUnknown) from a retryable loss
                        # themselves; a read is always safe to run again.
                        if is_write or not _lost(conn):
                            raise
                        raise _NotSent(psycopg.OperationalError("connection lost")) from None
            except _NotSent as exc:
                if attempt == 2:
                    raise exc.error from None
            except psycopg.errors.ReadOnlySqlTransaction:
                if attempt == 2:
                    raise
            self._find_primary(pool)
        raise AssertionError("unreachable")

    def _write(self, work: Callable[[Conn], T]) -> tuple[T, int | None]:
        """Run ``work`` in a transaction on the primary; its result and the commit's token LSN."""
        def in_tx(conn: Conn) -> tuple[T, int | None]:
            try:
                conn.execute("BEGIN")
                result = work(conn)
            except psycopg.OperationalError:
                if _lost(conn):
                    # Lost before COMMIT was sent: the server rolls back, so it is safe to retry.
                    raise _NotSent(psycopg.OperationalError("connection lost before COMMIT")) from None
                raise
            return result, _commit(conn, lambda: None)[1]

        return self._on_primary(in_tx, is_write=True)

    def _write_one(self, query: Query, params: Params | None) -> tuple[list[Row], int | None]:
        def statement(conn: Conn) -> psycopg.Cursor[Row]:
            conn.execute("BEGIN")
            return conn.cursor().execute(query, params)

        def work(conn: Conn) -> tuple[list[Row], int | None]:
            cur, lsn = _commit(conn, lambda: statement(conn))
            return (cur.fetchall() if cur is not None and cur.description else []), lsn

        return self._on_primary(work, is_write=True)

    def _read(self, work: Callable[[Conn], T], token: Token | None) -> tuple[T, ReadInfo]:
        waited = 0.0
        if self._replica is not None and (needs_replica_lsn(self.strategy, token) or choose(
                self.strategy, now=time.time(), token=token, replica_lsn=None, window_s=self.window_s) == "replica"):
            try:
                with self._replica.connection() as conn:
                    try:
                        decision, waited = self._wait_for_replica(conn, token)
                        if decision == "replica":
                            return work(conn), ReadInfo("replica", waited)
                    except psycopg.errors.SerializationFailure:
                        pass  # a recovery conflict cancelled it: the primary has no such conflicts
                    except psycopg.OperationalError:
                        if not _lost(conn):
                            raise
            except _NotSent:
                pass  # the replica is unreachable: the primary serves the read
        return self._on_primary(work, is_write=False), ReadInfo("primary", waited)

    def _wait_for_replica(self, conn: Conn, token: Token | None) -> tuple[Decision, float]:
        if not needs_replica_lsn(self.strategy, token):
            return "replica", 0.0
        start = time.monotonic()
        poll = 0.001
        while True:
            row = conn.execute(_REPLAY_LSN_SQL).fetchone()
            elapsed = time.monotonic() - start
            decision = choose(self.strategy, now=time.time(), token=token, replica_lsn=parse_lsn(row[0] if row else None),
                              may_wait=elapsed < self.max_wait_s, window_s=self.window_s)
            if decision != "wait":
                return decision, elapsed
            # Short sleeps first: on a local replica the gap is usually a few milliseconds.
            time.sleep(min(poll, max(0.0, self.max_wait_s - elapsed)))
            poll = min(poll * 2, MAX_POLL_S)


class Session:
    """One user's (or request's) reads and writes; :attr:`token` goes into a cookie or header."""

    def __init__(self, router: Router, token: str | None = None) -> None:
        self._router = router
        self._token = parse_token(token)
        self.last_read: ReadInfo | None = None

    @property
    def token(self) -> str | None:
        return None if self._token is None else format_token(self._token)

    def _wrote(self, lsn: int | None) -> None:
        # A later write's position is never behind an earlier one's: replace, don't merge.
        self._token = Token(lsn=lsn, at_ms=int(time.time() * 1000))

    def write(self, query: Query, params: Params | None = None) -> list[Row]:
        """One statement in its own transaction on the primary; its rows (e.g. RETURNING)."""
        rows, lsn = self._router._write_one(query, params)
        self._wrote(lsn)
        return rows

    def write_tx(self, fn: Callable[[Conn], T]) -> T:
        """``fn(conn)`` in a transaction on the primary. After a failover it may run twice (the
        first attempt rolled back), so keep side effects outside the database out of it."""
        result, lsn = self._router._write(fn)
        self._wrote(lsn)
        return result

    def read(self, query: Query, params: Params | None = None) -> list[Row]:
        """One statement, routed by the strategy; sees this session's writes unless the
        strategy is ``replica-only``."""
        def work(conn: Conn) -> list[Row]:
            # In a pipeline, psycopg prepares a frequent statement in the same flight; outside
            # one, preparing costs an extra round trip (a whole RTT on a remote primary).
            with conn.pipeline():
                cur = conn.execute(query, params)
            return cur.fetchall() if cur.description else []

        return self.read_tx(work)

    def read_tx(self, fn: Callable[[Conn], T]) -> T:
        """``fn(conn)`` on the server the strategy picks (autocommit: one snapshot per statement)."""
        result, self.last_read = self._router._read(fn, self._token)
        return result

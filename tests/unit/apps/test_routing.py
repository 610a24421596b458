"""Routing decisions and tokens: pure, no database."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from psycopg.pq import TransactionStatus

from pgtopo.apps import routing
from pgtopo.apps.routing import UNKNOWN, Token, choose, format_token, parse_token
from pgtopo.errors import InputError
from pgtopo.postgres.lsn import format_lsn, parse_lsn

NOW = 1_800_000_000.0  # wall-clock seconds
NOW_MS = int(NOW * 1000)


# -- tokens -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "value"), [
    ("0/0", 0), ("0/3001A28", 0x3001A28), ("1/0", 1 << 32), ("FFFFFFFF/FFFFFFFF", 2**64 - 1), ("a/b", (10 << 32) | 11),
])
def test_lsn_round_trip(text: str, value: int) -> None:
    assert parse_lsn(text) == value
    assert format_lsn(value) == text.upper()


def test_lsn_order_is_numeric_not_textual() -> None:
    # As text "0/9" > "0/10"; as positions 0x9 < 0x10. Tokens compare as numbers.
    assert parse_lsn("0/9") < parse_lsn("0/10")  # type: ignore[operator]
    assert parse_lsn("0/FFFFFFFF") < parse_lsn("1/0")  # type: ignore[operator]


def test_token_round_trip() -> None:
    for token in (Token(0x3001A28, NOW_MS), Token(0x3001A28), Token(None, NOW_MS), Token(5 << 32, 0)):
        text = format_token(token)
        assert parse_token(text) == token
    assert format_token(Token(0x3001A28, 1718000000123)) == "0/3001A28@1718000000123"
    assert format_token(UNKNOWN) == "*"


def test_tokens_are_cookie_and_header_safe() -> None:
    text = format_token(Token(2**64 - 1, 99_999_999_999_999))
    # RFC 6265 cookie-octet: no CTLs, whitespace, DQUOTE, comma, semicolon or backslash.
    assert all(0x21 <= ord(c) <= 0x7E and c not in '",;\\' for c in text)
    assert len(text) <= 40


def test_no_token() -> None:
    assert parse_token(None) is None
    assert parse_token("") is None
    assert parse_token("   ") is None


@pytest.mark.parametrize("garbage", [
    "garbage", "0/", "/1", "0/3001A28@", "0/3001A28@-5", "0/3001A28@1e9", "123456789/0", "0/123456789",
    "0/3001A28@1234567890123456", "0x1/2", "0/3001A28 ; DROP TABLE x", "\x00", "ü/1", "1/2/3", "@1",
])
def test_garbage_is_unknown_never_an_exception(garbage: str) -> None:
    assert parse_token(garbage) == UNKNOWN


def test_surrounding_whitespace_is_tolerated() -> None:
    assert parse_token(" 0/10@5\n") == Token(16, 5)


# -- decisions ----------------------------------------------------------------------------------

def decide(strategy: routing.Strategy, token: Token | None, replica_lsn: int | None = None, *,
           may_wait: bool = False, now: float = NOW) -> routing.Decision:
    return choose(strategy, now=now, token=token, replica_lsn=replica_lsn, may_wait=may_wait)


def test_fixed_strategies() -> None:
    for token in (None, Token(100, NOW_MS), UNKNOWN):
        assert decide("primary-only", token, 10**6) == "primary"
        assert decide("replica-only", token, 0) == "replica"


def test_lsn_strategy() -> None:
    wrote = Token(100, NOW_MS)
    assert decide("lsn", None) == "replica"  # never wrote: nothing to wait for
    assert decide("lsn", wrote, 100) == "replica"  # replayed exactly up to the token
    assert decide("lsn", wrote, 101) == "replica"
    assert decide("lsn", wrote, 99, may_wait=True) == "wait"
    assert decide("lsn", wrote, 99, may_wait=False) == "primary"  # the wait budget is spent
    assert decide("lsn", wrote, None, may_wait=True) == "primary"  # the replica cannot say
    # An hour-old write still waits for its position: lsn does not guess from time.
    assert decide("lsn", Token(100, NOW_MS - 3_600_000), 99, may_wait=True) == "wait"


def test_lsn_strategy_with_an_unknown_position() -> None:
    assert decide("lsn", UNKNOWN, 10**9) == "primary"  # garbage: the safe side, always
    assert decide("lsn", Token(None, NOW_MS - 500), 10**9) == "primary"  # just wrote, position lost
    assert decide("lsn", Token(None, NOW_MS - 5000), 0) == "replica"  # older than the window


def test_time_window_strategy() -> None:
    assert decide("time-window", None) == "replica"
    assert decide("time-window", Token(5, NOW_MS - 1999)) == "primary"
    assert decide("time-window", Token(5, NOW_MS - 2000)) == "replica"
    assert decide("time-window", Token(5, None)) == "primary"  # no time: cannot prove it is old
    assert decide("time-window", Token(5, NOW_MS + 60_000)) == "primary"  # future (skew): recent
    assert decide("time-window", UNKNOWN) == "primary"
    # The replica's position plays no part.
    assert decide("time-window", Token(5, NOW_MS - 100), 10**9) == "primary"
    assert choose("time-window", now=NOW, token=Token(5, NOW_MS - 600), replica_lsn=None, window_s=0.5) == "replica"


def test_needs_replica_lsn() -> None:
    assert routing.needs_replica_lsn("lsn", Token(1, NOW_MS))
    assert not routing.needs_replica_lsn("lsn", None)
    assert not routing.needs_replica_lsn("lsn", UNKNOWN)
    assert not routing.needs_replica_lsn("time-window", Token(1, NOW_MS))


def test_default_max_wait_is_twice_the_expected_lag() -> None:
    assert routing.default_max_wait_s(80) == pytest.approx(0.08)  # one-way 40 ms, twice
    assert routing.default_max_wait_s(0) == routing.MIN_MAX_WAIT_S


def test_router_refuses_an_unknown_strategy() -> None:
    with pytest.raises(InputError, match="unknown strategy 'fastest'"):
        routing.Router(primary_url="postgresql://u@127.0.0.1:1/db", strategy="fastest")  # type: ignore[arg-type]


def test_session_token_survives_garbage_without_connecting() -> None:
    # Pools connect lazily: constructing a router and session touches no server.
    with routing.Router.from_urls(primary_url="postgresql://u@127.0.0.1:1/db") as router:
        assert router.session().token is None
        assert router.session("0/10@5").token == "0/10@5"
        assert router.session("nonsense").token == "*"


def test_a_trailing_newline_inside_is_not_a_token() -> None:
    assert parse_lsn("0/10\n") is None


class FakeConn:
    """What the pool's reuse check reads from a connection, over a real socket pair."""

    def __init__(self, sock: socket.socket, *, status: TransactionStatus = TransactionStatus.IDLE) -> None:
        self.sock, self.broken, self.closed = sock, False, False
        self.info = type("Info", (), {"transaction_status": status})()

    def fileno(self) -> int:
        return self.sock.fileno()


def test_pooled_connection_reuse_check() -> None:
    ours, server = socket.socketpair()
    try:
        conn: Any = FakeConn(ours)
        assert routing._idle_and_quiet(conn)
        server.sendall(b"E")  # e.g. a FATAL: the server is going away
        assert not routing._idle_and_quiet(conn)
        assert not routing._idle_and_quiet(FakeConn(ours, status=TransactionStatus.INTRANS))  # type: ignore[arg-type]
        quiet: Any = FakeConn(server)
        quiet.broken = True
        assert not routing._idle_and_quiet(quiet)
        other, gone = socket.socketpair()
        gone.close()  # EOF
        assert not routing._idle_and_quiet(FakeConn(other))  # type: ignore[arg-type]
        other.close()
    finally:
        ours.close()
        server.close()

"""Ctrl-C reaches worker threads: a waiting worker stops at its next look, and a pool left by
KeyboardInterrupt does not wait for its workers."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future

import pytest

from pgtopo.runtime import interrupt
from pgtopo.runtime.waiting import poll


@pytest.fixture(autouse=True)
def lowered() -> Iterator[None]:
    interrupt.reset()
    yield
    interrupt.reset()


def test_a_worker_waiting_in_poll_stops_soon_after_the_flag() -> None:
    ended: Future[float] = Future()

    def wait() -> None:
        try:
            poll(lambda: False, timeout=60, interval=5)
        except interrupt.Cancelled:
            ended.set_result(time.monotonic())

    t = threading.Thread(target=wait)
    t.start()
    time.sleep(0.3)
    raised = time.monotonic()
    interrupt.cancel()
    assert ended.result(timeout=5) - raised < 1.0  # not the 5 s interval, nor the 60 s timeout
    t.join(timeout=5)


def test_the_main_thread_keeps_waiting() -> None:
    # Its own KeyboardInterrupt came already; a cleanup it does after it (restarting a node) must run.
    interrupt.cancel()
    assert poll(lambda: "done", timeout=1) == "done"
    assert poll(lambda: None, timeout=0.3, interval=0.1) is None


def test_a_pool_left_by_ctrl_c_does_not_wait_for_its_workers() -> None:
    stuck = threading.Event()
    started = time.monotonic()
    waiting: Future[bool | None] | None = None
    queued: Future[None] | None = None
    with pytest.raises(KeyboardInterrupt), interrupt.Pool(max_workers=2) as pool:
        pool.submit(lambda: stuck.wait(10))  # a call that cannot be interrupted (a docker exec)
        waiting = pool.submit(lambda: poll(lambda: False, timeout=60))
        queued = pool.submit(lambda: None)  # no worker free: never starts
        time.sleep(0.2)
        raise KeyboardInterrupt
    assert time.monotonic() - started < 2
    assert interrupt.cancelled()
    assert queued is not None and queued.cancelled()
    assert waiting is not None
    with pytest.raises(interrupt.Cancelled):
        waiting.result(timeout=5)
    stuck.set()


def _slow() -> str:
    time.sleep(0.3)
    return "done"


def test_a_pool_that_ends_normally_waits_as_usual() -> None:
    with interrupt.Pool(max_workers=2) as pool:
        f = pool.submit(_slow)
    assert f.done() and f.result() == "done"
    assert not interrupt.cancelled()

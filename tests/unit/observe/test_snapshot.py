"""`snapshot`: collecting in parallel with a deadline (no Docker: the per-item work is a stand-in)."""

from __future__ import annotations

import threading
import time

import pytest

from pgtopo.observe import snapshot


def test_within_gives_the_late_answer_for_what_does_not_finish_in_time() -> None:
    release = threading.Event()

    def work(item: str) -> str:
        if item == "hangs":
            release.wait(10)
        return f"{item}: answered"

    t = time.monotonic()
    out = snapshot._within(work, ["a", "hangs", "b"], timeout=0.3, late=lambda item: f"{item}: no answer")
    elapsed = time.monotonic() - t
    release.set()
    assert out == ["a: answered", "hangs: no answer", "b: answered"]
    assert elapsed < 5  # the deadline, not the hanging item, decides when it returns


def test_within_returns_as_soon_as_everything_answered() -> None:
    t = time.monotonic()
    assert snapshot._within(lambda x: x * 2, [1, 2, 3], timeout=30, late=lambda x: -1) == [2, 4, 6]
    assert time.monotonic() - t < 5
    assert snapshot._within(lambda x: x, [], timeout=30, late=lambda x: x) == []


def test_within_raises_what_the_work_raised() -> None:
    def work(item: int) -> int:
        raise ValueError(f"bad {item}")

    with pytest.raises(ValueError, match="bad 1"):
        snapshot._within(work, [1], timeout=5, late=lambda x: x)

"""The readings of the Patroni partition scenarios, on made-up samples and acknowledgements."""

from __future__ import annotations

import pytest

from tests.support.patroni_lab import (
    Ack,
    Sample,
    acked_between,
    first_read_only,
    first_writable,
    largest_gap,
    last_writable,
    split_brain,
)

SAMPLES = [
    Sample(10.0, {"a": True, "b": False, "c": False}),
    Sample(11.0, {"a": True, "b": None, "c": False}),
    Sample(12.0, {"a": None, "b": False, "c": False}),
    Sample(13.0, {"a": False, "b": False, "c": None}),
    Sample(14.0, {"a": False, "b": True, "c": False}),
    Sample(15.0, {"a": None, "b": True, "c": False}),
]


def test_no_split_brain_when_one_member_at_most_is_writable() -> None:
    assert split_brain(SAMPLES) == []


def test_split_brain_names_the_samples_with_two_writable_members() -> None:
    bad = Sample(16.0, {"a": True, "b": True, "c": None})
    assert split_brain([*SAMPLES, bad]) == [bad]


def test_last_and_first_writable() -> None:
    assert last_writable(SAMPLES, "a", after=0) == 11.0
    assert last_writable(SAMPLES, "a", after=12.0) is None  # never writable again
    assert first_writable(SAMPLES, "b", after=0) == 14.0
    assert first_writable(SAMPLES, "c", after=0) is None


def test_first_read_only_skips_samples_without_an_answer() -> None:
    assert first_read_only(SAMPLES, "a", after=11.5) == 13.0  # 12.0: no answer, not read-only


@pytest.mark.parametrize(("acks", "gap"), [
    ([], 10.0),  # nothing acknowledged: the whole window
    ([Ack(1, 1.0), Ack(2, 2.0), Ack(3, 9.0)], 7.0),
    ([Ack(1, 5.0)], 5.0),
    ([Ack(1, -3.0), Ack(2, 20.0)], 10.0),  # outside the window: ignored
])
def test_largest_gap(acks: list[Ack], gap: float) -> None:
    assert largest_gap(acks, start=0.0, end=10.0) == gap


def test_acked_between_is_inclusive() -> None:
    acks = [Ack(1, 1.0), Ack(2, 2.0), Ack(3, 3.0)]
    assert [a.row for a in acked_between(acks, start=2.0, end=3.0)] == [2, 3]

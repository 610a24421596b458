"""A promoted subscriber's own subscriptions: carried on from their slot, or re-synchronised (pure)."""

from __future__ import annotations

from pgtopo.ha.inherited import Inherited, decide


def sub(origin: int | None, confirmed: int | None, *, slot: str | None = "payments_sub", problem: str = "") -> Inherited:
    return Inherited("payments_sub", "rep-b", "reporting", "payments", "pay-a", slot, origin, confirmed,
                     problem=problem)


def test_nothing_lost_carries_on_whatever_the_slot_confirmed() -> None:
    # Confirmed past the origin is normal: an idle subscriber confirms what it received, changes or not.
    action, why = decide(sub(0x3198610, 0x319C2E0), lost_bytes=0)
    assert action == "continue" and why == "rep-b has all of the old primary's WAL, so everything the slot confirmed"


def test_a_lossy_failover_carries_on_when_the_origin_reaches_the_confirmed_position() -> None:
    action, why = decide(sub(0x5000, 0x5000), lost_bytes=300)
    assert action == "continue"
    assert why == "rep-b applied up to 0/5000, at or past what slot payments_sub confirmed (0/5000)"


def test_a_lossy_failover_behind_the_slot_re_synchronises() -> None:
    assert decide(sub(0x4000, 0x5000), lost_bytes=300) == (
        "resync", "rep-b lacks 300 B of the old primary's WAL and applied up to 0/4000 while slot payments_sub "
                  "confirmed 0/5000: changes in between may be missing")
    # An unknown loss is no proof of none.
    assert decide(sub(0x4000, 0x5000), lost_bytes=None)[0] == "resync"
    assert decide(sub(None, 0x5000), lost_bytes=None)[1].startswith("rep-b lacks an unknown amount of the old "
                                                                    "primary's WAL and applied up to nothing")


def test_what_could_not_be_read_is_skipped_and_said() -> None:
    assert decide(sub(None, None, slot=None, problem="pay-a: connection refused"), lost_bytes=0) == (
        "skip", "pay-a: connection refused: check it with `pgtopo verify`")
    assert decide(sub(None, None, slot=None), lost_bytes=0)[0] == "skip"

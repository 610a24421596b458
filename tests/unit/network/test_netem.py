"""Whether the kernel offers netem, from the exit code and message of one probe."""

from __future__ import annotations

from pgtopo.network import netem


def test_netem_interpret() -> None:
    assert netem.interpret(0, "") == (True, "netem available on this kernel")
    assert netem.interpret(2, "Error: Specified qdisc kind is unknown.\n") == (
        False, "netem unavailable on this kernel")
    available, why = netem.interpret(2, "RTNETLINK answers: Operation not permitted")
    assert available is None and why.startswith("netem detection failed: exit code 2: RTNETLINK")
    assert netem.describe(False, "netem unavailable on this kernel").describe() == (
        "relay (netem unavailable on this kernel)")
    assert "relay only" in netem.describe(True, "x").describe()

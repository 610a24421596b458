"""WAL positions and byte counts as pgtopo prints them."""

from __future__ import annotations

from pgtopo.postgres.lsn import fmt_bytes, format_lsn


def test_formatting() -> None:
    assert format_lsn(0x1_0000_0010) == "1/10"
    assert format_lsn(None) == "-"
    assert [fmt_bytes(n) for n in (0, 1023, 1024, 3 << 20, 5 << 30)] == ["0 B", "1023 B", "1.0 KiB", "3.0 MiB",
                                                                           "5.0 GiB"]

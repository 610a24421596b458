"""What a failover lost: pg_waldump's summary of the old primary's WAL beyond the new timeline."""

from __future__ import annotations

from pgtopo.ha.dataloss import parse_waldump


def test_parse_waldump() -> None:
    out = """WAL statistics between 0/3057400 and 0/307C368:
Type                                           N      (%)          Record size      (%)
Transaction/COMMIT                            12 (  0.83)                  405 (  3.91)
Heap/INSERT                                    3 (  2.50)                  345 (  3.33)
pg_waldump: error: error in WAL record at 0/307C1D0: invalid record length at 0/307C368: expected at least 24, got 0
"""
    assert parse_waldump(out, start=0x3057400) == (0x307C368, 12)
    assert parse_waldump("pg_waldump: error: could not find a valid record after 0/3057400", start=0x3057400) == (
        0x3057400, 0)

"""WAL positions and amounts, printed the way PostgreSQL users read them (pure)."""

from __future__ import annotations


def fmt_lsn(value: int | None) -> str:
    if value is None:
        return "-"
    return f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"


def fmt_bytes(value: int | None) -> str:
    if value is None:
        return "-"
    if value < 1024:
        return f"{value} B"
    if value < 1 << 20:
        return f"{value / 1024:.1f} KiB"
    if value < 1 << 30:
        return f"{value / (1 << 20):.1f} MiB"
    return f"{value / (1 << 30):.1f} GiB"

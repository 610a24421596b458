"""WAL positions (LSNs) and amounts of WAL: the one place they are parsed and printed (pure).

PostgreSQL writes an LSN as two hexadecimal halves, ``16/B374D848``; pgtopo compares them as
integers.
"""

from __future__ import annotations

import re

_LSN_RE = re.compile(r"([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})")
_LSN_IN_TEXT_RE = re.compile(r"\b([0-9A-F]{1,8}/[0-9A-F]{1,8})\b")


def parse_lsn(text: str | None) -> int | None:
    """``'16/B374D848'`` -> an integer; None for None, an empty or a malformed text."""
    m = _LSN_RE.fullmatch(text or "")
    return (int(m.group(1), 16) << 32) | int(m.group(2), 16) if m else None


def lsns_in(text: str) -> list[int]:
    """Every LSN written in a line of tool output (pg_waldump, pg_controldata), in order."""
    return [value for found in _LSN_IN_TEXT_RE.findall(text) if (value := parse_lsn(found)) is not None]


def format_lsn(value: int | None) -> str:
    """An integer position as PostgreSQL prints it; ``-`` for None."""
    if value is None:
        return "-"
    return f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"


def fmt_bytes(value: int | None) -> str:
    """An amount of WAL (or any byte count) in B, KiB, MiB or GiB; ``-`` for None."""
    if value is None:
        return "-"
    size = float(value)
    for unit in ("B", "KiB", "MiB"):
        if abs(size) < 1024:
            return f"{int(size)} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"

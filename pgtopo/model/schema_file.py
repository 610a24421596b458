"""The user's SQL schema files: read them, and the table names they create (pure)."""

from __future__ import annotations

import re
from pathlib import Path

from pgtopo.model.topology import Database

_TABLE_RE = re.compile(
    r"create\s+(?:unlogged\s+)?table\s+(?:if\s+not\s+exists\s+)?(?:(?:public|\"public\")\.)?"
    r"(\"?)([a-zA-Z_][a-zA-Z0-9_$]*)\1",
    re.IGNORECASE,
)


def schema_tables(sql_text: str) -> set[str]:
    """Table names a schema creates (good enough to check publications; not a SQL parser)."""
    return {m.group(2).lower() if not m.group(1) else m.group(2) for m in _TABLE_RE.finditer(sql_text)}


def read_schema(topo_path: Path, db: Database) -> str | None:
    if db.schema_sql is not None:
        return db.schema_sql
    if db.schema_file is not None:
        return (topo_path.parent / db.schema_file).read_text()
    return None

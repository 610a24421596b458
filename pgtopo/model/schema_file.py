"""The user's SQL schema files: read them, and the tables and columns they create (pure)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from pgtopo.model import files
from pgtopo.model.sqltext import SqlLexError, Token, keywords, statements, tokens
from pgtopo.model.topology import Database

_TABLE_RE = re.compile(
    r"create\s+(?:unlogged\s+)?table\s+(?:if\s+not\s+exists\s+)?(?:(?:public|\"public\")\.)?"
    r"(\"?)([a-zA-Z_][a-zA-Z0-9_$]*)\1",
    re.IGNORECASE,
)


def schema_tables(sql_text: str) -> set[str]:
    """Table names a schema creates (good enough to check publications; not a SQL parser)."""
    return {m.group(2).lower() if not m.group(1) else m.group(2) for m in _TABLE_RE.finditer(sql_text)}


@dataclass(frozen=True)
class TableColumns:
    """The columns a schema gives a table; ``generated`` ones are never replicated."""

    names: frozenset[str]
    generated: frozenset[str]


# Table elements that are not columns.
_CONSTRAINTS = {"constraint", "primary", "unique", "check", "foreign", "exclude"}


def schema_columns(sql_text: str) -> dict[str, TableColumns | None]:
    """Columns of the tables in schema public that a schema creates; None where unsure.

    Conservative: a table made twice, with LIKE, INHERITS, PARTITION OF, OF a type or AS a
    query, or altered in a way not followed here (RENAME), maps to None: nothing is checked.
    """
    try:
        stmts = statements(tokens(sql_text))
    except SqlLexError:
        return {}
    out: dict[str, TableColumns | None] = {}
    for stmt in stmts:
        kws = keywords(stmt)
        if kws[:1] == ["create"] and "table" in kws[:4]:
            i = kws.index("table") + 1
            i += 3 if kws[i : i + 3] == ["if", "not", "exists"] else 0
            name, i = _table_name(stmt, i)
            if name is not None:
                out[name] = None if name in out else _created_columns(stmt, i)
        elif kws[:2] == ["alter", "table"]:
            i = 2 + (2 if kws[2:4] == ["if", "exists"] else 0)
            i += 1 if kws[i : i + 1] == ["only"] else 0
            name, i = _table_name(stmt, i)
            if name is not None and out.get(name) is not None:
                out[name] = _altered_columns(out[name], stmt[i:])
    return out


def _ident(tok: Token | None) -> str | None:
    return tok.word if tok is not None and tok.kind in ("ident", "qident") else None


def _table_name(stmt: list[Token], i: int) -> tuple[str | None, int]:
    """A table name at ``i`` (schema public or unqualified) and the index after it."""
    first = _ident(stmt[i] if i < len(stmt) else None)
    if first is not None and i + 2 < len(stmt) and stmt[i + 1].text == ".":
        second = _ident(stmt[i + 2])
        return (second if first == "public" else None), i + 3
    return first, i + 1


def _split(stmt: list[Token]) -> list[list[Token]]:
    """Comma-separated parts at the top level of ``stmt``."""
    parts: list[list[Token]] = [[]]
    depth = 0
    for t in stmt:
        if t.kind == "punct" and t.text in ("(", "["):
            depth += 1
        elif t.kind == "punct" and t.text in (")", "]"):
            depth -= 1
        elif depth == 0 and t.kind == "punct" and t.text == ",":
            parts.append([])
            continue
        parts[-1].append(t)
    return [p for p in parts if p]


def _created_columns(stmt: list[Token], i: int) -> TableColumns | None:
    if i >= len(stmt) or stmt[i].text != "(":
        return None  # PARTITION OF, OF type, AS query
    depth, j = 0, i
    for j in range(i, len(stmt)):
        depth += {"(": 1, ")": -1}.get(stmt[j].text, 0) if stmt[j].kind == "punct" else 0
        if depth == 0:
            break
    if "inherits" in keywords(stmt[j + 1 :]):
        return None
    names: set[str] = set()
    generated: set[str] = set()
    for element in _split(stmt[i + 1 : j]):
        head = keywords(element[:1])[0]
        if head in _CONSTRAINTS:
            continue
        name = _ident(element[0])
        if head == "like" or name is None:
            return None
        names.add(name)
        kws = keywords(element)
        if "generated" in kws and "identity" not in kws:
            generated.add(name)  # GENERATED ALWAYS AS (expr) STORED: computed, not replicated
    return TableColumns(names=frozenset(names), generated=frozenset(generated))


def _altered_columns(cols: TableColumns | None, actions: list[Token]) -> TableColumns | None:
    if cols is None:
        return None
    names, generated = set(cols.names), set(cols.generated)
    for action in _split(actions):
        kws = keywords(action)
        if kws[:1] == ["rename"]:
            return None
        if kws[:1] not in (["add"], ["drop"]):
            continue
        k = 2 if kws[1:2] == ["column"] else 1
        k += 3 if kws[k : k + 3] == ["if", "not", "exists"] else (2 if kws[k : k + 2] == ["if", "exists"] else 0)
        if k >= len(action) or kws[k] in _CONSTRAINTS:
            continue
        name = _ident(action[k])
        if name is None:
            return None
        if kws[0] == "add":
            names.add(name)
            if "generated" in kws and "identity" not in kws:
                generated.add(name)
        else:
            names.discard(name)
            generated.discard(name)
    return TableColumns(names=frozenset(names), generated=frozenset(generated))


def read_schema(topo_path: Path, db: Database) -> str | None:
    """The database's schema: inline, or its file beside the topology file (FileRefused)."""
    if db.schema_sql is not None:
        return db.schema_sql
    if db.schema_file is not None:
        return files.read_text(files.schema_path(topo_path, db.schema_file))
    return None

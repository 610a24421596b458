"""Checks on the SQL a topology file carries: schemas and row filters (pure).

Each returns messages without the field path; the caller puts the path in front.
"""

from __future__ import annotations

from pgtopo.model.sqltext import SqlLexError, Token, keywords, line_of, statements, tokens
from pgtopo.model.topology import PROBE_SCHEMA


def schema_problems(text: str) -> list[str]:
    """What in a schema would break pgtopo's own objects."""
    try:
        toks = tokens(text)
    except SqlLexError as exc:
        return [f"line {line_of(text, exc.pos)}: {exc.message}"]
    out: list[str] = []
    for stmt in statements(toks):
        created = _creates_schema(stmt)
        if created == PROBE_SCHEMA:
            out.append(f"line {line_of(text, stmt[0].pos)}: creates schema '{PROBE_SCHEMA}', which pgtopo owns "
                       "(the probe table of `verify`); choose another name")
    return out


def _name(tok: Token | None) -> str | None:
    return tok.word if tok is not None and tok.kind in ("ident", "qident") else None


def _creates_schema(stmt: list[Token]) -> str | None:
    """The name of the schema a CREATE SCHEMA or ALTER SCHEMA ... RENAME TO statement makes."""
    kws = keywords(stmt)
    if kws[:2] == ["create", "schema"]:
        i = 5 if kws[2:5] == ["if", "not", "exists"] else 2
        if kws[i : i + 1] == ["authorization"]:
            return _name(stmt[i + 1] if i + 1 < len(stmt) else None)  # the schema takes the role's name
        return _name(stmt[i] if i < len(stmt) else None)
    if kws[:2] == ["alter", "schema"] and kws[3:5] == ["rename", "to"]:
        return _name(stmt[5] if len(stmt) > 5 else None)
    return None

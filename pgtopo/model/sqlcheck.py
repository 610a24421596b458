"""Checks on the schemas a topology file carries (pure).

A schema is sent to the server as one string inside a DO block (see ``render.schema_block``):
psql never reads it, so a psql meta-command or ``:variable`` in it could never run, and each
statement runs inside that one transaction. The check refuses early, with the line, what
would fail at ``up`` and what would break pgtopo's own objects. Messages carry no field path;
the caller puts it in front.
"""

from __future__ import annotations

from pgtopo.model.sqltext import LineIndex, SqlLexError, Token, keywords, line_of, statements, tokens
from pgtopo.model.topology import PROBE_PUBLICATION, PROBE_SCHEMA

# Statements that cannot run inside a transaction block or a function, by their first words.
_NOT_IN_TRANSACTION: list[tuple[tuple[str, ...], str]] = [
    (("begin",), "BEGIN"), (("start", "transaction"), "START TRANSACTION"), (("commit",), "COMMIT"),
    (("end",), "END"), (("rollback",), "ROLLBACK"), (("abort",), "ABORT"), (("savepoint",), "SAVEPOINT"),
    (("release",), "RELEASE"), (("prepare", "transaction"), "PREPARE TRANSACTION"),
    (("vacuum",), "VACUUM"), (("create", "database"), "CREATE DATABASE"), (("drop", "database"), "DROP DATABASE"),
    (("create", "tablespace"), "CREATE TABLESPACE"), (("drop", "tablespace"), "DROP TABLESPACE"),
    (("alter", "system"), "ALTER SYSTEM"), (("create", "subscription"), "CREATE SUBSCRIPTION"),
    (("drop", "subscription"), "DROP SUBSCRIPTION"), (("discard", "all"), "DISCARD ALL"),
]
_TRANSACTION_HINT = "the schema runs as one transaction, so it cannot hold transaction control or"


def schema_problems(text: str) -> list[str]:
    """What in a schema would fail at ``up`` or break pgtopo's own objects, one line each."""
    if "\x00" in text:
        return [f"line {line_of(text, text.index(chr(0)))}: a NUL character; a schema is SQL text"]
    try:
        toks = tokens(text)
    except SqlLexError as exc:
        return [f"line {line_of(text, exc.pos)}: {exc.message}"]
    out: list[str] = []
    for t in toks:
        where = f"line {line_of(text, t.pos)}" if t.kind in ("backslash", "psqlvar") else ""
        if t.kind == "backslash":
            out.append(f"{where}: psql meta-command '{t.text.split()[0]}': the schema is sent to the server as SQL, "
                       "never read by psql; remove it")
        elif t.kind == "psqlvar":
            out.append(f"{where}: '{t.text}' is a psql variable: the schema is sent to the server as SQL, never read "
                       "by psql")
    lines = LineIndex(text)
    for stmt in statements(toks):
        where = f"line {lines.line(stmt[0].pos)}"
        kws = keywords(stmt)
        what = _not_in_transaction(kws)
        if what:
            out.append(f"{where}: {what}: {_TRANSACTION_HINT} statements that cannot run inside one")
        elif kws[:1] == ["copy"] and ("stdin" in kws or "stdout" in kws):
            out.append(f"{where}: COPY from stdin or to stdout needs psql; the schema is sent to the server as SQL "
                       "(load rows with INSERT)")
        if _creates_schema(stmt) == PROBE_SCHEMA:
            out.append(f"{where}: creates schema '{PROBE_SCHEMA}', which pgtopo owns (the probe table of `verify`); "
                       "choose another name")
        if kws[:2] == ["create", "publication"] and len(stmt) > 2 and _name(stmt[2]) == PROBE_PUBLICATION:
            out.append(f"{where}: creates publication '{PROBE_PUBLICATION}', which pgtopo owns; choose another name")
    return out


def _not_in_transaction(kws: list[str]) -> str | None:
    for words, what in _NOT_IN_TRANSACTION:
        if tuple(kws[: len(words)]) == words:
            return what
    concurrently = "concurrently" in kws
    if concurrently and (kws[:2] == ["create", "index"] or kws[:3] == ["create", "unique", "index"]):
        return "CREATE INDEX CONCURRENTLY"
    if concurrently and kws[:2] in (["drop", "index"], ["reindex", "index"], ["reindex", "table"],
                                    ["reindex", "schema"], ["reindex", "database"], ["reindex", "system"]):
        return f"{kws[0].upper()} ... CONCURRENTLY"
    if kws[:1] == ["reindex"] and kws[1:2] in (["database"], ["system"]):
        return f"REINDEX {kws[1].upper()}"
    return None


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

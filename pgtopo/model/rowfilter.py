"""A row filter is one expression (pure).

``where:`` is pasted into ``CREATE PUBLICATION ... WHERE (<filter>)`` in init.sql, which psql
runs as superuser, and ``add-subscription --row-filter`` runs it on the publisher: anything
that could end the expression, start a second statement or speak to psql is refused.
"""

from __future__ import annotations

from pgtopo.model.sqltext import SqlLexError, Token, code, tokens

MAX_ROW_FILTER = 4096  # characters: an expression, not a program
_CLOSES = {")": "(", "]": "["}


def row_filter_problem(expr: str) -> str | None:
    """Why ``expr`` is not one expression to put inside ``WHERE (...)``, or None.

    Strict by design: whatever psql or the server could read as more than one expression is
    refused, even where it would be harmless.
    """
    if not expr.strip():
        return "a row filter cannot be empty"
    if len(expr) > MAX_ROW_FILTER:
        return f"a row filter is one expression of at most {MAX_ROW_FILTER} characters"
    bad = next((c for c in expr if ord(c) < 32 and c not in "\t\n\r"), None)
    if bad is not None:
        return f"a row filter cannot hold the control character {bad!r}"
    try:
        toks = tokens(expr)
    except SqlLexError as exc:
        return f"{exc.message} (a row filter is one expression)"
    opened: list[Token] = []
    for t in toks:
        if t.kind == "comment":
            return "a row filter cannot hold a comment ('--' or '/*')"
        if t.kind == "backslash":
            return f"a row filter cannot hold a backslash outside a string ('{t.text.split()[0]}' is a psql meta-command)"
        if t.kind == "psqlvar":
            return f"a row filter cannot hold '{t.text}' (psql would replace it with a variable)"
        if t.kind == "string" and "\\" in t.text:
            # psql reads '...' by the server's standard_conforming_strings: a backslash before
            # a quote could end the string elsewhere. E'...' is read the same either way.
            return "a backslash in a '...' string is ambiguous in a row filter: write it as E'...' with \\\\"
        if t.kind == "punct" and t.text == ";":
            return "a row filter is one expression: ';' is not allowed"
        if t.kind == "punct" and t.text in ("(", "["):
            opened.append(t)
        closes = _CLOSES.get(t.text) if t.kind == "punct" else None
        if closes is not None and (not opened or opened.pop().text != closes):
            return (f"unbalanced parentheses: '{t.text}' at character {t.pos + 1} closes what was not opened "
                    "(it would close the WHERE's own parenthesis)")
    if opened:
        return f"unbalanced parentheses: '{opened[-1].text}' at character {opened[-1].pos + 1} is never closed"
    if not code(toks):
        return "a row filter cannot be empty"
    return None

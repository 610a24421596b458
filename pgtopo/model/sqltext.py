"""SQL text from the topology file, read token by token (pure; not a SQL parser).

The lexer follows PostgreSQL's scanner and psql's closely enough to tell what is code and what
is quoted: string constants ('...', E'...', U&'...'), quoted identifiers, dollar quotes,
comments, and what psql alone acts on (a backslash meta-command, a ``:variable``). The checks
built on it (``pgtopo.model.sqlcheck``) refuse whenever they are unsure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_IDENT_START = r"A-Za-z_\u0080-\U0010ffff"
_IDENT_RE = re.compile(rf"[{_IDENT_START}][{_IDENT_START}0-9$]*")
_DOLLAR_TAG_RE = re.compile(rf"\$(?:[{_IDENT_START}][{_IDENT_START}0-9]*)?\$")
_PARAM_RE = re.compile(r"\$[0-9]+")
_NUMBER_RE = re.compile(r"(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9][0-9_]*)(?:[eE][+-]?[0-9]+)?[A-Za-z0-9_]*")
# psql substitutes :name, :'name', :"name" and tests :{?name} outside quotes (psqlscan.l).
_PSQL_VAR_RE = re.compile(rf""":(?:[{_IDENT_START}][{_IDENT_START}0-9]*|'[{_IDENT_START}0-9]+'|"[{_IDENT_START}0-9]+"|"""
                          rf"""\{{\?[{_IDENT_START}0-9]+\}})""")
_OP_CHARS = set("+-*/<>=~!@#%^&|`?")


class SqlLexError(ValueError):
    """Text the lexer cannot read: an unterminated quote, dollar quote or comment."""

    def __init__(self, message: str, pos: int) -> None:
        super().__init__(message)
        self.message = message
        self.pos = pos


@dataclass(frozen=True)
class Token:
    """kind: space, comment, string (no backslash escapes), estring (E'...'), dollar, qident,
    ident, number, param, op, punct, backslash (a psql meta-command to the end of its line),
    psqlvar, other."""

    kind: str
    text: str
    pos: int

    @property
    def word(self) -> str:
        """An identifier or keyword as PostgreSQL folds it; a quoted identifier unquoted."""
        if self.kind == "ident":
            return self.text.lower()
        if self.kind == "qident":
            body = self.text[self.text.index('"') + 1 : -1]
            return body.replace('""', '"')
        return ""


def line_of(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def _quoted(text: str, start: int, quote: str, *, escapes: bool) -> int:
    """The end (exclusive) of a quoted run whose opening quote is at ``start``."""
    i = start + 1
    n = len(text)
    while i < n:
        c = text[i]
        if escapes and c == "\\":
            i += 2
            continue
        if c == quote:
            if i + 1 < n and text[i + 1] == quote:
                i += 2
                continue
            return i + 1
        i += 1
    what = "quoted identifier" if quote == '"' else "string constant"
    raise SqlLexError(f"unterminated {what}", start)


def _comment_end(text: str, start: int) -> int:
    depth, i, n = 1, start + 2, len(text)
    while i < n and depth:
        if text.startswith("/*", i):
            depth, i = depth + 1, i + 2
        elif text.startswith("*/", i):
            depth, i = depth - 1, i + 2
        else:
            i += 1
    if depth:
        raise SqlLexError("unterminated /* comment", start)
    return i


def tokens(text: str) -> list[Token]:
    """Every token of ``text``, spaces and comments included; SqlLexError if a quote never ends."""
    out: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        kind = "other"
        end = i + 1
        if c.isspace():
            end = i
            while end < n and text[end].isspace():
                end += 1
            kind = "space"
        elif text.startswith("--", i):
            nl = text.find("\n", i)
            end, kind = (n if nl < 0 else nl), "comment"
        elif text.startswith("/*", i):
            end, kind = _comment_end(text, i), "comment"
        elif c == "'":
            end, kind = _quoted(text, i, "'", escapes=False), "string"
        elif c == '"':
            end, kind = _quoted(text, i, '"', escapes=False), "qident"
        elif c == "$":
            m = _DOLLAR_TAG_RE.match(text, i)
            p = _PARAM_RE.match(text, i)
            if m:
                close = text.find(m.group(0), m.end())
                if close < 0:
                    raise SqlLexError(f"unterminated dollar-quoted string {m.group(0)}", i)
                end, kind = close + len(m.group(0)), "dollar"
            elif p:
                end, kind = p.end(), "param"
            else:
                kind = "op"
        elif _IDENT_RE.match(text, i):
            m = _IDENT_RE.match(text, i)
            assert m is not None
            word, end, kind = m.group(0).lower(), m.end(), "ident"
            after = text[end : end + 2]
            if word == "e" and after[:1] == "'":
                end, kind = _quoted(text, end, "'", escapes=True), "estring"
            elif word in ("b", "x", "n") and after[:1] == "'":
                end, kind = _quoted(text, end, "'", escapes=False), "string"
            elif word == "u" and after == "&'":
                end, kind = _quoted(text, end + 1, "'", escapes=False), "string"
            elif word == "u" and after == '&"':
                end, kind = _quoted(text, end + 1, '"', escapes=False), "qident"
        elif c.isdigit() or (c == "." and text[i + 1 : i + 2].isdigit()):
            m = _NUMBER_RE.match(text, i)
            assert m is not None
            end, kind = m.end(), "number"
        elif c == "\\":
            nl = text.find("\n", i)
            end, kind = (n if nl < 0 else nl), "backslash"
        elif c == ":":
            v = _PSQL_VAR_RE.match(text, i)
            if text.startswith("::", i):
                end, kind = i + 2, "punct"
            elif v:
                end, kind = v.end(), "psqlvar"
            else:
                kind = "punct"
        elif c in "(),;[].":
            kind = "punct"
        elif c in _OP_CHARS:
            end = i
            while end < n and text[end] in _OP_CHARS and not text.startswith(("--", "/*"), end):
                end += 1
            kind = "op"
        out.append(Token(kind, text[i:end], i))
        i = end
    return out


def code(toks: list[Token]) -> list[Token]:
    """The tokens that mean something to the server: no spaces, no comments."""
    return [t for t in toks if t.kind not in ("space", "comment")]


def statements(toks: list[Token]) -> list[list[Token]]:
    """Code tokens split into statements at each top-level ``;`` (as psql splits them).

    Like psql, a ``BEGIN`` inside CREATE FUNCTION or PROCEDURE opens a body (BEGIN ATOMIC ...
    END) whose semicolons do not end the statement.
    """
    out: list[list[Token]] = []
    cur: list[Token] = []
    parens = depth = 0
    for t in code(toks):
        if t.kind == "punct" and t.text == ";" and parens == 0 and depth == 0:
            if cur:
                out.append(cur)
            cur = []
            continue
        cur.append(t)
        if t.kind == "punct" and t.text in "([":
            parens += 1
        elif t.kind == "punct" and t.text in ")]":
            parens = max(parens - 1, 0)
        elif t.kind == "ident" and _defines_routine(cur):
            if t.word == "begin" or (t.word == "case" and depth):
                depth += 1
            elif t.word == "end" and depth:
                depth -= 1
    if cur:
        out.append(cur)
    return out


def _defines_routine(stmt: list[Token]) -> bool:
    kws = keywords(stmt[:4])
    if kws[:3] == ["create", "or", "replace"]:
        kws = ["create", *kws[3:]]
    return kws[:2] in (["create", "function"], ["create", "procedure"])


def keywords(stmt: list[Token]) -> list[str]:
    """The statement's tokens as keywords: an unquoted identifier folded, anything else its text
    (a quoted identifier keeps its quotes, so it never reads as a keyword)."""
    return [t.word if t.kind == "ident" else t.text for t in stmt]

"""SQL text from the topology file, read token by token (pure; not a SQL parser).

The lexer follows PostgreSQL's scanner and psql's closely enough to tell what is code and what
is quoted: string constants ('...', E'...', U&'...'), quoted identifiers, dollar quotes,
comments, and what psql alone acts on (a backslash meta-command, a ``:variable``). The checks
built on it (``pgtopo.model.sqlcheck``) refuse whenever they are unsure.
"""

from __future__ import annotations

import bisect
import re
from functools import lru_cache
from typing import NamedTuple

# PostgreSQL's identifier characters (scan.l: ident_start [A-Za-z\200-\377_], ident_cont adds
# [0-9\$]; every byte of a multibyte character is >= 0x80): a letter, "_" or any non-ASCII
# character. Written as negated ASCII classes: a class spelling the range up to U+10FFFF costs
# re about 20 ms to compile, each time, at every start of the CLI.
_START = r"[^\x00-\x40\x5b-\x5e\x60\x7b-\x7f]"
_CONT = r"[^\x00-\x2f\x3a-\x40\x5b-\x5e\x60\x7b-\x7f]"  # and 0-9
_CONT_DOLLAR = r"[^\x00-\x23\x25-\x2f\x3a-\x40\x5b-\x5e\x60\x7b-\x7f]"  # and 0-9, $
_DOLLAR_TAG_RE = re.compile(rf"\$(?:{_START}{_CONT}*)?\$")
_PARAM_RE = re.compile(r"\$[0-9]+")
# psql substitutes :name, :'name', :"name" and tests :{?name} outside quotes (psqlscan.l).
_PSQL_VAR_RE = re.compile(rf""":(?:{_START}{_CONT}*|'{_CONT}+'|"{_CONT}+"|"""
                          rf"""\{{\?{_CONT}+\}})""")
# The tokens that need no care, in one pattern: spaces, line comments, identifiers (a lone
# e, b, x, n or u before a quote is a string prefix: handled after the match), numbers,
# operators (never swallowing the start of a comment) and punctuation.
_PLAIN_RE = re.compile(
    rf"(?P<space>\s+)|(?P<comment>--[^\n]*)|(?P<ident>{_START}{_CONT_DOLLAR}*)"
    r"|(?P<number>(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9][0-9_]*)(?:[eE][+-]?[0-9]+)?[A-Za-z0-9_]*)"
    r"|(?P<op>(?:[+*<>=~!@#%^&|`?]|-(?!-)|/(?!\*))+)|(?P<punct>::|[(),;\[\].])"
)
_PREFIXED = {"e": ("'", True, "estring"), "b": ("'", False, "string"), "x": ("'", False, "string"),
             "n": ("'", False, "string")}


class SqlLexError(ValueError):
    """Text the lexer cannot read: an unterminated quote, dollar quote or comment."""

    def __init__(self, message: str, pos: int) -> None:
        super().__init__(message)
        self.message = message
        self.pos = pos


class Token(NamedTuple):
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


class LineIndex:
    """Line numbers of many positions in one text, without counting from the start each time."""

    def __init__(self, text: str) -> None:
        self._starts = [m.start() for m in re.finditer("\n", text)]

    def line(self, pos: int) -> int:
        return bisect.bisect_left(self._starts, pos) + 1


def _quoted(text: str, start: int, quote: str, *, escapes: bool) -> int:
    """The end (exclusive) of a quoted run whose opening quote is at ``start``."""
    i = start + 1
    while True:
        close = text.find(quote, i)
        if escapes:
            slash = text.find("\\", i)
            if slash != -1 and (close == -1 or slash < close):
                i = slash + 2
                continue
        if close == -1:
            what = "quoted identifier" if quote == '"' else "string constant"
            raise SqlLexError(f"unterminated {what}", start)
        if text.startswith(quote, close + 1):
            i = close + 2
            continue
        return close + 1


def _comment_end(text: str, start: int) -> int:
    depth, i, n = 1, start + 2, len(text)
    while depth:
        opening, closing = text.find("/*", i), text.find("*/", i)
        if closing == -1:
            raise SqlLexError("unterminated /* comment", start)
        if opening != -1 and opening < closing:
            depth, i = depth + 1, opening + 2
        else:
            depth, i = depth - 1, closing + 2
    return min(i, n)


# The whole lexer in one pattern, for text without nested comments or unterminated quotes
# (nearly every schema): each alternative is a token kind; "care" sends the text to the slow,
# exact path in ``_tokens_slow``.
_FAST_RE = re.compile(
    r"(?P<space>\s+)|(?P<comment>--[^\n]*|/\*(?:[^*/]|\*(?!/)|/(?!\*))*\*/)"
    r"|(?P<estring>[eE]'[^'\\]*(?:(?:\\.|'')[^'\\]*)*')"
    r"|(?P<string>(?:[bBxXnN]|[uU]&)?'[^']*(?:''[^']*)*')"
    r'|(?P<qident>(?:[uU]&)?"[^"]*(?:""[^"]*)*")'
    rf"|(?P<dollar>\$(?P<tag>(?:{_START}{_CONT}*)?)\$.*?\$(?P=tag)\$)|(?P<param>\$[0-9]+)"
    r"""|(?P<prefix>[eEbBxXnN](?=')|[uU](?=&['"]))"""  # a prefix whose string never ends
    rf"|(?P<ident>{_START}{_CONT_DOLLAR}*)"
    r"|(?P<number>(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9][0-9_]*)(?:[eE][+-]?[0-9]+)?[A-Za-z0-9_]*)"
    r"|(?P<op>(?:[+*<>=~!@#%^&|`?]|-(?!-)|/(?!\*))+)|(?P<punct>::|[(),;\[\].])"
    rf"""|(?P<psqlvar>:(?:{_START}{_CONT}*|'{_CONT}+'|"{_CONT}+"|\{{\?{_CONT}+\}}))|(?P<colon>:)"""
    r"|(?P<backslash>\\[^\n]*)|(?P<other>[^'\"$/])|(?P<care>.)",
    re.DOTALL,
)


_FAST_KINDS = {name: name for name in _FAST_RE.groupindex if name != "tag"} | {"colon": "punct", "prefix": "care"}


@lru_cache(maxsize=8)
def tokens(text: str) -> tuple[Token, ...]:
    """Every token of ``text``, spaces and comments included; SqlLexError if a quote never ends.

    Cached: the rules read one schema for several checks."""
    out = [Token(_FAST_KINDS.get(m.lastgroup or "care", "care"), m.group(), m.start()) for m in _FAST_RE.finditer(text)]
    if any(t.kind == "care" for t in out):
        return _tokens_slow(text)
    return tuple(out)


def _tokens_slow(text: str) -> tuple[Token, ...]:
    """Token by token, with nested comments and every error found where it starts."""
    out: list[Token] = []
    i, n = 0, len(text)
    plain = _PLAIN_RE.match
    while i < n:
        m = plain(text, i)
        if m is not None:
            kind, end = m.lastgroup or "other", m.end()
            if kind == "ident" and end < n and text[end] in "'&":
                kind, end = _prefixed(text, m.group(0).lower(), end)
            out.append(Token(kind, text[i:end], i))
            i = end
            continue
        c = text[i]
        kind, end = "other", i + 1
        if text.startswith("/*", i):
            end, kind = _comment_end(text, i), "comment"
        elif c == "'":
            end, kind = _quoted(text, i, "'", escapes=False), "string"
        elif c == '"':
            end, kind = _quoted(text, i, '"', escapes=False), "qident"
        elif c == "$":
            tag = _DOLLAR_TAG_RE.match(text, i)
            param = _PARAM_RE.match(text, i)
            if tag:
                close = text.find(tag.group(0), tag.end())
                if close < 0:
                    raise SqlLexError(f"unterminated dollar-quoted string {tag.group(0)}", i)
                end, kind = close + len(tag.group(0)), "dollar"
            elif param:
                end, kind = param.end(), "param"
            else:
                kind = "op"
        elif c == "\\":
            nl = text.find("\n", i)
            end, kind = (n if nl < 0 else nl), "backslash"
        elif c == ":":
            var = _PSQL_VAR_RE.match(text, i)
            end, kind = (var.end(), "psqlvar") if var else (i + 1, "punct")
        out.append(Token(kind, text[i:end], i))
        i = end
    return tuple(out)


def _prefixed(text: str, word: str, end: int) -> tuple[str, int]:
    """E'...', B'...', X'...', N'...', U&'...' and U&"...": a string or identifier after a prefix."""
    if word in _PREFIXED and text[end] == "'":
        quote, escapes, kind = _PREFIXED[word]
        return kind, _quoted(text, end, quote, escapes=escapes)
    if word == "u" and text.startswith("&'", end):
        return "string", _quoted(text, end + 1, "'", escapes=False)
    if word == "u" and text.startswith('&"', end):
        return "qident", _quoted(text, end + 1, '"', escapes=False)
    return "ident", end


def code(toks: tuple[Token, ...] | list[Token]) -> list[Token]:
    """The tokens that mean something to the server: no spaces, no comments."""
    return [t for t in toks if t.kind not in ("space", "comment")]


def statements(toks: tuple[Token, ...] | list[Token]) -> list[list[Token]]:
    """Code tokens split into statements at each top-level ``;`` (as psql splits them).

    Like psql, a ``BEGIN`` inside CREATE FUNCTION or PROCEDURE opens a body (BEGIN ATOMIC ...
    END) whose semicolons do not end the statement.
    """
    out: list[list[Token]] = []
    cur: list[Token] = []
    parens = depth = 0
    for t in toks:
        kind = t.kind
        if kind == "space" or kind == "comment":
            continue
        if kind == "punct":
            text = t.text
            if text == ";" and parens == 0 and depth == 0:
                if cur:
                    out.append(cur)
                cur = []
                continue
            if text == "(" or text == "[":
                parens += 1
            elif text == ")" or text == "]":
                parens = max(parens - 1, 0)
        elif kind == "ident" and len(t.text) in (3, 4, 5):
            word = t.text.lower()
            if word in ("begin", "case", "end") and _defines_routine(cur):
                if word == "begin" or (word == "case" and depth):
                    depth += 1
                elif word == "end" and depth:
                    depth -= 1
        cur.append(t)
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

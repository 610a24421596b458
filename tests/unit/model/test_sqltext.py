"""The SQL lexer and the checks built on it: what is code, what is quoted (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pgtopo.model.render import schema_block
from pgtopo.model.rowfilter import row_filter_problem
from pgtopo.model.schema_file import TableColumns, schema_columns
from pgtopo.model.sqlcheck import schema_problems
from pgtopo.model.sqltext import SqlLexError, _tokens_slow, keywords, statements, tokens

REPO = Path(__file__).resolve().parents[3]


def kinds(text: str) -> list[tuple[str, str]]:
    return [(t.kind, t.text) for t in tokens(text) if t.kind != "space"]


def test_quotes_hide_what_they_hold() -> None:
    assert kinds("a = 'x; -- \\\\! y'") == [("ident", "a"), ("op", "="), ("string", "'x; -- \\\\! y'")]
    assert kinds("E'it\\'s' || $t$ \\! ; $t$") == [("estring", "E'it\\'s'"), ("op", "||"), ("dollar", "$t$ \\! ; $t$")]
    assert kinds('"we""ird" U&"x" u&\'y\'') == [("qident", '"we""ird"'), ("qident", 'U&"x"'), ("string", "u&'y'")]
    assert kinds("x::int + :v + :'v' + $1") == [
        ("ident", "x"), ("punct", "::"), ("ident", "int"), ("op", "+"), ("psqlvar", ":v"), ("op", "+"),
        ("psqlvar", ":'v'"), ("op", "+"), ("param", "$1")]
    assert kinds("a[1:2] /* c /* nested */ */ -- end") == [
        ("ident", "a"), ("punct", "["), ("number", "1"), ("punct", ":"), ("number", "2"), ("punct", "]"),
        ("comment", "/* c /* nested */ */"), ("comment", "-- end")]
    assert kinds("select 1 \\gexec now\nselect 2")[2] == ("backslash", "\\gexec now")
    # An identifier may hold '$'; only a lone 'e' before a quote starts an E'' string.
    assert kinds("a$b$ some'x'") == [("ident", "a$b$"), ("ident", "some"), ("string", "'x'")]


def test_statements_split_like_psql() -> None:
    text = ("CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT CASE WHEN true THEN 1 END; "
            "SELECT 2; END; CREATE TABLE t (a int); DO $$ BEGIN NULL; END $$;")
    assert [keywords(s)[:2] for s in statements(tokens(text))] == [["create", "function"], ["create", "table"],
                                                                     ["do", "$$ BEGIN NULL; END $$"]]


@pytest.mark.parametrize("expr", [
    "region = 'eu'", "region IN ('eu', 'ap') AND (id > 0 OR name <> '')", "name ~ E'^\\\\w+$'",
    "note = $$it's; -- fine$$", "tags[1] = 'x'", "payload->>'kind' = 'a'", '"Mixed" IS NOT NULL', "id::text <> ''",
])
def test_row_filters_accepted(expr: str) -> None:
    assert row_filter_problem(expr) is None


def test_shipped_style_schemas_have_no_problems() -> None:
    text = """
    CREATE TYPE mood AS ENUM ('a', 'b');
    CREATE TABLE t (id int PRIMARY KEY, m mood, note text CHECK (note ~ '^\\d+$'));  -- \\ in a comment
    CREATE FUNCTION f(x int) RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT x + 1; END;
    CREATE FUNCTION g() RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN 1; END $$;
    CREATE SCHEMA app; CREATE SCHEMA AUTHORIZATION app;
    SELECT arr[1:2] FROM (SELECT ARRAY[1, 2, 3] AS arr) s;
    """
    assert schema_problems(text) == []


def test_schema_columns_are_conservative() -> None:
    text = """
    CREATE TABLE public."T" (a int, "B" text, c int GENERATED ALWAYS AS (a * 2) STORED, CONSTRAINT k PRIMARY KEY (a));
    CREATE UNLOGGED TABLE IF NOT EXISTS z (a int, n numeric(10, 2), id bigint GENERATED ALWAYS AS IDENTITY, UNIQUE (a));
    ALTER TABLE z ADD COLUMN b int, DROP COLUMN a, ADD CONSTRAINT q CHECK (b > 0);
    ALTER TABLE ONLY z ADD IF NOT EXISTS c text;
    CREATE TABLE l (LIKE z); CREATE TABLE w (a int) INHERITS (z); CREATE TABLE v PARTITION OF z FOR VALUES IN (1);
    CREATE TABLE other.q (a int); CREATE TABLE r (a int); ALTER TABLE r RENAME COLUMN a TO b;
    CREATE TABLE twice (a int); CREATE TABLE twice (b int);
    """
    assert schema_columns(text) == {
        "T": TableColumns(names=frozenset({"a", "B", "c"}), generated=frozenset({"c"})),
        "z": TableColumns(names=frozenset({"n", "id", "b", "c"}), generated=frozenset()),
        "l": None, "w": None, "v": None, "r": None, "twice": None,
    }
    assert schema_columns("CREATE TABLE broken (a text DEFAULT 'x);") == {}


def test_schema_block_is_never_read_by_psql() -> None:
    assert schema_block("CREATE TABLE t (i int);") == (
        "DO $pgtopo_do$ BEGIN EXECUTE $pgtopo_schema$\nCREATE TABLE t (i int);\n$pgtopo_schema$; END $pgtopo_do$;")
    # A schema that holds the tags gets others: its text can never end the quote.
    tricky = "SELECT '$pgtopo_schema$ $pgtopo_do$ $pgtopo_do_1$';"
    block = schema_block(tricky)
    assert block.startswith("DO $pgtopo_do_2$ BEGIN EXECUTE $pgtopo_schema_1$\n")
    assert block.endswith("\n$pgtopo_schema_1$; END $pgtopo_do_2$;")
    assert [t.kind for t in tokens(block) if t.kind != "space"] == ["ident", "dollar", "punct"]


@pytest.mark.parametrize("text", [
    "a = 'x; -- \\\\! y' AND E'it\\'s' || $t$ \\! ; $t$ || $$x$$ || $1",
    '"we""ird" U&"x" u&\'y\' b\'01\' X\'ff\' n\'z\' some\'x\' e\'\\\\\'',
    "x::int + :v + :'v' + :\"v\" + :{?v} a[1:2] /* c */ -- end\nnext",
    "select 1 \\gexec now\nselect 2; {} @> <-> /2 - -1",
    (REPO / "topologies" / "schemas" / "app.sql").read_text(),
])
def test_the_fast_lexer_agrees_with_the_exact_one(text: str) -> None:
    fast = tokens(text)
    assert not any(t.kind == "care" for t in fast)
    assert fast == _tokens_slow(text)
    assert "".join(t.text for t in fast) == text


def test_nested_comments_and_errors_take_the_exact_path() -> None:
    assert kinds("a /* x /* y */ z */ b") == [("ident", "a"), ("comment", "/* x /* y */ z */"), ("ident", "b")]
    for text, message in [("'open", "unterminated string constant"), ('"open', "unterminated quoted identifier"),
                          ("$q$ open", "unterminated dollar-quoted string $q$"), ("/* open", "unterminated /* comment"),
                          ("E'open\\'", "unterminated string constant")]:
        with pytest.raises(SqlLexError) as exc:
            tokens(text)
        assert exc.value.message == message


def _identifier_char(c: str, *, digits: bool = False, dollar: bool = False) -> bool:
    """PostgreSQL's scanner: a letter, "_" or any non-ASCII character; then digits and "$"."""
    return (c.isascii() and (c.isalpha() or c == "_")) or not c.isascii() or (digits and c.isdigit()) \
        or (dollar and c == "$")


@pytest.mark.parametrize(("cls", "digits", "dollar"), [("_START", False, False), ("_CONT", True, False),
                                                       ("_CONT_DOLLAR", True, True)])
def test_identifier_classes_are_postgresql_s(cls: str, digits: bool, dollar: bool) -> None:
    import re

    from pgtopo.model import sqltext

    pattern = re.compile(getattr(sqltext, cls))
    # Every ASCII character, and non-ASCII ones across the whole range (both ends included).
    for code in [*range(0x100), *range(0x100, 0x110000, 4099), 0xFFFF, 0x10000, 0x10FFFF]:
        c = chr(code)
        assert bool(pattern.fullmatch(c)) == _identifier_char(c, digits=digits, dollar=dollar), hex(code)


def test_identifiers_beyond_ascii_are_one_token() -> None:
    assert kinds("SELECT été_1$, \"x\" FROM ü𝔘 WHERE $ä$ q $ä$ = :naïve") == [
        ("ident", "SELECT"), ("ident", "été_1$"), ("punct", ","), ("qident", '"x"'), ("ident", "FROM"),
        ("ident", "ü𝔘"), ("ident", "WHERE"), ("dollar", "$ä$ q $ä$"), ("op", "="), ("psqlvar", ":naïve")]

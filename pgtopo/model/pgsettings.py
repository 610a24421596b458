"""Node settings checked against the catalogue of the file's PostgreSQL version (pure).

The catalogues (``catalogue/pg<major>.json``) are generated from a real server's pg_settings
by ``scripts/settings_catalogue.py``, never typed by hand. A value is checked the way the
server parses postgresql.conf at startup (guc.c: parse_bool, parse_int, parse_real, units,
enum lookup), so what passes here does not stop PostgreSQL with "configuration file contains
errors". Settings whose name holds a dot belong to extensions and are not checked.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

CATALOGUE_DIR = Path(__file__).parent / "catalogue"

_MEMORY = {"B": 1, "kB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}
_TIME_MS = {"us": 0.001, "ms": 1, "s": 1000, "min": 60_000, "h": 3_600_000, "d": 86_400_000}
_BASE_RE = re.compile(r"^([0-9]*)(B|kB|MB|GB|TB|us|ms|s|min|h|d)$")
# strtol(base 0) and strtod as guc.c uses them: a number, spaces, then an optional unit.
_INT_RE = re.compile(r"\s*([+-]?(?:0[xX][0-9a-fA-F]+|[0-9]+))")
_REAL_RE = re.compile(r"\s*([+-]?(?:[0-9]+\.?[0-9]*(?:[eE][+-]?[0-9]+)?|\.[0-9]+(?:[eE][+-]?[0-9]+)?"
                      r"|[iI][nN][fF](?:[iI][nN][iI][tT][yY])?|[nN][aA][nN]))")
_TRUE = ("true", "yes")
_FALSE = ("false", "no")


@dataclass(frozen=True)
class Setting:
    name: str
    vartype: str  # bool, integer, real, string, enum
    unit: str | None
    min: float | None
    max: float | None
    enumvals: tuple[str, ...]
    context: str


@cache
def catalogue(major: int) -> dict[str, Setting] | None:
    """Every setting of PostgreSQL ``major`` by lower-case name, or None if not shipped."""
    path = CATALOGUE_DIR / f"pg{major}.json"
    if not path.is_file():
        return None
    raw = json.loads(path.read_text())
    return {name.lower(): Setting(name=name, vartype=s["vartype"], unit=s["unit"], min=s["min"], max=s["max"],
                                  enumvals=tuple(s["enumvals"] or ()), context=s["context"])
            for name, s in raw["settings"].items()}


def conf_text(value: str | int | float | bool) -> str:
    """The value as PostgreSQL reads it from the rendered postgresql.conf."""
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def problem(name: str, value: str | int | float | bool, *, version: int) -> str | None:
    """Why ``name = value`` would stop PostgreSQL ``version`` from starting, or None."""
    text = conf_text(value)
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        return "the value holds a newline or another control character (postgresql.conf has one setting per line)"
    if "." in name:
        return None  # an extension's setting (a placeholder until the extension loads)
    cat = catalogue(version)
    if cat is None:
        return (f"no settings catalogue for PostgreSQL {version} is shipped with pgtopo, so settings cannot be "
                "checked (generate one with scripts/settings_catalogue.py)")
    setting = cat.get(name)
    if setting is None:
        near = difflib.get_close_matches(name, list(cat), n=1)
        hint = f" (did you mean {near[0]}?)" if near else ""
        return f"unknown setting '{name}' in PostgreSQL {version}{hint}"
    if setting.context == "internal":
        return f"'{name}' cannot be set: PostgreSQL fixes it when it is built or initialised"
    return _value_problem(setting, text)


def _value_problem(s: Setting, text: str) -> str | None:
    if s.vartype == "bool":
        return None if _is_bool(text) else f"'{text}' is not a boolean (on, off, true, false, yes, no, 1, 0)"
    if s.vartype == "enum":
        if text.lower() in (v.lower() for v in s.enumvals):
            return None
        return f"'{text}' is not one of: {', '.join(s.enumvals)}"
    if s.vartype in ("integer", "real"):
        return _number_problem(s, text)
    return None  # a string: the server alone knows what it accepts


def _is_bool(text: str) -> bool:
    """parse_bool: a prefix of true/false/yes/no, on, off (or its prefix 'of'), 1 or 0."""
    t = text.lower()
    if not t:
        return False
    if t in ("1", "0", "on", "off", "of"):
        return True
    return any(word.startswith(t) for word in (*_TRUE, *_FALSE))


def _number_problem(s: Setting, text: str) -> str | None:
    number, rest = _parse_number(text, integer=s.vartype == "integer")
    what = "an integer" if s.vartype == "integer" else "a number"
    with_unit = f" with an optional unit ({_units(s.unit)})" if s.unit else ""
    if number is None:
        return f"'{text}' is not {what}{with_unit}"
    unit = rest.strip()
    if unit:
        factor = _factor(unit, s.unit)
        if factor is None:
            if not s.unit:
                return f"'{text}': {s.name} takes no unit"
            return f"'{text}': valid units for {s.name} are {_units(s.unit)}"
        number *= factor
    if s.vartype == "integer":
        if math.isinf(number):
            return f"'{text}' is not {what}{with_unit}"
        number = float(round(number))  # rint: half to even, as Python rounds
    if (s.min is not None and number < s.min) or (s.max is not None and number > s.max):
        base = f", in units of {s.unit}" if s.unit else ""
        return f"{text} is outside the valid range for {s.name} ({_num(s.min)} .. {_num(s.max)}{base})"
    return None


def _parse_number(text: str, *, integer: bool) -> tuple[float | None, str]:
    """The number at the start of ``text`` and what follows, as strtol/strtod read them."""
    m = _INT_RE.match(text) if integer else None
    if m is not None and text[m.end() : m.end() + 1] not in (".", "e", "E"):
        digits = m.group(1)
        sign = -1 if digits.startswith("-") else 1
        body = digits.lstrip("+-")
        if body[:2].lower() == "0x":
            value = int(body, 16)
        elif len(body) > 1 and body.startswith("0"):
            octal = re.match(r"[0-7]*", body)
            assert octal is not None
            value = int(octal.group(0), 8)
            return float(sign * value), body[len(octal.group(0)) :] + text[m.end() :]
        else:
            value = int(body)
        return float(sign * value), text[m.end() :]
    m = _REAL_RE.match(text)
    if m is None:
        return None, text
    real = float(m.group(1))
    if math.isnan(real):
        return None, text
    return real, text[m.end() :]


def _factor(unit: str, base: str | None) -> float | None:
    """How many base units one ``unit`` is (guc.c's unit conversion tables), or None."""
    m = _BASE_RE.match(base or "")
    if m is None:
        return None
    count = int(m.group(1) or 1)
    base_unit = m.group(2)
    if base_unit in _MEMORY and unit in _MEMORY:
        return _MEMORY[unit] / (count * _MEMORY[base_unit])
    if base_unit in _TIME_MS and unit in _TIME_MS:
        return _TIME_MS[unit] / (count * _TIME_MS[base_unit])
    return None


def _units(base: str | None) -> str:
    m = _BASE_RE.match(base or "")
    if m is None:
        return "none"
    return ", ".join(_MEMORY if m.group(2) in _MEMORY else _TIME_MS)


def _num(value: float | None) -> str:
    if value is None:
        return "?"
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else f"{value:g}"

"""Loading a topology file: YAML, then the pydantic model, then the semantic rules.

Every problem of both stages is reported at once, one ``path.to.field: message`` line each.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from pgtopo.errors import InputError, ValidationFailed
from pgtopo.model import files, parsecache, rules
from pgtopo.model.topology import Topology


def _loc(loc: tuple[int | str, ...], model_names: frozenset[str] | set[str]) -> str:
    # pydantic puts union member names in the path ("tables.0.PublishedTable.name",
    # "dict[str,function-before[...]]", "[key]"): drop them.
    parts = [str(p) for p in loc if not (isinstance(p, str) and (p in model_names or "[" in p))]
    return ".".join(parts) or "(top level)"


_MODEL_NAMES = {"Region", "Link", "Database", "Node", "Synchronous", "PublishedTable", "Publication", "Subscription",
                "Cluster", "PostgresSpec", "PatroniSpec", "Dcs", "Topology", "str", "int", "float", "bool"}


_SCALARS = {"str": "a string", "int": "an integer", "float": "a number", "bool": "a boolean"}


def _shown(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def _scalar_unions(errors: list[Any]) -> tuple[dict[tuple[Any, ...], str], set[int]]:
    """A value that fits no member of a scalar union (a setting: string, integer, number or
    boolean) gets one line, not one per member."""
    groups: dict[tuple[Any, ...], list[int]] = {}
    for i, e in enumerate(errors):
        if e["loc"] and e["loc"][-1] in _SCALARS:
            groups.setdefault(tuple(e["loc"][:-1]), []).append(i)
    lines: dict[tuple[Any, ...], str] = {}
    covered: set[int] = set()
    for loc, idx in groups.items():
        if len(idx) < 2:
            continue
        covered.update(idx)
        value = errors[idx[0]]["input"]
        if any(errors[i]["type"] == "finite_number" for i in idx):
            lines[loc] = "Input should be a finite number"
        else:
            kinds = list(dict.fromkeys(_SCALARS[errors[i]["loc"][-1]] for i in idx))
            if "a number" in kinds and "an integer" in kinds:
                kinds.remove("an integer")
            lines[loc] = f"expected {', '.join(kinds[:-1])} or {kinds[-1]}, not {_shown(value)}"
    return lines, covered


def _pydantic_problems(err: ValidationError) -> list[str]:
    return pydantic_problems(err, model_names=_MODEL_NAMES,
                             name_rule="lower-case letters, digits and '-', 1 to 40 characters")


def pydantic_problems(err: ValidationError, *, model_names: frozenset[str] | set[str], name_rule: str) -> list[str]:
    """pydantic's errors as ``path.to.field: message`` lines, in the words of pgtopo's files (the
    topology file, a drill file); ``model_names``: the class names pydantic puts in the paths;
    ``name_rule``: what a valid name is, said when a name does not match its pattern."""
    problems: list[str] = []
    errors = err.errors()
    unions, covered = _scalar_unions(errors)
    for i, e in enumerate(errors):
        if i in covered:
            loc = tuple(e["loc"][:-1])
            line = f"{_loc(loc, model_names)}: {unions[loc]}"
            if line not in problems:
                problems.append(line)
            continue
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown field"
        elif e["type"] == "string_pattern_mismatch":
            msg = f"'{e['input']}' is not a valid name ({name_rule})"
        elif e["type"] == "missing":
            msg = "required field is missing"
        elif e["type"] in ("int_type", "float_type", "int_parsing", "float_parsing") and isinstance(e["input"], bool):
            msg = f"expected a number, not the boolean {str(e['input']).lower()}"
        elif e["type"] == "bool_type":
            msg = f"expected true or false, not {e['input']!r}"
        elif msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        line = f"{_loc(e['loc'], model_names)}: {msg}"
        if line not in problems:
            problems.append(line)
    return problems


def load_yaml(path: Path, *, cache: Path | None = None) -> dict[str, Any]:
    """Read a YAML mapping; every failure is an InputError naming the file (and line).

    ``cache``: a directory of what texts parsed to (``parsecache``, filled by ``load`` once a
    file is valid): the same text again is read from there (a 30-node file: 9 ms of parsing
    less), and checked as a parsed file is."""
    return _read_mapping(path, cache=cache)[0]


def _read_mapping(path: Path, *, cache: Path | None) -> tuple[dict[str, Any], str, bool]:
    """(the mapping, the file's text, whether it came from ``cache``)."""
    try:
        text = files.read_text(path)
    except files.FileRefused as exc:
        if exc.message == "is a directory, not a regular file":
            raise InputError(f"{path}: is a directory, not a topology file") from None
        raise InputError(f"{path}: {exc.message}") from None
    data = parsecache.get(cache, text) if cache is not None else None
    cached = data is not None
    if not cached:
        data = _parse(path, text)
    if data is None:
        raise InputError(f"{path}: the file is empty")
    if not isinstance(data, dict):
        raise InputError(f"{path}: the top level must be a mapping, not {type(data).__name__}")
    shape = _shape_problem(data)
    if shape:
        raise InputError(f"{path}: {shape}")
    return data, text, cached


def _parse(path: Path, text: str) -> Any:
    if _flow_depth(text) > MAX_DEPTH:
        # Before parsing: the YAML scanner slows down with every open bracket (seconds at a
        # thousand), then fails with RecursionError.
        raise InputError(f"{path}: nested too deeply (a topology file is at most {MAX_DEPTH} levels deep)")
    try:
        try:
            data = YAML(typ="safe").load(text)  # libyaml's parser: a 30-node file in 4 ms, not 25
        except YAMLError:
            # libyaml reads YAML 1.1 and refuses text YAML 1.2 allows (`{image: postgres:17}`):
            # the pure parser has the last word, and words the errors.
            data = YAML(typ="safe", pure=True).load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        raise InputError(f"{path}: YAML syntax error at {where}: {exc.problem}") from None
    except YAMLError as exc:
        raise InputError(f"{path}: YAML error: {exc}") from None
    except RecursionError:
        raise InputError(f"{path}: nested too deeply (a topology file is at most {MAX_DEPTH} levels deep)") from None
    return data


MAX_DEPTH = 16  # the deepest field (clusters.c.publications.p.tables.0.columns.0) is 8 levels
MAX_VALUES = 200_000  # YAML aliases can make a small file stand for a huge document


def _flow_depth(text: str) -> int:
    """The deepest nesting of YAML flow brackets, skipping quoted scalars and comments.

    A heuristic (a bracket inside a plain scalar counts too), used only to refuse text far
    deeper than any topology file can be."""
    depth = deepest = 0
    quote = ""
    prev = "\n"
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if quote:
            if c == "\\" and quote == '"':
                i += 1
            elif c == quote:
                if quote == "'" and text[i + 1 : i + 2] == "'":
                    i += 1
                else:
                    quote = ""
        elif c in "'\"" and prev in " \t\n[{,:":
            quote = c
        elif c == "#" and prev in " \t\n":
            nl = text.find("\n", i)
            i = n if nl < 0 else nl
            continue
        elif c in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif c in "]}":
            depth = max(depth - 1, 0)
        prev = c
        i += 1
    return deepest


def _shape_problem(data: Any) -> str | None:
    """Too deep or too many values (counted through aliases), before pydantic walks it."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    seen = 0
    while stack:
        value, depth = stack.pop()
        seen += 1
        if seen > MAX_VALUES:
            return f"more than {MAX_VALUES} values (YAML aliases counted where they are used)"
        if depth > MAX_DEPTH:
            return f"nested too deeply (a topology file is at most {MAX_DEPTH} levels deep)"
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
            stack.extend((k, depth + 1) for k in value if isinstance(k, (dict, list, tuple)))
        elif isinstance(value, (list, tuple)):
            stack.extend((v, depth + 1) for v in value)
    return None


def load(path: Path | str, *, cache: Path | None = None, keep: Callable[[Topology], bool] | None = None) -> Topology:
    """Load and validate a topology file, raising ValidationFailed with every problem (``cache``:
    see ``load_yaml``; the model and the rules check every load). A valid file's text is kept in
    ``cache`` when ``keep`` says so of its topology (else always)."""
    path = Path(path)
    data, text, cached = _read_mapping(path, cache=cache)
    try:
        topo = Topology.model_validate(data)
    except ValidationError as err:
        raise ValidationFailed(_pydantic_problems(err)) from None
    problems = rules.problems(topo, path)
    if problems:
        raise ValidationFailed(problems)
    if cache is not None and not cached and (keep is None or keep(topo)):
        parsecache.put(cache, text, data)  # only a valid file's: a refused one leaves nothing behind
    return topo


def json_schema() -> dict[str, Any]:
    """The JSON Schema of the topology file, for editors."""
    schema = Topology.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "pgtopo topology file"
    return schema

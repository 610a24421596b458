"""Loading a topology file: YAML, then the pydantic model, then the semantic rules.

Every problem of both stages is reported at once, one ``path.to.field: message`` line each.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from pgtopo.errors import InputError, ValidationFailed
from pgtopo.model import rules
from pgtopo.model.topology import Topology


def _loc(loc: tuple[int | str, ...]) -> str:
    # pydantic puts union member names in the path ("tables.0.PublishedTable.name"): drop them.
    parts = [str(p) for p in loc if not (isinstance(p, str) and (p in _MODEL_NAMES or p == "[key]"))]
    return ".".join(parts) or "(top level)"


_MODEL_NAMES = {"Region", "Link", "Database", "Node", "Synchronous", "PublishedTable", "Publication", "Subscription",
                "Cluster", "PostgresSpec", "Topology", "str", "int", "float", "bool"}


def _pydantic_problems(err: ValidationError) -> list[str]:
    problems: list[str] = []
    for e in err.errors():
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown field"
        elif e["type"] == "string_pattern_mismatch":
            msg = f"'{e['input']}' is not a valid name (lower-case letters, digits and '-', 1 to 40 characters)"
        elif e["type"] == "missing":
            msg = "required field is missing"
        elif msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        line = f"{_loc(e['loc'])}: {msg}"
        if line not in problems:
            problems.append(line)
    return problems


def load_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML mapping; every failure is an InputError naming the file (and line)."""
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a directory, not a topology file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not a UTF-8 text file (byte {exc.start})") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read it ({exc.strerror})") from None
    try:
        data = YAML(typ="safe").load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        raise InputError(f"{path}: YAML syntax error at {where}: {exc.problem}") from None
    except YAMLError as exc:
        raise InputError(f"{path}: YAML error: {exc}") from None
    if data is None:
        raise InputError(f"{path}: the file is empty")
    if not isinstance(data, dict):
        raise InputError(f"{path}: the top level must be a mapping, not {type(data).__name__}")
    return data


def load(path: Path | str) -> Topology:
    """Load and validate a topology file, raising ValidationFailed with every problem."""
    path = Path(path)
    data = load_yaml(path)
    try:
        topo = Topology.model_validate(data)
    except ValidationError as err:
        raise ValidationFailed(_pydantic_problems(err)) from None
    problems = rules.problems(topo, path)
    if problems:
        raise ValidationFailed(problems)
    return topo


def json_schema() -> dict[str, Any]:
    """The JSON Schema of the topology file, for editors."""
    schema = Topology.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "pgtopo topology file"
    return schema
